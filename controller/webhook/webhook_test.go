package webhook_test

// IP plan (one configuration namespace, one controller, all scenarios in it):
//   probe       10.49.0.0/30                     valid pool that shows the webhook is reachable
//   preexisting 10.53.0.0/24 and 10.53.0.0/25     overlapping pools stored before the webhook existed
//   overlap     10.50.0.0/24 (a) vs 10.50.0.128/25 (b, denied); 10.51.0.0/24 + 10.51.0.0/25 in one pool
//   ipv6        fd00:50::10-fd00:50::1 (out of order, denied)
//   localpref   10.52.0.0/24
//   valid       10.54.0.0/24, fd00:54::/64

import (
	"github.com/ironlb/ironlb/internal/testenv"

	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/ironlb/ironlb/controller/app"
	"github.com/ironlb/ironlb/controller/webhook"
)

const waitFor = 30 * time.Second

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond until it holds or the deadline passes; cond says what it last saw.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	testenv.Eventually(t, waitFor, what, cond)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// warnings records the API server's warning headers.
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.list
	w.list = nil
	return out
}

// tester applies manifests in one namespace with a client that records warnings.
type tester struct {
	t    *testing.T
	ns   string
	c    client.Client
	warn *warnings
}

func newTester(t *testing.T, ns string) *tester {
	w := &warnings{}
	rc := rest.CopyConfig(env.Config)
	rc.WarningHandlerWithContext = w
	c, err := client.New(rc, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return &tester{t: t, ns: ns, c: c, warn: w}
}

func (tt *tester) object(manifest string) *unstructured.Unstructured {
	tt.t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(manifest), &u.Object); err != nil {
		tt.t.Fatalf("manifest: %v\n%s", err, manifest)
	}
	u.SetNamespace(tt.ns)
	return u
}

// create creates the object of manifest and returns the error and the warnings it produced.
func (tt *tester) create(manifest string) (error, []string) {
	tt.t.Helper()
	tt.warn.take()
	err := tt.c.Create(ctxFor(tt.t), tt.object(manifest))
	return err, tt.warn.take()
}

func (tt *tester) mustCreate(manifest string) {
	tt.t.Helper()
	if err, _ := tt.create(manifest); err != nil {
		tt.t.Fatalf("create: %v\n%s", err, manifest)
	}
}

func (tt *tester) delete(manifest string) error {
	tt.t.Helper()
	return tt.c.Delete(ctxFor(tt.t), tt.object(manifest))
}

// denied checks that err is a webhook denial whose message contains every want.
func denied(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("admitted; want a denial mentioning %q", want)
	}
	if !apierrors.IsForbidden(err) && !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "denied the request") {
		t.Fatalf("got %v; want a webhook denial", err)
	}
	t.Logf("denied: %v", err)
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("denial %q does not mention %q", err, w)
		}
	}
}

// deniedEventually repeats attempt until it is denied, undoing any attempt admitted meanwhile:
// the webhook reads the controller's cache, which sees objects the test has just written a
// moment later (as it would a user's `kubectl apply` of two files in quick succession).
func deniedEventually(t *testing.T, attempt func() error, undo func(), want ...string) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		err := attempt()
		if err != nil || time.Now().After(deadline) {
			denied(t, err, want...)
			return
		}
		undo()
		time.Sleep(50 * time.Millisecond)
	}
}

func pool(name string, addrs ...string) string {
	return fmt.Sprintf("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: %s}\nspec: {addresses: [%s]}\n",
		name, strings.Join(addrs, ", "))
}

