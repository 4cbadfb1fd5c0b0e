// Package demo tells the seeds' story on one machine, for `make demo`: a real control plane,
// the controller, three nodes with speakers on a LAN of network namespaces, seed 000's
// manifests applied unchanged, and what a user then checks — the Service's EXTERNAL-IP, which
// node answers ARP for it, and how fast another node takes over when that one is cut off.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/controller/app"
	"github.com/ironlb/ironlb/e2etest/cluster"
	"github.com/ironlb/ironlb/e2etest/lab"
	"github.com/ironlb/ironlb/internal/testenv"
)

// Prefix names the demo's network namespaces (ilbdemo-lan, ilbdemo-node1, ...).
const Prefix = "ilbdemo"

const configNS = "metallb-system"

// The seed's L2 mode needs an L2Advertisement next to the pool (MetalLB's docs say so too).
const l2Advertisement = `apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata:
  name: l2
  namespace: metallb-system
`

// Options change what Run does.
type Options struct {
	// Keep leaves everything running after the story until ctx ends (Ctrl-C), and prints how
	// to look around.
	Keep bool
}

// Run tells the story on out. It needs root (network namespaces) and the binaries of `make
// test-assets`.
func Run(ctx context.Context, opts Options, out io.Writer) (err error) {
	if os.Geteuid() != 0 {
		return errors.New("the demo builds network namespaces: run it as root (sudo make demo)")
	}
	p := &printer{out: out, start: time.Now()}
	root, err := testenv.RepoRoot()
	if err != nil {
		return err
	}

	p.step("Starting a real control plane: etcd and kube-apiserver (built by make test-assets), with ironlb's CRDs")
	env, err := testenv.Start()
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, env.Stop()) }()

	p.step("Building the speaker")
	dir, err := os.MkdirTemp("", "ironlb-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, err := cluster.BuildSpeaker(root, dir)
	if err != nil {
		return err
	}

	p.step("Building the LAN: a bridge, a client, a router and three nodes, each in its own network namespace")
	u, err := url.Parse(env.Config.Host)
	if err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(dir, "speakers.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	if err := createNodes(ctx, env.Client, 3); err != nil {
		return err
	}
	c, err := cluster.Start(ctx, cluster.Config{Prefix: Prefix, APIAddr: u.Host, Kubeconfig: env.Kubeconfig,
		Namespace: configNS, SpeakerBin: bin, Output: logFile})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, c.Close()) }()
	for _, n := range c.Nodes {
		p.detail("%s  %-8s %s  %s", n.Name, cluster.NodeName(n), n.IPv4, n.MAC)
	}
	p.detail("%s  client   %s  %s", c.Client.Name, c.Client.IPv4, c.Client.MAC)
	p.detail("a speaker runs in every node namespace; the controller runs in this process")

	ctrlCtx, stopController := context.WithCancel(ctx)
	ctrlDone := make(chan error, 1)
	go func() {
		ctrlDone <- app.Run(ctrlCtx, app.Config{Namespace: configNS, MetricsAddr: "0", ProbeAddr: "0",
			LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second,
			LeaderElectionID: "ironlb-controller", QPS: 1000, Burst: 2000, Workers: 32}, env.Config)
	}()
	defer func() {
		stopController()
		err = errors.Join(err, <-ctrlDone)
	}()

	p.step("Applying seed 000's manifests, unchanged, plus the L2Advertisement")
	if err := env.EnsureNamespace(ctx, configNS); err != nil {
		return err
	}
	for _, f := range []string{"000-first-pool.yaml", "000-testsvc.yaml"} {
		b, err := os.ReadFile(filepath.Join(root, "e2etest", "testdata", "seeds", f))
		if err != nil {
			return err
		}
		p.file(f, string(b))
		// The pool names its namespace; the Service goes where the tutorial puts it.
		if _, err := env.Kubectl(ctx, b, "apply", "-n", "default", "-f", "-"); err != nil && strings.Contains(err.Error(), "does not match the namespace") {
			_, err = env.Kubectl(ctx, b, "apply", "-f", "-")
			if err != nil {
				return err
			}
		} else if err != nil {
			return err
		}
	}
	p.file("l2advertisement.yaml", l2Advertisement)
	if _, err := env.Kubectl(ctx, []byte(l2Advertisement), "apply", "-f", "-"); err != nil {
		return err
	}
	// No kubelet runs here: say where testsvc's pods are, as kube-controller-manager would.
	if err := endpoints(ctx, env.Client, "default", "testsvc", "node1", "node2", "node3"); err != nil {
		return err
	}

	p.step("kubectl get svc testsvc")
	ip, err := waitIP(ctx, env.Client, "default", "testsvc")
	if err != nil {
		return err
	}
	svcOut, _ := env.Kubectl(ctx, nil, "get", "svc", "-n", "default", "testsvc")
	p.block(svcOut)
	p.detail("EXTERNAL-IP %s instead of <pending>: the controller took the first free address of first-pool", ip)

	p.step("Who answers ARP for %s? (arping from the client)", ip)
	owner, err := soleAnswerer(ctx, c, ip, 30*time.Second)
	if err != nil {
		return err
	}
	p.detail("%s answers, and only it (arping -b broadcasts: a second answerer would show)", owner)
	st, _ := env.Kubectl(ctx, nil, "get", "servicel2statuses", "-n", configNS)
	p.block(st)

	p.step("Pulling %s's cable", owner)
	w, err := cluster.WatchARP(c.Client, netip.MustParseAddr(ip), 20*time.Millisecond)
	if err != nil {
		return err
	}
	defer w.Close()
	ownerMAC := strings.ToLower(c.Node(owner).MAC.String())
	cut := time.Now()
	if err := c.CutLink(c.Node(owner)); err != nil {
		return err
	}
	var garp, answer time.Time
	var mac string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var okG, okA bool
		garp, mac, okG = w.First(cut, true, "", ownerMAC)
		answer, _, okA = w.First(cut, false, "", ownerMAC)
		if okG && okA {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no other node took %s over within 10s", ip)
		}
	}
	p.detail("%s took over: its gratuitous ARP reached the client %v after the cut, and it answered the client's ARP after %v",
		c.NodeByMAC(mac), garp.Sub(cut).Round(time.Millisecond), answer.Sub(cut).Round(time.Millisecond))
	p.detail("(MetalLB's defaults need about 4-5 s to notice a dead node)")

	p.step("Plugging the cable back")
	if err := c.RestoreLink(c.Node(owner)); err != nil {
		return err
	}
	back := time.Now()
	for {
		home, err := soleAnswerer(ctx, c, ip, 30*time.Second)
		if err != nil {
			return err
		}
		if home == owner {
			break
		}
		if time.Since(back) > 30*time.Second {
			return fmt.Errorf("%s did not take %s back within 30s", owner, ip)
		}
	}
	var homeGARP time.Time
	for deadline := time.Now().Add(3 * time.Second); homeGARP.IsZero() && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		homeGARP, _, _ = w.First(back, true, ownerMAC, "")
	}
	p.detail("%s answers again, alone: the election is stateless, so the VIP goes home when its node is back", owner)
	if !homeGARP.IsZero() {
		p.detail("and %s told the LAN with a gratuitous ARP %v after the cable came back", owner, homeGARP.Sub(back).Round(time.Millisecond))
	}

	p.step("Not in this demo yet")
	p.detail("curl %s:8989 from the client: forwarding to pods arrives with the nftables proxy core", ip)
	p.detail("the router's BGP routes: BGP mode is not built yet")

	if opts.Keep {
		p.step("Leaving it running until Ctrl-C")
		p.detail("export KUBECONFIG=%s", env.Kubeconfig)
		p.detail("kubectl get svc,servicel2statuses -A        (kubectl: %s)", filepath.Join(root, "bin", "kubectl"))
		p.detail("ip netns exec %s arping -c 3 -I eth0 %s", c.Client.Name, ip)
		p.detail("speaker logs: %s", logFile.Name())
		<-ctx.Done()
	}
	p.step("Cleaning up: namespaces, speakers, control plane")
	return nil
}

