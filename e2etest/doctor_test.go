package e2etest

// `ironlb doctor` and `ironlb status` in the lab, each doctor check with its fault injected for
// real: sysctls flipped inside a node's namespace (ip_forward and, on this kernel with
// br_netfilter built in, bridge-nf-call-iptables are per network namespace), a dummy
// kube-ipvs0 holding the VIP whose kernel then answers ARP besides the speaker, a kube-proxy
// ConfigMap in IPVS mode without strictARP, a pool over node and pod addresses, and an eTP Local
// Service left announced by a node whose endpoint moved away while the speakers could not reach
// the API server.
//
// IP plan: as TestL2 — nodes node1..node3 at 192.168.50.11-13 with pod CIDRs 10.244.N.0/24,
// seed 000's pool first-pool 192.168.50.50-52, testsvc 192.168.50.50, the eTP Local Service
// "local" 192.168.50.51; the overlapping pool "overlap" holds 192.168.50.11-12 and 10.244.3.0/28.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/e2etest/cluster"
	"github.com/ironlb/ironlb/e2etest/lab"
	"github.com/ironlb/ironlb/internal/doctor"
	"github.com/ironlb/ironlb/internal/testenv"
)

// buildIronlb builds the ironlb command once per test binary, next to the speaker.
var buildIronlb = sync.OnceValues(func() (string, error) {
	dir, err := buildDir()
	if err != nil {
		return "", err
	}
	return cluster.BuildIronlb(env.Root, dir)
})

// find returns the results of one check.
func find(r doctor.Report, c doctor.Check) []doctor.Result {
	var out []doctor.Result
	for _, res := range r.Results {
		if res.Check == c {
			out = append(out, res)
		}
	}
	return out
}

// expect fails unless some result of check c has severity sev and mentions every text.
func expect(t *testing.T, r doctor.Report, c doctor.Check, sev doctor.Severity, texts ...string) {
	t.Helper()
	for _, res := range find(r, c) {
		line := res.Subject + " | " + res.Found
		if res.Severity == sev && !slices.ContainsFunc(texts, func(s string) bool { return !strings.Contains(line, s) }) {
			return
		}
	}
	t.Errorf("no %s result of %s mentioning %q; got:\n%s", sev, c, texts, dumpReport(r))
}

func dumpReport(r doctor.Report) string {
	var b strings.Builder
	for _, res := range r.Results {
		fmt.Fprintf(&b, "  %-7s %-24s %s | %s\n", res.Severity, res.Check, res.Subject, res.Found)
	}
	return b.String()
}

// setNodeNetworks gives the Node objects what kubelet and the node IPAM controller would: the
// InternalIP of the lab node and its pod CIDR.
func setNodeNetworks(t *testing.T, l *l2Lab) {
	t.Helper()
	ctx := context.Background()
	for _, n := range l.Nodes {
		var node corev1.Node
		if err := env.Client.Get(ctx, client.ObjectKey{Name: cluster.NodeName(n)}, &node); err != nil {
			t.Fatal(err)
		}
		if len(node.Spec.PodCIDRs) == 0 {
			node.Spec.PodCIDR, node.Spec.PodCIDRs = n.PodCIDR.String(), []string{n.PodCIDR.String()}
			if err := env.Client.Update(ctx, &node); err != nil {
				t.Fatal(err)
			}
		}
		node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: n.IPv4.String()},
			{Type: corev1.NodeHostName, Address: cluster.NodeName(n)}}
		if err := env.Client.Status().Update(ctx, &node); err != nil {
			t.Fatal(err)
		}
	}
}

func inNode(t *testing.T, n *lab.Node, args ...string) {
	t.Helper()
	if _, err := n.Exec(context.Background(), args...); err != nil {
		t.Fatal(err)
	}
}

// cliInRoot runs the ironlb command in the test's own namespace (a workstation, as far as the
// cluster can tell) and returns its stdout and exit code.
func cliInRoot(t *testing.T, bin string, args ...string) (string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(bin, append(args, "--kubeconfig", env.Kubeconfig)...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return out.String(), 0
	case errors.As(err, &ee):
		return out.String(), ee.ExitCode()
	}
	t.Fatalf("%s %v: %v: %s", bin, args, err, errb.String())
	return "", -1
}

