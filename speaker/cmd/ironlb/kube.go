package main

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/internal/scheme"
)

// kubeFlags are kubectl's connection flags (--kubeconfig, --context, -n, --server, --token,
// --request-timeout, ...), resolved the way kubectl resolves them: --kubeconfig, then
// $KUBECONFIG, then ~/.kube/config, then the pod's service account.
type kubeFlags struct {
	loading   *clientcmd.ClientConfigLoadingRules
	overrides *clientcmd.ConfigOverrides
}

func bindKubeFlags(fs *pflag.FlagSet) *kubeFlags {
	k := &kubeFlags{loading: clientcmd.NewDefaultClientConfigLoadingRules(), overrides: &clientcmd.ConfigOverrides{}}
	fs.StringVar(&k.loading.ExplicitPath, "kubeconfig", "", "path to the kubeconfig file (default $KUBECONFIG, ~/.kube/config, or the pod's service account)")
	clientcmd.BindOverrideFlags(k.overrides, fs, clientcmd.RecommendedConfigOverrideFlags(""))
	return k
}

func (k *kubeFlags) config() clientcmd.ClientConfig {
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(k.loading, k.overrides)
}

// client builds a client with the ironlb scheme; without --request-timeout requests give up after
// defaultTimeout, so an unreachable API server is reported, not waited for.
func (k *kubeFlags) client(defaultTimeout time.Duration) (client.Client, *rest.Config, error) {
	rc, err := k.config().ClientConfig()
	if clientcmd.IsEmptyConfig(err) {
		return nil, nil, fmt.Errorf("no kubeconfig: none given with --kubeconfig or $KUBECONFIG, no ~/.kube/config, and not in a pod")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	if rc.Timeout == 0 {
		rc.Timeout = defaultTimeout
	}
	s, err := scheme.New()
	if err != nil {
		return nil, nil, err
	}
	c, err := client.New(rc, client.Options{Scheme: s})
	if err != nil {
		return nil, nil, fmt.Errorf("connect to %s: %w", rc.Host, err)
	}
	return c, rc, nil
}

// clockSkew is how far the API server's clock is ahead of now(), from the Date header of a
// GET /version (one-second resolution, so to within a second).
func clockSkew(ctx context.Context, rc *rest.Config) (time.Duration, error) {
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		return 0, fmt.Errorf("build HTTP client: %w", err)
	}
	base, _, err := rest.DefaultServerUrlFor(rc)
	if err != nil {
		return 0, fmt.Errorf("API server URL: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base.JoinPath("version").String(), nil)
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	sent := now()
	resp, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("GET /version: %w", err)
	}
	received := now()
	_ = resp.Body.Close()
	server, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil {
		return 0, fmt.Errorf("GET /version: Date header %q: %w", resp.Header.Get("Date"), err)
	}
	// Date is truncated to the second: its middle, against the middle of the round trip.
	local := sent.Add(received.Sub(sent) / 2)
	return server.Add(500 * time.Millisecond).Sub(local), nil
}

// namespace is -n, or the kubeconfig context's namespace, or the pod's, or "default".
func (k *kubeFlags) namespace() (string, error) {
	ns, _, err := k.config().Namespace()
	if err != nil {
		return "", fmt.Errorf("find the namespace: %w", err)
	}
	return ns, nil
}
