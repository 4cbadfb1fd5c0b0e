package main

import (
	"fmt"
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

// namespace is -n, or the kubeconfig context's namespace, or the pod's, or "default".
func (k *kubeFlags) namespace() (string, error) {
	ns, _, err := k.config().Namespace()
	if err != nil {
		return "", fmt.Errorf("find the namespace: %w", err)
	}
	return ns, nil
}
