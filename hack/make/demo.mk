# `make demo`: the seeds' story on one machine (e2etest/demo, docs/demo.md). Needs root: it
# builds network namespaces. It builds the speaker and the ironlb command into bin/demo/.
# ARGS=--keep leaves the lab running in the background; `make demo-down` stops it and removes
# what a killed demo left behind.

.PHONY: demo
demo: test-assets ## The whole story on one machine, as root (ARGS=--keep leaves it running in the background).
	KUBEBUILDER_ASSETS=$(BIN) $(GO) run ./e2etest/cmd/demo $(ARGS)

.PHONY: demo-down
demo-down: ## Stop a demo kept with ARGS=--keep; remove what a killed one left behind.
	$(GO) run ./e2etest/cmd/demo --down
