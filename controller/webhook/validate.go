package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/api/v1beta2"
	"github.com/ironlb/ironlb/internal/config"
	"github.com/ironlb/ironlb/internal/configlist"
)

// Registrar is the part of controller-runtime's webhook.Server the Validator registers on.
type Registrar interface {
	Register(path string, hook http.Handler)
}

// kindHook describes how one kind is admitted: where it is served, which versions the
// ValidatingWebhookConfiguration lists, and how an admitted object enters a snapshot.
type kindHook struct {
	kind     config.Kind
	resource string
	// version is the only version the rules list and the one decoded. With matchPolicy
	// Equivalent the API server converts a request for any other version of the resource to
	// it (listing a second version would make the API server send that version unconverted).
	version string
	// deletes: the kind is also checked on DELETE.
	deletes bool
	// decode decodes the admitted object and puts it into the snapshot, replacing its namesake.
	decode func(d admission.Decoder, raw runtime.RawExtension, s *config.Snapshot) (name string, err error)
}

// Path is where the kind's webhook is served, in controller-runtime's naming.
func (k kindHook) Path() string {
	return fmt.Sprintf("/validate-metallb-io-%s-%s", k.version, strings.ToLower(k.kind.String()))
}

// hooks is every kind the webhook validates.
var hooks = []kindHook{
	{kind: config.KindIPAddressPool, resource: "ipaddresspools", version: "v1beta1",
		decode: decodeInto(func(s *config.Snapshot) *[]v1beta1.IPAddressPool { return &s.Pools })},
	{kind: config.KindL2Advertisement, resource: "l2advertisements", version: "v1beta1",
		decode: decodeInto(func(s *config.Snapshot) *[]v1beta1.L2Advertisement { return &s.L2Advs })},
	{kind: config.KindBGPAdvertisement, resource: "bgpadvertisements", version: "v1beta1",
		decode: decodeInto(func(s *config.Snapshot) *[]v1beta1.BGPAdvertisement { return &s.BGPAdvs })},
	{kind: config.KindBGPPeer, resource: "bgppeers", version: "v1beta2",
		decode: decodeInto(func(s *config.Snapshot) *[]v1beta2.BGPPeer { return &s.Peers })},
	{kind: config.KindBFDProfile, resource: "bfdprofiles", version: "v1beta1", deletes: true,
		decode: decodeInto(func(s *config.Snapshot) *[]v1beta1.BFDProfile { return &s.BFDProfiles })},
	{kind: config.KindCommunity, resource: "communities", version: "v1beta1",
		decode: decodeInto(func(s *config.Snapshot) *[]v1beta1.Community { return &s.Communities })},
}

// decodeInto returns a decode function for a kind whose objects the snapshot keeps in the list
// field returns.
func decodeInto[T any, PT interface {
	*T
	client.Object
}](field func(*config.Snapshot) *[]T) func(admission.Decoder, runtime.RawExtension, *config.Snapshot) (string, error) {
	return func(d admission.Decoder, raw runtime.RawExtension, s *config.Snapshot) (string, error) {
		var obj T
		if err := d.DecodeRaw(raw, PT(&obj)); err != nil {
			return "", err
		}
		name := PT(&obj).GetName()
		list := field(s)
		*list = slices.DeleteFunc(*list, func(o T) bool { return PT(&o).GetName() == name })
		*list = append(*list, obj)
		return name, nil
	}
}

// Validator admits metallb.io configuration objects by compiling the configuration they would
// produce. It holds no state of its own; every replica serves it.
type Validator struct {
	// Reader lists the configuration; the manager's cached client is enough, since what the
	// webhook cannot see yet the controllers report in the ConfigurationState.
	Reader client.Reader
	// Namespace is the configuration namespace; objects elsewhere are admitted unchecked, as
	// ironlb ignores them.
	Namespace string
	// Decoder decodes admitted objects; build it with admission.NewDecoder(scheme).
	Decoder admission.Decoder
}

// Register serves one webhook per kind on r.
func (v *Validator) Register(r Registrar) {
	for _, k := range hooks {
		r.Register(k.Path(), &admission.Webhook{Handler: v.handler(k)})
	}
}

