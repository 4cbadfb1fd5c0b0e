# ironlb — see README.md. `make help` lists the targets.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -o pipefail -ec
.DEFAULT_GOAL := help

BIN := $(CURDIR)/bin
GO ?= go
CONTROLLER_GEN := $(BIN)/controller-gen
# Integration tests run against the real etcd + kube-apiserver built by `make test-assets`.
export KUBEBUILDER_ASSETS ?= $(BIN)
GO_TEST_FLAGS ?= -race -count=1 -timeout 30m

# Fragments in hack/make/*.mk add targets and extend these lists:
#   GENERATED   trees that `make $(REGENERATE)` rewrites; verify-generated fails if they are stale
#   REGENERATE  targets that regenerate them
#   TEST_DEPS   targets `make test` runs before `go test ./...` (tools it needs, nested modules' tests)
GENERATED := api config/crd config/rbac
REGENERATE := generate manifests
TEST_DEPS :=
include $(sort $(wildcard hack/make/*.mk))

.PHONY: help
help: ## Show the targets.
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

##@ Development

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Regenerate deepcopy code for the API types.
	$(CONTROLLER_GEN) object paths=./api/...

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Regenerate the CRDs (config/crd/bases) and the controller's and speaker's RBAC (config/rbac).
	rm -f config/crd/bases/*.yaml config/rbac/controller/role.yaml config/rbac/speaker/role.yaml
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:dir=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=ironlb-controller paths=./controller/... output:rbac:dir=config/rbac/controller
	$(CONTROLLER_GEN) rbac:roleName=ironlb-speaker paths=./speaker/... output:rbac:dir=config/rbac/speaker

.PHONY: verify-generated
verify-generated: $(CONTROLLER_GEN) ## Fail if generated code, CRDs, RBAC or bundles are stale (regenerates them in place).
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; stale=; \
	for d in $(GENERATED); do mkdir -p "$$tmp/$$d"; cp -r "$$d/." "$$tmp/$$d/"; done; \
	$(MAKE) -s $(REGENERATE) >/dev/null; \
	for d in $(GENERATED); do diff -r "$$tmp/$$d" "$$d" || stale=1; done; \
	if [ -n "$$stale" ]; then \
	  echo "generated files were stale; they are regenerated now: review and commit them"; exit 1; \
	fi

.PHONY: fmt
fmt: ## gofmt the tree.
	gofmt -w $$(git ls-files '*.go')

.PHONY: lint
lint: ## go vet and a gofmt check.
	$(GO) vet ./...
	@bad=$$(gofmt -l $$(git ls-files '*.go')); [ -z "$$bad" ] || { echo "gofmt needed: $$bad"; exit 1; }

##@ Test

.PHONY: test
test: verify-generated test-assets lint $(TEST_DEPS) ## Everything CI runs: generated-file check, vet, unit and integration tests.
	$(GO) test $(GO_TEST_FLAGS) $$($(GO) list ./... | grep -v '/e2etest')
	@# The lab's speakers time failures in hundreds of milliseconds: run them alone, not
	@# beside a dozen -race test binaries competing for the same two cores.
	$(GO) test $(GO_TEST_FLAGS) -p 1 ./e2etest/...

.PHONY: bench
bench: ## Go benchmarks (figures go to docs/performance.md).
	$(GO) test -run '^$$' -bench . -benchmem ./...

# The control plane for integration tests: etcd, kube-apiserver and kubectl built from the module
# pinned in hack/testassets. Rebuilt only when that module's pins change (content hash, not
# timestamps, so a fresh clone or a branch switch does not force a rebuild needlessly).
.PHONY: test-assets
test-assets: ## Build etcd, kube-apiserver and kubectl into bin/ from hack/testassets.
	@want=$$(cat hack/testassets/go.mod hack/testassets/go.sum hack/testassets/etcd/main.go | sha256sum | cut -d' ' -f1); \
	if [ -x $(BIN)/kube-apiserver ] && [ -x $(BIN)/etcd ] && [ -x $(BIN)/kubectl ] && \
	   [ "$$(cat $(BIN)/.test-assets 2>/dev/null)" = "$$want" ]; then \
	  echo "test assets up to date in bin/"; \
	else \
	  echo "building etcd, kube-apiserver and kubectl (first time: several minutes)"; \
	  cd hack/testassets && CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ \
	    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kubectl ./etcd; \
	  echo "$$want" > $(BIN)/.test-assets; \
	fi

$(CONTROLLER_GEN): hack/tools/go.mod hack/tools/go.sum
	cd hack/tools && $(GO) build -trimpath -o $(BIN)/ sigs.k8s.io/controller-tools/cmd/controller-gen
	@touch $@