// Down removes what a killed demo left behind: its network namespaces (and the processes in
// them).
func Down(ctx context.Context) error {
	names, err := lab.Namespaces(ctx, Prefix)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range names {
		if pids, err := exec.CommandContext(ctx, "ip", "netns", "pids", n).Output(); err == nil {
			for _, pid := range strings.Fields(string(pids)) {
				_ = exec.CommandContext(ctx, "kill", "-9", pid).Run()
			}
		}
		if out, err := exec.CommandContext(ctx, "ip", "netns", "del", n).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip netns del %s: %w: %s", n, err, out))
		}
	}
	return errors.Join(errs...)
}

func createNodes(ctx context.Context, c client.Client, n int) error {
	for i := 1; i <= n; i++ {
		name := fmt.Sprintf("node%d", i)
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name}}}
		if err := c.Create(ctx, node); err != nil {
			return fmt.Errorf("create Node %s: %w", name, err)
		}
	}
	return nil
}

func endpoints(ctx context.Context, c client.Client, ns, svc string, nodes ...string) error {
	eps := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: svc + "-demo", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for i, n := range nodes {
		eps.Endpoints = append(eps.Endpoints, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.244.%d.2", i+1)}, NodeName: ptr.To(n)})
	}
	if err := c.Create(ctx, eps); err != nil {
		return fmt.Errorf("create EndpointSlice for %s/%s: %w", ns, svc, err)
	}
	return nil
}

func waitIP(ctx context.Context, c client.Client, ns, name string) (string, error) {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		var svc corev1.Service
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &svc); err == nil && len(svc.Status.LoadBalancer.Ingress) > 0 {
			return svc.Status.LoadBalancer.Ingress[0].IP, nil
		}
	}
	return "", fmt.Errorf("%s/%s got no EXTERNAL-IP within 30s", ns, name)
}

func soleAnswerer(ctx context.Context, c *cluster.Cluster, ip string, timeout time.Duration) (string, error) {
	var last map[string]int
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		last = c.Arping(ip, 2)
		if owner := cluster.OnlyOne(last, 2); owner != "" {
			return owner, nil
		}
	}
	return "", fmt.Errorf("no single node answered ARP for %s within %v (replies %v)", ip, timeout, last)
}

// printer writes the story: numbered steps with the time since start, details indented.
type printer struct {
	out   io.Writer
	start time.Time
	n     int
}

func (p *printer) step(format string, args ...any) {
	p.n++
	fmt.Fprintf(p.out, "\n[%2d] %s  (%.1fs)\n", p.n, fmt.Sprintf(format, args...), time.Since(p.start).Seconds())
}

func (p *printer) detail(format string, args ...any) {
	fmt.Fprintf(p.out, "     %s\n", fmt.Sprintf(format, args...))
}

func (p *printer) block(s string) {
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		fmt.Fprintf(p.out, "     | %s\n", l)
	}
}

func (p *printer) file(name, content string) {
	fmt.Fprintf(p.out, "     --- %s\n", name)
	p.block(content)
}
