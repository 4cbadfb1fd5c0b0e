# The ironlb command line (speaker/cmd/ironlb): `ironlb doctor`, `ironlb status`, and the same
# binary named kubectl-ironlb is the kubectl plugin. Built for this machine; the speaker image
# carries a linux build as /ironlb (images.mk). See docs/cli.md.

.PHONY: cli
cli: ## Build bin/ironlb and the kubectl plugin bin/kubectl-ironlb (copy it onto your PATH).
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ironlb ./speaker/cmd/ironlb
	cp $(BIN)/ironlb $(BIN)/kubectl-ironlb