func (v *Validator) handler(k kindHook) admission.HandlerFunc {
	return func(ctx context.Context, req admission.Request) admission.Response {
		if req.Namespace != v.Namespace {
			return admission.Allowed("not in the configuration namespace " + v.Namespace)
		}
		snap, err := configlist.List(ctx, v.Reader, v.Namespace)
		if err != nil {
			return admission.Errored(http.StatusInternalServerError, err)
		}
		switch req.Operation {
		case admissionv1.Create, admissionv1.Update:
			return v.admit(ctx, k, req, snap)
		case admissionv1.Delete:
			if k.kind == config.KindBFDProfile {
				if peers := config.ReferencedBFDProfiles(snap)[req.Name]; len(peers) > 0 {
					return admission.Denied(fmt.Sprintf("BFDProfile %q is used by BGPPeer %s (spec.bfdProfile): remove it from those peers first",
						req.Name, quoteJoin(peers)))
				}
			}
		}
		return admission.Allowed("")
	}
}

// admit compiles the snapshot with the admitted object in it and judges only the problems that
// involve that object: a problem between two other objects is theirs to fix.
func (v *Validator) admit(ctx context.Context, k kindHook, req admission.Request, snap config.Snapshot) admission.Response {
	name, err := k.decode(v.Decoder, req.Object, &snap)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decode %s: %w", k.kind, err))
	}
	_, cerr := config.Compile(snap)
	var ce *config.Error
	if cerr == nil || !errors.As(cerr, &ce) {
		return admission.Allowed("")
	}
	var denials, warnings []string
	for _, p := range ce.For(k.kind, name) {
		text := describe(k.kind, name, p)
		if p.Type == config.ProblemMissingReference {
			warnings = append(warnings, text)
			continue
		}
		denials = append(denials, text)
	}
	if len(denials) > 0 {
		log.FromContext(ctx).Info("denied", "kind", k.kind, "name", name, "problems", len(denials))
		return admission.Denied(strings.Join(denials, "; ")).WithWarnings(warnings...)
	}
	return admission.Allowed("").WithWarnings(warnings...)
}

// describe states a problem from the admitted object's point of view: a problem reported on
// another object (this pool overlaps an older one, say) is prefixed with this object's field.
func describe(kind config.Kind, name string, p config.Problem) string {
	if p.Kind == kind && p.Name == name {
		return p.String()
	}
	field, _ := p.FieldIn(kind, name)
	if field == "" {
		return fmt.Sprintf("%s %q conflicts with %s", kind, name, p)
	}
	return fmt.Sprintf("%s %q %s conflicts with %s", kind, name, field, p)
}

func quoteJoin(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}

// Configuration returns the ValidatingWebhookConfiguration for the webhook: one webhook per kind,
// limited to the configuration namespace, failing closed. clientConfig says how the API server
// reaches a path (a Service in a cluster, a URL in tests); the caBundle is left empty for the
// CertManager to fill.
func Configuration(name, namespace string, clientConfig func(path string) admissionregistrationv1.WebhookClientConfig) *admissionregistrationv1.ValidatingWebhookConfiguration {
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}}
	fail := admissionregistrationv1.Fail
	// Equivalent: a v1beta1 BGPPeer is sent converted to v1beta2, the only version listed and
	// the one the webhook decodes.
	equivalent := admissionregistrationv1.Equivalent
	none := admissionregistrationv1.SideEffectClassNone
	timeout := int32(10)
	for _, k := range hooks {
		ops := []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}
		if k.deletes {
			ops = append(ops, admissionregistrationv1.Delete)
		}
		vwc.Webhooks = append(vwc.Webhooks, admissionregistrationv1.ValidatingWebhook{
			Name:         k.resource + ".validate.metallb.io",
			ClientConfig: clientConfig(k.Path()),
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: ops,
				Rule: admissionregistrationv1.Rule{APIGroups: []string{"metallb.io"}, APIVersions: []string{k.version},
					Resources: []string{k.resource}},
			}},
			FailurePolicy: &fail,
			MatchPolicy:   &equivalent,
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{
				corev1.LabelMetadataName: namespace}},
			SideEffects:             &none,
			TimeoutSeconds:          &timeout,
			AdmissionReviewVersions: []string{"v1"},
		})
	}
	return vwc
}
