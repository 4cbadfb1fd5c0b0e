package webhook_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/controller/webhook"
)

// clock is a settable clock for CertManager.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.now = t }

func certManager(t *testing.T, ns string, c *clock) *webhook.CertManager {
	return &webhook.CertManager{
		Client: env.Client, Reader: env.Client, Namespace: ns,
		DNSNames: []string{"ironlb-webhook." + ns + ".svc", "ironlb-webhook." + ns + ".svc.cluster.local"},
		IPs:      []netip.Addr{netip.MustParseAddr("127.0.0.1")},
		CertDir:  t.TempDir(), Now: c.Now,
	}
}

// issued is what a Sync left in the Secret and in CertDir.
type issued struct {
	cas  []*x509.Certificate // current first
	leaf *x509.Certificate
	file []byte
}

func readIssued(t *testing.T, m *webhook.CertManager) issued {
	t.Helper()
	sec := &corev1.Secret{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: m.Namespace, Name: webhook.DefaultSecretName}, sec); err != nil {
		t.Fatal(err)
	}
	var out issued
	for rest := sec.Data[webhook.KeyCACert]; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		ca, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		out.cas = append(out.cas, ca)
	}
	b, _ := pem.Decode(sec.Data[webhook.KeyCert])
	if b == nil || len(out.cas) == 0 {
		t.Fatalf("Secret holds no certificate: %q", sec.Data)
	}
	var err error
	if out.leaf, err = x509.ParseCertificate(b.Bytes); err != nil {
		t.Fatal(err)
	}
	if out.file, err = os.ReadFile(filepath.Join(m.CertDir, "tls.crt")); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.file, sec.Data[webhook.KeyCert]) {
		t.Errorf("CertDir's tls.crt differs from the Secret's")
	}
	return out
}

// verify checks that the serving certificate is valid at now for the webhook's names, under the
// current CA.
func (is issued) verify(t *testing.T, m *webhook.CertManager, now time.Time) {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(is.cas[0])
	for _, name := range append(m.DNSNames, "127.0.0.1") {
		if _, err := is.leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, CurrentTime: now}); err != nil {
			t.Errorf("serving certificate for %s: %v", name, err)
		}
	}
}

func mustSync(t *testing.T, m *webhook.CertManager) {
	t.Helper()
	if err := m.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-m.Ready():
	default:
		t.Fatal("not Ready after a successful Sync")
	}
}

func TestCertManagerRotation(t *testing.T) {
	ctx := ctxFor(t)
	ns, err := env.Namespace(ctx, "certs")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	c := &clock{now: start}
	m := certManager(t, ns, c)
	mustSync(t, m)
	first := readIssued(t, m)
	first.verify(t, m, start)
	life := first.leaf.NotAfter.Sub(first.leaf.NotBefore)
	if want := webhook.DefaultCertValidity + time.Hour; life != want {
		t.Errorf("serving certificate lasts %s; want %s (1 year, backdated 1h)", life, want)
	}

	// Before two thirds of its life: kept.
	c.Set(first.leaf.NotBefore.Add(life * 6 / 10))
	mustSync(t, m)
	if kept := readIssued(t, m); kept.leaf.SerialNumber.Cmp(first.leaf.SerialNumber) != 0 {
		t.Errorf("serving certificate renewed at 60%% of its life")
	}

	// Past two thirds: a new serving certificate from the same CA.
	now := first.leaf.NotBefore.Add(life * 7 / 10)
	c.Set(now)
	mustSync(t, m)
	second := readIssued(t, m)
	if second.leaf.SerialNumber.Cmp(first.leaf.SerialNumber) == 0 {
		t.Fatalf("serving certificate not renewed at 70%% of its life")
	}
	if !second.cas[0].Equal(first.cas[0]) || len(second.cas) != 1 {
		t.Errorf("CA changed on a serving certificate renewal")
	}
	second.verify(t, m, now)

	// Another replica (its own CertDir) adopts the Secret as it is.
	other := certManager(t, ns, c)
	mustSync(t, other)
	if got := readIssued(t, other); !got.leaf.Equal(second.leaf) {
		t.Errorf("second replica replaced a good certificate")
	}

	// Past two thirds of the CA's life: a new CA; the old one stays in the bundle while valid,
	// so replicas still serving its certificate keep working until they sync.
	caLife := first.cas[0].NotAfter.Sub(first.cas[0].NotBefore)
	now = first.cas[0].NotBefore.Add(caLife * 7 / 10)
	c.Set(now)
	mustSync(t, m)
	third := readIssued(t, m)
	if third.cas[0].Equal(first.cas[0]) || len(third.cas) != 2 || !third.cas[1].Equal(first.cas[0]) {
		t.Fatalf("got %d CAs, new first: %v; want a new CA followed by the old one", len(third.cas), !third.cas[0].Equal(first.cas[0]))
	}
	third.verify(t, m, now)
}

