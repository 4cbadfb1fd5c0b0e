package webhook

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// Keys of the certificate Secret.
const (
	KeyCACert = "ca.crt"
	KeyCAKey  = "ca.key"
	KeyCert   = corev1.TLSCertKey       // tls.crt
	KeyKey    = corev1.TLSPrivateKeyKey // tls.key
)

// Defaults of CertManager's fields.
const (
	DefaultSecretName    = "ironlb-webhook-cert"
	DefaultCAValidity    = 10 * 365 * 24 * time.Hour
	DefaultCertValidity  = 365 * 24 * time.Hour
	DefaultCheckInterval = time.Minute
	// retryInterval paces retries after a failed sync (API server unreachable, no
	// ValidatingWebhookConfiguration yet).
	retryInterval = 5 * time.Second
	// backdate covers clock skew between replicas and the API server.
	backdate = time.Hour
)

// CertManager keeps the webhook's serving certificate: a CA and a serving certificate it signs,
// stored in one Secret so every replica serves the same certificate. It creates the Secret when
// missing, replaces it when unusable, re-issues the serving certificate (same CA) once less than a
// third of its validity is left and the CA once less than a third of the CA's is left (the
// previous CA stays in the caBundle while it is valid, so replicas that still serve the old
// certificate keep working). It writes the serving certificate into CertDir, where the webhook
// server's certificate watcher picks it up, and keeps the caBundle of the
// ValidatingWebhookConfiguration in step.
//
// It runs in every replica (replicas race to create and rotate the Secret; the API server's
// optimistic concurrency picks one winner and the others adopt its result).
type CertManager struct {
	// Client writes the Secret and patches the ValidatingWebhookConfiguration.
	Client client.Writer
	// Reader reads them; use an uncached reader (the manager's APIReader) so a replica sees the
	// result of a race it lost at once.
	Reader client.Reader
	// Namespace holds the Secret.
	Namespace string
	// SecretName names the Secret. Default DefaultSecretName.
	SecretName string
	// WebhookConfigurationName names the ValidatingWebhookConfiguration whose caBundle is kept;
	// "" keeps none.
	WebhookConfigurationName string
	// DNSNames and IPs are the serving certificate's subject alternative names.
	DNSNames []string
	IPs      []netip.Addr
	// CertDir receives tls.crt and tls.key.
	CertDir string
	// CAValidity and CertValidity are the lifetimes of new certificates. Defaults
	// DefaultCAValidity (10 years) and DefaultCertValidity (1 year).
	CAValidity, CertValidity time.Duration
	// CheckInterval paces the checks for rotation and for other replicas' changes. Default
	// DefaultCheckInterval.
	CheckInterval time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time

	once  sync.Once
	ready chan struct{}
}

var _ manager.LeaderElectionRunnable = (*CertManager)(nil)

// NeedLeaderElection is false: every replica serves the webhook, so every replica needs the
// certificate files.
func (m *CertManager) NeedLeaderElection() bool { return false }

// Ready is closed once CertDir holds a serving certificate.
func (m *CertManager) Ready() <-chan struct{} { return m.readyCh() }

func (m *CertManager) readyCh() chan struct{} {
	m.once.Do(func() { m.ready = make(chan struct{}) })
	return m.ready
}