func TestWebhook(t *testing.T) {
	ctx := ctxFor(t)
	ns, err := env.Namespace(ctx, "cfg")
	if err != nil {
		t.Fatal(err)
	}
	tt := newTester(t, ns)
	// A conflict stored before the webhook existed: it involves only these two pools, so it must
	// not block anything else.
	tt.mustCreate(pool("pre-1", "10.53.0.0/24"))
	tt.mustCreate(pool("pre-2", "10.53.0.0/25"))

	port, probePort := freePort(t), freePort(t)
	vwc := webhook.Configuration("ironlb-test-"+ns, ns, func(path string) admissionregistrationv1.WebhookClientConfig {
		url := fmt.Sprintf("https://127.0.0.1:%d%s", port, path)
		return admissionregistrationv1.WebhookClientConfig{URL: &url}
	})
	if err := env.Client.Create(ctx, vwc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), vwc) })
	startController(t, ns, func(c *app.Config) {
		c.WebhookPort, c.WebhookConfigurationName = port, vwc.Name
		c.WebhookHosts = []string{"127.0.0.1"}
		c.ProbeAddr = fmt.Sprintf("127.0.0.1:%d", probePort)
	})

	t.Run("cert manager fills the caBundle", func(t *testing.T) {
		eventually(t, "caBundle equals the Secret's ca.crt", func() (bool, string) {
			sec := &corev1.Secret{}
			if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: webhook.DefaultSecretName}, sec); err != nil {
				return false, err.Error()
			}
			got := &admissionregistrationv1.ValidatingWebhookConfiguration{}
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(vwc), got); err != nil {
				return false, err.Error()
			}
			for _, w := range got.Webhooks {
				if len(sec.Data["ca.crt"]) == 0 || !bytes.Equal(w.ClientConfig.CABundle, sec.Data["ca.crt"]) {
					return false, fmt.Sprintf("webhook %s has a caBundle of %d bytes", w.Name, len(w.ClientConfig.CABundle))
				}
			}
			return true, ""
		})
	})
	t.Run("ready once serving", func(t *testing.T) {
		eventually(t, "/readyz is 200", func() (bool, string) {
			resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", probePort))
			if err != nil {
				return false, err.Error()
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK, resp.Status
		})
	})
	t.Run("a valid pool is admitted beside a stored conflict of other pools", func(t *testing.T) {
		// The API server picks up the caBundle a moment after it is written.
		eventually(t, "probe pool admitted", func() (bool, string) {
			err, _ := tt.create(pool("probe", "10.49.0.0/30"))
			return err == nil, fmt.Sprint(err)
		})
		if err, warns := tt.create(pool("valid", "10.54.0.0/24", "fd00:54::/64")); err != nil || len(warns) > 0 {
			t.Fatalf("got %v, warnings %q; want admitted without warnings", err, warns)
		}
	})

	cases := []struct {
		name     string
		setup    []string
		manifest string
		want     []string
	}{
		{
			name:     "overlapping pools across objects",
			setup:    []string{pool("a", "10.50.0.0/24")},
			manifest: pool("b", "10.50.0.128/25"),
			want:     []string{`IPAddressPool "b": spec.addresses[0]`, `IPAddressPool "a" spec.addresses[0]`, "make the pools disjoint"},
		},
		{
			name:     "overlapping entries within a pool",
			manifest: pool("self", "10.51.0.0/24", "10.51.0.0/25"),
			want:     []string{"spec.addresses[1]", "of the same pool"},
		},
		{
			name:     "IPv6 range out of order",
			manifest: pool("v6", "fd00:50::10-fd00:50::1"),
			want:     []string{"spec.addresses[0]"},
		},
		{
			name: "duplicate Community alias across objects",
			setup: []string{"apiVersion: metallb.io/v1beta1\nkind: Community\nmetadata: {name: c1}\n" +
				"spec: {communities: [{name: gold, value: '65000:100'}]}\n"},
			manifest: "apiVersion: metallb.io/v1beta1\nkind: Community\nmetadata: {name: c2}\n" +
				"spec: {communities: [{name: gold, value: '65000:200'}]}\n",
			want: []string{"spec.communities[0].name", `alias "gold"`, "unique across Community objects"},
		},
		{
			name: "malformed pool selector",
			manifest: "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: badsel}\n" +
				"spec: {ipAddressPoolSelectors: [{matchExpressions: [{key: tier, operator: In}]}]}\n",
			want: []string{"spec.ipAddressPoolSelectors"},
		},
		{
			name: "conflicting localPref for one pool",
			setup: []string{pool("lp", "10.52.0.0/24"),
				"apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: lp-a}\nspec: {localPref: 100, ipAddressPools: [lp]}\n"},
			manifest: "apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: lp-b}\nspec: {localPref: 200, ipAddressPools: [lp]}\n",
			want:     []string{"spec.localPref", `BGPAdvertisement "lp-a"`},
		},
	}
	for _, c := range cases {
		t.Run(c.name+" is denied", func(t *testing.T) {
			for _, m := range c.setup {
				tt.mustCreate(m)
			}
			deniedEventually(t, func() error { err, _ := tt.create(c.manifest); return err },
				func() { _ = tt.delete(c.manifest) }, c.want...)
		})
	}

	t.Run("missing references are admitted with warnings", func(t *testing.T) {
		for _, c := range []struct{ manifest, want string }{
			{"apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l2-missing}\nspec: {ipAddressPools: [nope]}\n",
				`spec.ipAddressPools[0] names IPAddressPool "nope"`},
			// Sent as v1beta1, validated as v1beta2 (matchPolicy Equivalent).
			{"apiVersion: metallb.io/v1beta1\nkind: BGPPeer\nmetadata: {name: v1-peer}\n" +
				"spec: {myASN: 64500, peerASN: 64501, peerAddress: 192.0.2.9, bfdProfile: missing}\n",
				"spec.bfdProfile"},
		} {
			err, warns := tt.create(c.manifest)
			if err != nil {
				t.Fatalf("got %v; want admitted", err)
			}
			if !strings.Contains(strings.Join(warns, "\n"), c.want) {
				t.Errorf("warnings %q do not mention %q", warns, c.want)
			}
		}
	})

	t.Run("deleting a BFDProfile in use is denied until the peer is gone", func(t *testing.T) {
		bfd := "apiVersion: metallb.io/v1beta1\nkind: BFDProfile\nmetadata: {name: bfd1}\n"
		peer := "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: peer1}\n" +
			"spec: {myASN: 64500, peerASN: 64502, peerAddress: 192.0.2.1, bfdProfile: bfd1}\n"
		tt.mustCreate(bfd)
		tt.mustCreate(peer)
		deniedEventually(t, func() error { return tt.delete(bfd) }, func() { tt.mustCreate(bfd) },
			`BFDProfile "bfd1"`, `"peer1"`)
		if err := tt.delete(peer); err != nil {
			t.Fatal(err)
		}
		// The webhook reads the cache, which sees the peer's deletion a moment later.
		eventually(t, "BFDProfile deleted", func() (bool, string) {
			err := tt.delete(bfd)
			return err == nil, fmt.Sprint(err)
		})
	})
}