func TestCertManagerReplacesUnusableSecret(t *testing.T) {
	ctx := ctxFor(t)
	start := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		// prepare puts the unusable Secret in place.
		prepare func(t *testing.T, ns string)
		// later is when the replacing Sync runs.
		later time.Time
		// keepsCA: the CA is still good, only the serving certificate is replaced.
		keepsCA bool
	}{
		{
			name: "garbage",
			prepare: func(t *testing.T, ns string) {
				sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: webhook.DefaultSecretName},
					Data: map[string][]byte{"ca.crt": []byte("junk"), "tls.crt": []byte("junk"), "tls.key": []byte("junk")}}
				if err := env.Client.Create(ctx, sec); err != nil {
					t.Fatal(err)
				}
			},
			later: start,
		},
		{
			name:    "expired serving certificate",
			prepare: func(t *testing.T, ns string) { mustSync(t, certManager(t, ns, &clock{now: start})) },
			later:   start.Add(2 * webhook.DefaultCertValidity),
			keepsCA: true,
		},
		{
			name:    "expired CA",
			prepare: func(t *testing.T, ns string) { mustSync(t, certManager(t, ns, &clock{now: start})) },
			later:   start.Add(11 * 365 * 24 * time.Hour),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns, err := env.Namespace(ctx, "certs")
			if err != nil {
				t.Fatal(err)
			}
			tc.prepare(t, ns)
			before := &corev1.Secret{}
			if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: webhook.DefaultSecretName}, before); err != nil {
				t.Fatal(err)
			}
			m := certManager(t, ns, &clock{now: tc.later})
			mustSync(t, m)
			got := readIssued(t, m)
			got.verify(t, m, tc.later)
			if bytes.Equal(got.file, before.Data["tls.crt"]) {
				t.Errorf("serving certificate not replaced")
			}
			sameCA := bytes.Equal(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: got.cas[0].Raw}), before.Data["ca.crt"])
			if sameCA != tc.keepsCA {
				t.Errorf("CA kept: %v; want %v", sameCA, tc.keepsCA)
			}
			if len(got.cas) != 1 {
				t.Errorf("caBundle holds %d CAs; want 1 (an expired or unparsable CA is dropped)", len(got.cas))
			}
		})
	}
}

// Replicas start together: one creates the Secret, the others adopt it.
func TestCertManagerCreationRace(t *testing.T) {
	ctx := ctxFor(t)
	ns, err := env.Namespace(ctx, "certs")
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{now: time.Now()}
	ms := make([]*webhook.CertManager, 4)
	errs := make([]error, len(ms))
	var wg sync.WaitGroup
	for i := range ms {
		ms[i] = certManager(t, ns, c)
		wg.Go(func() { errs[i] = ms[i].Sync(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
	want := readIssued(t, ms[0])
	for _, m := range ms[1:] {
		if got := readIssued(t, m); !bytes.Equal(got.file, want.file) {
			t.Errorf("replicas serve different certificates")
		}
	}
}
