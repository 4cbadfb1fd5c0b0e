# Container images: the static controller and speaker binaries on an empty base (the speaker's
# with /ironlb beside it, for `kubectl exec ds/ironlb-speaker -- /ironlb doctor`, and nft for
# the proxy core), written as docker-save tarballs by the builder in hack/images
# (go-containerregistry, its own module). No Docker daemon, no base-image pull; offline once the
# Go module cache is warm. The same commit and installed Debian packages built again give
# byte-identical tarballs and the same digests.

# The install contract's tag: ghcr.io/ironlb/{controller,speaker}:$(VERSION).
VERSION ?= v0.1.0
IMAGE_REGISTRY ?= ghcr.io/ironlb
# The platform is linux/$(IMAGE_ARCH); the binaries are cross-compiled, the builder runs on the host.
IMAGE_ARCH ?= $(shell $(GO) env GOARCH)
# Image creation time and the binaries' mtime in the layer: the last commit's time, so a commit
# always rebuilds to the same digest (SOURCE_DATE_EPOCH=0 for the Unix epoch).
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
IMAGE_BUILDER := $(BIN)/image-builder
IMAGES_DIR := $(BIN)/images

TEST_DEPS += test-images

# Built for the host whatever GOOS/GOARCH say: it runs here, only the binaries are for IMAGE_ARCH.
$(IMAGE_BUILDER): hack/images/go.mod hack/images/go.sum $(wildcard hack/images/*.go)
	cd hack/images && GOOS= GOARCH= CGO_ENABLED=0 $(GO) build -trimpath -o $(IMAGE_BUILDER) .

# `make bin/image-builder` from the repository root names the same file.
bin/image-builder: $(IMAGE_BUILDER)

# The builder's arguments per image. The speaker image carries nft for the proxy core
# (--proxy=nftables): --nft copies it, the libraries it loads and the loader from this
# machine's Debian nftables package (it fails naming the package to install), so a Debian
# update changes the speaker's digest.
IMAGE_ARGS_controller = --binary $(IMAGES_DIR)/controller --entrypoint /controller --user 65532:65532 \
  --ref $(IMAGE_REGISTRY)/controller:$(VERSION) --arch $(IMAGE_ARCH)
IMAGE_ARGS_speaker = --binary $(IMAGES_DIR)/speaker --entrypoint /speaker --user 0:0 \
  --add /ironlb=$(IMAGES_DIR)/ironlb --nft --ref $(IMAGE_REGISTRY)/speaker:$(VERSION) --arch $(IMAGE_ARCH)

.PHONY: images
images: $(IMAGES_DIR)/controller.tar $(IMAGES_DIR)/speaker.tar ## Build bin/images/controller.tar and speaker.tar (docker/podman load, ctr images import) and print their digests.

# Always rerun (FORCE): go build and the builder decide from the sources what changed, and the
# same inputs give the same bytes.
$(IMAGES_DIR)/speaker.tar: $(IMAGES_DIR)/ironlb
$(IMAGES_DIR)/%.tar: $(IMAGE_BUILDER) FORCE
	@mkdir -p $(IMAGES_DIR)
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) $(GO) build -trimpath -ldflags "-s -w -buildid=" -o $(IMAGES_DIR)/$* ./$*
	SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) $(IMAGE_BUILDER) $(IMAGE_ARGS_$*) --out $@

$(IMAGES_DIR)/ironlb: FORCE
	@mkdir -p $(IMAGES_DIR)
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) $(GO) build -trimpath -ldflags "-s -w -buildid=" -o $@ ./speaker/cmd/ironlb

.PHONY: FORCE
FORCE:

# In `make test`: the builder's tests, and a speaker image built with IMAGE_ARGS_speaker (stand-in
# binaries: compiling the real ones with these flags would cost minutes of a cold `make test`)
# unpacked and run as root, its nft loading the proxy's golden rulesets in a network namespace.
.PHONY: test-images
test-images: ## Tests of the image builder (hack/images, its own module) and of the speaker image's nft.
	cd hack/images && IRONLB_SPEAKER_IMAGE_ARGS='$(IMAGE_ARGS_speaker)' $(GO) test -count=1 ./...

# The same check on the images `make images` wrote, with the real speaker and CLI, which it runs.
.PHONY: check-images
check-images: images ## Build the images, then check the speaker image's nft, binaries and config (root).
	cd hack/images && IRONLB_IMAGES_DIR=$(IMAGES_DIR) $(GO) test -count=1 -run 'TestSpeakerImageRunsNft' -v ./...