// Start syncs at once, then every CheckInterval (sooner after a failure), until ctx ends.
func (m *CertManager) Start(ctx context.Context) error {
	logger := log.FromContext(ctx).WithName("webhook-certs")
	for {
		wait := m.checkInterval()
		if err := m.Sync(ctx); err != nil {
			logger.Error(err, "sync webhook certificate")
			wait = min(wait, retryInterval)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

// Sync makes one pass: ensure a usable Secret, write the files, patch the caBundle.
func (m *CertManager) Sync(ctx context.Context) error {
	b, err := m.ensureSecret(ctx)
	if err != nil {
		return err
	}
	if err := m.writeFiles(b); err != nil {
		return err
	}
	select {
	case <-m.readyCh():
	default:
		close(m.readyCh())
	}
	return m.patchCABundle(ctx, b.caPEM)
}

// bundle is the content of the Secret.
type bundle struct {
	caPEM, caKeyPEM, certPEM, keyPEM []byte
}

func (b bundle) data() map[string][]byte {
	return map[string][]byte{KeyCACert: b.caPEM, KeyCAKey: b.caKeyPEM, KeyCert: b.certPEM, KeyKey: b.keyPEM}
}

func (m *CertManager) secretName() string { return cmp.Or(m.SecretName, DefaultSecretName) }

func (m *CertManager) checkInterval() time.Duration {
	return cmp.Or(m.CheckInterval, DefaultCheckInterval)
}

func (m *CertManager) now() time.Time {
	if m.Now == nil {
		return time.Now()
	}
	return m.Now()
}

// ensureSecret returns a usable bundle from the Secret, creating or renewing it as needed. A
// lost race (AlreadyExists, Conflict) is resolved by reading the winner's Secret again.
func (m *CertManager) ensureSecret(ctx context.Context) (bundle, error) {
	key := client.ObjectKey{Namespace: m.Namespace, Name: m.secretName()}
	for attempt := 0; ; attempt++ {
		sec := &corev1.Secret{}
		err := m.Reader.Get(ctx, key, sec)
		switch {
		case apierrors.IsNotFound(err):
			b, err := m.renew(bundle{})
			if err != nil {
				return bundle{}, err
			}
			sec = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: m.Namespace, Name: key.Name,
				Labels: map[string]string{"app.kubernetes.io/component": "controller"}},
				Type: corev1.SecretTypeTLS, Data: b.data()}
			err = m.Client.Create(ctx, sec)
			if err == nil {
				log.FromContext(ctx).Info("created webhook certificate", "secret", key)
				return b, nil
			}
			if !apierrors.IsAlreadyExists(err) || attempt > 2 {
				return bundle{}, fmt.Errorf("create webhook certificate Secret %s: %w", key, err)
			}
			continue // another replica created it first: use theirs
		case err != nil:
			return bundle{}, fmt.Errorf("read webhook certificate Secret %s: %w", key, err)
		}
		cur := bundle{caPEM: sec.Data[KeyCACert], caKeyPEM: sec.Data[KeyCAKey], certPEM: sec.Data[KeyCert], keyPEM: sec.Data[KeyKey]}
		b, err := m.renew(cur)
		if err != nil {
			return bundle{}, err
		}
		if bytes.Equal(b.certPEM, cur.certPEM) && bytes.Equal(b.caPEM, cur.caPEM) {
			return cur, nil
		}
		// The type stays as found: it is immutable, and a Secret someone made by hand may be
		// Opaque.
		sec.Data = b.data()
		err = m.Client.Update(ctx, sec)
		if err == nil {
			log.FromContext(ctx).Info("renewed webhook certificate", "secret", key)
			return b, nil
		}
		if !apierrors.IsConflict(err) || attempt > 2 {
			return bundle{}, fmt.Errorf("update webhook certificate Secret %s: %w", key, err)
		}
	}
}

// renew returns cur when it is still good, else a bundle with a fresh serving certificate, and
// a fresh CA too when cur's CA is unusable or near its end.
func (m *CertManager) renew(cur bundle) (bundle, error) {
	now := m.now()
	cas, caKey := parseCA(cur)
	caOK := len(cas) > 0 && caKey != nil && fresh(cas[0], now)
	if caOK && m.servingOK(cur, cas[0], now) {
		return cur, nil
	}
	out := cur
	if !caOK {
		ca, key, caPEM, keyPEM, err := m.newCA(now)
		if err != nil {
			return bundle{}, err
		}
		out.caPEM, out.caKeyPEM = caPEM, keyPEM
		// Keep the previous CA while it is valid: replicas serve its certificate until they
		// next sync.
		if len(cas) > 0 && caKey != nil && now.Before(cas[0].NotAfter) {
			out.caPEM = append(slices.Clip(caPEM), pemCert(cas[0].Raw)...)
		}
		cas, caKey = []*x509.Certificate{ca}, key
	} else {
		// Drop CAs other than the current one once they have expired.
		out.caPEM = pemCert(cas[0].Raw)
		for _, old := range cas[1:] {
			if now.Before(old.NotAfter) {
				out.caPEM = append(out.caPEM, pemCert(old.Raw)...)
			}
		}
	}
	certPEM, keyPEM, err := m.newServingCert(cas[0], caKey, now)
	if err != nil {
		return bundle{}, err
	}
	out.certPEM, out.keyPEM = certPEM, keyPEM
	return out, nil
}

// fresh reports whether c is valid at now with more than a third of its validity left.
func fresh(c *x509.Certificate, now time.Time) bool {
	life := c.NotAfter.Sub(c.NotBefore)
	return !now.Before(c.NotBefore) && now.Before(c.NotAfter.Add(-life/3))
}

// parseCA returns the CAs of ca.crt (current first) and the current CA's key; nil when unusable.
func parseCA(b bundle) ([]*x509.Certificate, *ecdsa.PrivateKey) {
	var cas []*x509.Certificate
	for rest := b.caPEM; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil || !c.IsCA {
			return nil, nil
		}
		cas = append(cas, c)
	}
	blk, _ := pem.Decode(b.caKeyPEM)
	if len(cas) == 0 || blk == nil {
		return cas, nil
	}
	key, err := x509.ParseECPrivateKey(blk.Bytes)
	if err != nil || !key.PublicKey.Equal(cas[0].PublicKey) {
		return cas, nil
	}
	return cas, key
}

