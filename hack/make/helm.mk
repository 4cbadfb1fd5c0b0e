# The Helm chart (charts/ironlb): the pinned helm CLI and the chart's copies of generated files.
#
# The chart never retypes what controller-gen generates: chart-sync copies the CRDs into
# charts/ironlb/crds and the RBAC roles into charts/ironlb/files, and the templates render the
# rules from those copies (.Files.Get), so the chart and kustomize grant exactly the same rules.

HELM := $(BIN)/helm
# The pinned version, stamped into `helm version` (a plain `go build` would report only "v4.1").
HELM_VERSION = $(shell awk '$$1 == "require" && $$2 == "helm.sh/helm/v4" {print $$3}' hack/helm/go.mod)

GENERATED += charts/ironlb/crds charts/ironlb/files
REGENERATE += chart-sync
TEST_DEPS += $(HELM)

.PHONY: chart-sync
chart-sync: manifests ## Copy the generated CRDs and RBAC roles into the Helm chart (charts/ironlb/crds, files/).
	rm -rf charts/ironlb/crds charts/ironlb/files
	mkdir -p charts/ironlb/crds charts/ironlb/files
	cp config/crd/bases/*.yaml charts/ironlb/crds/
	cp config/rbac/controller/role.yaml charts/ironlb/files/controller-role.yaml
	cp config/rbac/speaker/role.yaml charts/ironlb/files/speaker-role.yaml

# helm from the module pinned in hack/helm (its own module: helm's dependencies stay out of the
# root go.mod). Rebuilt only when the pins change; the first build takes several minutes.
$(HELM): hack/helm/go.mod hack/helm/go.sum
	cd hack/helm && CGO_ENABLED=0 $(GO) build -trimpath \
	  -ldflags "-X helm.sh/helm/v4/internal/version.version=$(HELM_VERSION)" \
	  -o $(HELM) helm.sh/helm/v4/cmd/helm
	@touch $@

# `make bin/helm` from the repository root names the same file.
bin/helm: $(HELM)
