package webhook_test

import (
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"

	"github.com/ironlb/ironlb/controller/webhook"
)

// The ValidatingWebhookConfiguration for a Service-fronted deployment: one webhook per kind.
func ExampleConfiguration() {
	vwc := webhook.Configuration("ironlb-validating-webhook", "metallb-system", func(path string) admissionregistrationv1.WebhookClientConfig {
		return admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{
			Namespace: "metallb-system", Name: "ironlb-webhook", Path: &path}}
	})
	for _, w := range vwc.Webhooks {
		fmt.Println(w.Name, *w.ClientConfig.Service.Path, w.Rules[0].APIVersions, w.Rules[0].Operations)
	}
	// Output:
	// ipaddresspools.validate.metallb.io /validate-metallb-io-v1beta1-ipaddresspool [v1beta1] [CREATE UPDATE]
	// l2advertisements.validate.metallb.io /validate-metallb-io-v1beta1-l2advertisement [v1beta1] [CREATE UPDATE]
	// bgpadvertisements.validate.metallb.io /validate-metallb-io-v1beta1-bgpadvertisement [v1beta1] [CREATE UPDATE]
	// bgppeers.validate.metallb.io /validate-metallb-io-v1beta2-bgppeer [v1beta2] [CREATE UPDATE]
	// bfdprofiles.validate.metallb.io /validate-metallb-io-v1beta1-bfdprofile [v1beta1] [CREATE UPDATE DELETE]
	// communities.validate.metallb.io /validate-metallb-io-v1beta1-community [v1beta1] [CREATE UPDATE]
}
