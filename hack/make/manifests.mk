# Install manifests: the webhook's configuration generated from controller/webhook, and the
# all-in-one config/manifests/ironlb.yaml rendered from config/default by kubectl's kustomize.

GENERATED += config/webhook config/manifests
REGENERATE += bundle

# After manifests (the bundle holds the CRDs and RBAC it generates); kubectl from test-assets,
# a no-op once built.
.PHONY: bundle
bundle: manifests test-assets ## Regenerate config/webhook/validating_webhook.yaml and the all-in-one config/manifests/ironlb.yaml.
	$(GO) run ./hack/genwebhook -o config/webhook/validating_webhook.yaml
	@mkdir -p config/manifests
	$(BIN)/kubectl kustomize config/default > config/manifests/ironlb.yaml.tmp
	mv config/manifests/ironlb.yaml.tmp config/manifests/ironlb.yaml