func TestDoctor(t *testing.T) {
	l, ns, ip := seedStory(t, "ilb-doc")
	bin, err := buildIronlb()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	setNodeNetworks(t, l)
	owner := l.soleAnswerer(t, ip, 30*time.Second)
	// other and third are the two nodes that do not announce testsvc.
	var others []*lab.Node
	for _, n := range l.Nodes {
		if cluster.NodeName(n) != owner {
			others = append(others, n)
		}
	}
	other, third := others[0], others[1]
	run := func(t *testing.T, n *lab.Node, args ...string) (doctor.Report, int) {
		t.Helper()
		r, code, err := l.Doctor(ctx, bin, n, args...)
		if err != nil {
			t.Fatal(err)
		}
		return r, code
	}

	t.Run("a healthy lab: no problem on any node", func(t *testing.T) {
		for _, n := range l.Nodes {
			r, code := run(t, n)
			if r.Node != cluster.NodeName(n) {
				t.Errorf("doctor in %s found node %q, want %s (by its InternalIP)", n.Name, r.Node, cluster.NodeName(n))
			}
			if code != 0 || r.Problems() != 0 {
				t.Errorf("%s: exit %d with %d problems:\n%s", n.Name, code, r.Problems(), dumpReport(r))
			}
			expect(t, r, doctor.CheckDuplicateARP, doctor.OK, "VIP "+ip, "one MAC")
			expect(t, r, doctor.CheckKubeProxy, doctor.Skipped, "not found")
		}
	})

	t.Run("ip_forward off", func(t *testing.T) {
		inNode(t, other, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0")
		t.Cleanup(func() { inNode(t, other, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1") })
		r, code := run(t, other, "--no-probe")
		expect(t, r, doctor.CheckIPForward, doctor.Error, "net.ipv4.ip_forward=0")
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		r, _ = run(t, third, "--no-probe")
		expect(t, r, doctor.CheckIPForward, doctor.OK, "net.ipv4.ip_forward=1")
	})

	t.Run("bridge-nf-call-iptables=0 with a bridge (seed 003)", func(t *testing.T) {
		inNode(t, other, "ip", "link", "add", "cni0", "type", "bridge")
		t.Cleanup(func() { inNode(t, other, "ip", "link", "del", "cni0") })
		// A bridge bridges something only with a port (a pod's veth on a real node); one
		// without is no finding.
		r, _ := run(t, other, "--no-probe")
		expect(t, r, doctor.CheckBridgeNF, doctor.OK, "cni0: nothing attached")
		inNode(t, other, "ip", "link", "add", "cni0p0", "type", "veth", "peer", "name", "cni0p1") // no dummy driver here
		t.Cleanup(func() { inNode(t, other, "ip", "link", "del", "cni0p0") })
		inNode(t, other, "ip", "link", "set", "cni0p0", "master", "cni0")
		if _, err := other.Exec(ctx, "sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=0"); err != nil {
			// No br_netfilter in this kernel: the sysctl is missing, which the doctor reports too.
			t.Logf("cannot set bridge-nf-call-iptables in the node namespace (%v): checking the br_netfilter-missing branch", err)
			r, _ = run(t, other, "--no-probe")
			expect(t, r, doctor.CheckBridgeNF, doctor.Error, "br_netfilter is not loaded", "cni0")
			return
		}
		r, code := run(t, other, "--no-probe")
		expect(t, r, doctor.CheckBridgeNF, doctor.Error, "net.bridge.bridge-nf-call-iptables=0 while bridge cni0 exists")
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		inNode(t, other, "sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1")
		r, _ = run(t, other, "--no-probe")
		expect(t, r, doctor.CheckBridgeNF, doctor.OK, "bridges: cni0")
	})

	t.Run("VIP on kube-ipvs0 without strictARP: a second MAC answers (seed 000)", func(t *testing.T) {
		// What kube-proxy's IPVS mode does on every node: a dummy link, left down, holding every
		// Service IP; with arp_ignore=0 the kernel answers ARP for them on eth0. This kernel has
		// no dummy driver, so a veth stands in: left down with ARP off (IFF_NOARP, as a dummy),
		// its addresses are local all the same.
		inNode(t, other, "ip", "link", "add", "kube-ipvs0", "type", "veth", "peer", "name", "kube-ipvs0p")
		inNode(t, other, "ip", "link", "set", "kube-ipvs0", "arp", "off")
		t.Cleanup(func() {
			inNode(t, other, "ip", "link", "del", "kube-ipvs0")
			inNode(t, other, "sysctl", "-q", "-w", "net.ipv4.conf.all.arp_ignore=0", "net.ipv4.conf.all.arp_announce=0")
		})
		inNode(t, other, "ip", "addr", "add", ip+"/32", "dev", "kube-ipvs0")
		otherName := cluster.NodeName(other)
		testenv.Eventually(t, 10*time.Second, "the client hears two answerers", func() (bool, string) {
			got := l.Arping(ip, 2)
			return got[owner] > 0 && got[otherName] > 0, fmt.Sprintf("replies %v", got)
		})

		r, code := run(t, other)
		expect(t, r, doctor.CheckIPVSARP, doctor.Error, "interface eth0", "kube-ipvs0 exists")
		expect(t, r, doctor.CheckVIPBound, doctor.Error, "VIP "+ip+" (Service "+ns+"/testsvc)", "address of kube-ipvs0", "answers ARP for it on eth0 while "+owner+" announces it")
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		r, _ = run(t, third)
		expect(t, r, doctor.CheckDuplicateARP, doctor.Error, "2 MACs answer ARP for "+ip+" on eth0", other.MAC.String())

		// strictARP's effect: the kernel answers only for addresses of the receiving interface.
		inNode(t, other, "sysctl", "-q", "-w", "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2")
		r, code = run(t, other)
		expect(t, r, doctor.CheckIPVSARP, doctor.OK, "strictARP is in effect")
		expect(t, r, doctor.CheckVIPBound, doctor.OK, "does not answer")
		if code != 0 {
			t.Errorf("with strictARP: exit %d:\n%s", code, dumpReport(r))
		}
		r, _ = run(t, third)
		expect(t, r, doctor.CheckDuplicateARP, doctor.OK, "one MAC")
	})

	t.Run("kube-proxy ConfigMap in IPVS mode without strictARP", func(t *testing.T) {
		if err := env.EnsureNamespace(ctx, "kube-system"); err != nil {
			t.Fatal(err)
		}
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-proxy"},
			Data: map[string]string{"config.conf": "apiVersion: kubeproxy.config.k8s.io/v1alpha1\nkind: KubeProxyConfiguration\nmode: \"ipvs\"\nipvs:\n  strictARP: false\n"}}
		if err := env.Client.Create(ctx, cm); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(ctx, cm) })
		r, code := run(t, third, "--no-probe")
		expect(t, r, doctor.CheckKubeProxy, doctor.Error, "IPVS mode with strictARP: false")
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		cm.Data["config.conf"] = strings.Replace(cm.Data["config.conf"], "strictARP: false", "strictARP: true", 1)
		if err := env.Client.Update(ctx, cm); err != nil {
			t.Fatal(err)
		}
		r, _ = run(t, third, "--no-probe")
		expect(t, r, doctor.CheckKubeProxy, doctor.OK, "strictARP: true")
	})

	t.Run("a pool over node and pod addresses", func(t *testing.T) {
		apply(t, "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: overlap, namespace: metallb-system}\n"+
			"spec: {addresses: [192.168.50.11-192.168.50.12, 10.244.3.0/28], autoAssign: false}\n")
		pool := &v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Namespace: configNS, Name: "overlap"}}
		t.Cleanup(func() { _ = env.Client.Delete(ctx, pool) })
		out, code := cliInRoot(t, bin, "doctor", "--cluster-only", "-o", "json")
		var r doctor.Report
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		expect(t, r, doctor.CheckPoolOverlap, doctor.Error, "IPAddressPool overlap", "contains 192.168.50.11, the InternalIP of node node1")
		expect(t, r, doctor.CheckPoolOverlap, doctor.Error, "contains 192.168.50.12, the InternalIP of node node2")
		expect(t, r, doctor.CheckPoolOverlap, doctor.Error, "overlaps the pod CIDR 10.244.3.0/24 of node node3")
		expect(t, r, doctor.CheckIPForward, doctor.Skipped, "--cluster-only")
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
	})

	t.Run("eTP Local announced by a node without endpoint (seed 003)", func(t *testing.T) {
		apply(t, fmt.Sprintf("apiVersion: v1\nkind: Service\nmetadata: {name: local, namespace: %s}\n"+
			"spec: {type: LoadBalancer, externalTrafficPolicy: Local, ports: [{port: 80}]}\n", ns))
		lip := waitIPs(t, ns, "local", 1)[0]
		from, to := cluster.NodeName(other), cluster.NodeName(third)
		endpointsOn(t, ns, "local", from)
		if got := l.soleAnswerer(t, lip, 30*time.Second); got != from {
			t.Fatalf("local answered by %s, want %s (its endpoint)", got, from)
		}
		testenv.Eventually(t, 10*time.Second, "status names "+from, func() (bool, string) {
			node, _ := statusNode(t, ns, "local")
			return node == from, "status node " + node
		})
		// The speakers lose the API server, so nobody learns that the endpoint moves: from
		// keeps answering for a Service whose only endpoint is now elsewhere.
		l.APIDown()
		up := false
		restore := func() {
			if !up {
				up = true
				if err := l.APIUp(); err != nil {
					t.Error(err)
				}
			}
		}
		t.Cleanup(restore)
		endpointsOn(t, ns, "local", to)
		out, code := cliInRoot(t, bin, "doctor", "--cluster-only", "-o", "json")
		var r doctor.Report
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		expect(t, r, doctor.CheckETPLocal, doctor.Error, "Service "+ns+"/local", "announced by "+from+" (L2, ServiceL2Status", "serving endpoints are on "+to)
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		if got := cluster.OnlyOne(l.Arping(lip, 2), 2); got != from {
			t.Errorf("during the outage %s answers, want %s still (the fault the doctor reported)", got, from)
		}
		restore()
		// client-go's reflectors retry a failed list or watch with a back-off of up to 30 s
		// times a jitter of up to 2 (reset only after 2 minutes without failure): a speaker
		// may be that long in noticing the API is back.
		testenv.Eventually(t, 2*time.Minute, "the speakers catch up and the doctor is content", func() (bool, string) {
			out, _ := cliInRoot(t, bin, "doctor", "--cluster-only", "-o", "json")
			var r doctor.Report
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				return false, err.Error()
			}
			res := find(r, doctor.CheckETPLocal)
			return len(res) == 1 && res[0].Severity == doctor.OK, dumpReport(r)
		})
		if err := env.Client.Delete(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "local"}}); err != nil && !apierrors.IsNotFound(err) {
			t.Error(err)
		}
	})

	t.Run("status names the announcing node, then the failover", func(t *testing.T) {
		// The previous subtest disrupted the speakers (an API outage, a Local Service moved
		// and deleted). Start from a settled state: that Service gone with its status object,
		// testsvc answered by its owner alone, and its status saying so.
		local := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "local"}}
		if err := env.Client.Delete(ctx, local); err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		testenv.Eventually(t, 30*time.Second, "a settled lab: local gone, testsvc on "+owner+" alone", func() (bool, string) {
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(local), &corev1.Service{}); !apierrors.IsNotFound(err) {
				return false, fmt.Sprintf("Service local still there (%v)", err)
			}
			if n, _ := statusNode(t, ns, "local"); n != "" {
				return false, "a ServiceL2Status of local remains: " + n
			}
			if n, _ := statusNode(t, ns, "testsvc"); n != owner {
				return false, "ServiceL2Status of testsvc: " + n
			}
			got := l.Arping(ip, 2)
			return cluster.OnlyOne(got, 2) == owner, fmt.Sprintf("replies %v", got)
		})
		out, code := cliInRoot(t, bin, "status", "testsvc", "-n", ns)
		if code != 0 || !strings.Contains(out, "Announced by:   "+owner+" on eth0 (L2, ServiceL2Status l2-") {
			t.Fatalf("exit %d:\n%s", code, out)
		}
		if err := l.StopSpeaker(owner, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		var next string
		testenv.Eventually(t, 15*time.Second, "another node answers", func() (bool, string) {
			got := l.Arping(ip, 2)
			next = cluster.OnlyOne(got, 2)
			return next != "" && next != owner, fmt.Sprintf("replies %v", got)
		})
		// Usually owner -> next; on a loaded machine the third node may announce for a moment
		// while memberlist converges, and then the latest change, which status shows, is from it.
		testenv.Eventually(t, 15*time.Second, "status shows the failover", func() (bool, string) {
			out, _ := cliInRoot(t, bin, "status", "testsvc", "-n", ns)
			return strings.Contains(out, "Announced by:   "+next+" on eth0") &&
				strings.Contains(out, " -> "+next+" at ") && !strings.Contains(out, "Last failover:  "+next+" -> "), out
		})
		out, _ = cliInRoot(t, bin, "status", "-n", ns)
		t.Logf("kubectl ironlb status -n %s after the failover:\n%s", ns, out)
		if err := l.StartSpeaker(l.Node(owner)); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 30*time.Second, "status shows the way back home", func() (bool, string) {
			out, _ := cliInRoot(t, bin, "status", "testsvc", "-n", ns)
			return strings.Contains(out, "Last failover:  "+next+" -> "+owner+" at "), out
		})
	})
}