// servingOK reports whether the bundle's serving certificate is signed by ca, matches its key
// and the wanted names, and is fresh.
func (m *CertManager) servingOK(b bundle, ca *x509.Certificate, now time.Time) bool {
	pair, err := tls.X509KeyPair(b.certPEM, b.keyPEM)
	if err != nil {
		return false
	}
	c, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil || c.CheckSignatureFrom(ca) != nil || !fresh(c, now) {
		return false
	}
	ips := make([]netip.Addr, 0, len(c.IPAddresses))
	for _, ip := range c.IPAddresses {
		a, _ := netip.AddrFromSlice(ip)
		ips = append(ips, a.Unmap())
	}
	return sameSet(c.DNSNames, m.DNSNames) && sameSet(ips, m.IPs)
}

func sameSet[T interface{ comparable }](a, b []T) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			return false
		}
	}
	return true
}

func (m *CertManager) newCA(now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, []byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("generate webhook CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: fmt.Sprintf("ironlb-webhook-ca@%d", now.Unix())},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(cmp.Or(m.CAValidity, DefaultCAValidity)),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("sign webhook CA: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	keyPEM, err := pemKey(key)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return ca, key, pemCert(der), keyPEM, nil
}

func (m *CertManager) newServingCert(ca *x509.Certificate, caKey *ecdsa.PrivateKey, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate webhook serving key: %w", err)
	}
	cn := "ironlb-webhook"
	if len(m.DNSNames) > 0 {
		cn = m.DNSNames[0]
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     m.DNSNames,
		NotBefore:    now.Add(-backdate),
		// Never beyond the CA, which would make the tail of its life unusable.
		NotAfter:    minTime(now.Add(cmp.Or(m.CertValidity, DefaultCertValidity)), ca.NotAfter),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, ip := range m.IPs {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(ip.AsSlice()))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("sign webhook serving certificate: %w", err)
	}
	keyPEM, err = pemKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pemCert(der), keyPEM, nil
}

// writeFiles puts the serving certificate into CertDir unless it is there already. Each file is
// replaced by a rename, so the certificate watcher never reads half a file; it re-reads both on
// either change, and retries a mismatched pair until the second file lands.
func (m *CertManager) writeFiles(b bundle) error {
	if err := os.MkdirAll(m.CertDir, 0o700); err != nil {
		return fmt.Errorf("make webhook certificate directory: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{KeyKey, b.keyPEM}, {KeyCert, b.certPEM}} {
		path := filepath.Join(m.CertDir, f.name)
		if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, f.data) {
			continue
		}
		tmp, err := os.CreateTemp(m.CertDir, "."+f.name+"-")
		if err != nil {
			return fmt.Errorf("write webhook certificate: %w", err)
		}
		_, werr := tmp.Write(f.data)
		err = errors.Join(werr, tmp.Close())
		if err == nil {
			err = os.Rename(tmp.Name(), path)
		}
		if err != nil {
			_ = os.Remove(tmp.Name())
			return fmt.Errorf("write webhook certificate %s: %w", path, err)
		}
	}
	return nil
}

// patchCABundle sets every webhook's caBundle of the ValidatingWebhookConfiguration to ca.
func (m *CertManager) patchCABundle(ctx context.Context, ca []byte) error {
	if m.WebhookConfigurationName == "" {
		return nil
	}
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := m.Reader.Get(ctx, client.ObjectKey{Name: m.WebhookConfigurationName}, vwc); err != nil {
		return fmt.Errorf("read ValidatingWebhookConfiguration %s to set its caBundle: %w", m.WebhookConfigurationName, err)
	}
	patch := client.MergeFromWithOptions(vwc.DeepCopy(), client.MergeFromWithOptimisticLock{})
	changed := false
	for i := range vwc.Webhooks {
		if !bytes.Equal(vwc.Webhooks[i].ClientConfig.CABundle, ca) {
			vwc.Webhooks[i].ClientConfig.CABundle, changed = ca, true
		}
	}
	if !changed {
		return nil
	}
	if err := m.Client.Patch(ctx, vwc, patch); err != nil {
		return fmt.Errorf("set caBundle of ValidatingWebhookConfiguration %s: %w", m.WebhookConfigurationName, err)
	}
	log.FromContext(ctx).Info("set webhook caBundle", "validatingWebhookConfiguration", m.WebhookConfigurationName)
	return nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(fmt.Sprintf("read random serial: %v", err)) // crypto/rand does not fail on supported platforms
	}
	return n
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func pemKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode webhook key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
