# `make demo`: the seeds' story on one machine (e2etest/demo). Needs root: it builds network
# namespaces. ARGS=--keep leaves it running until Ctrl-C; `make demo-down` removes what a
# killed demo left behind.

.PHONY: demo
demo: test-assets ## The whole story on one machine, as root (ARGS=--keep leaves it running).
	KUBEBUILDER_ASSETS=$(BIN) $(GO) run ./e2etest/cmd/demo $(ARGS)

.PHONY: demo-down
demo-down: ## Remove what a killed `make demo` left behind.
	$(GO) run ./e2etest/cmd/demo --down
