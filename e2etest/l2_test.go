package e2etest

// The layer 2 story on one machine: the real API server (envtest), the controller in this
// process, and three real speaker processes, each in a node namespace of the lab, answering
// ARP and NDP on the lab LAN. The client namespace asks with arping and ndisc6.
//
// IP plan (see e2etest/lab): LAN 192.168.50.0/24 and fd00:50::/64; nodes node1..node3 are
// 192.168.50.11-13 / fd00:50::11-13; the client is .2. The seed's pool hands out
// 192.168.50.50-52; the dual-stack pool 192.168.50.60-69 and fd00:50::60/124.

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/controller/app/apptest"
	"github.com/ironlb/ironlb/e2etest/cluster"
	"github.com/ironlb/ironlb/internal/testenv"
)

var env *testenv.Env

// TestMain removes the binaries the tests built (about 40 MB per run) when they are done.
func TestMain(m *testing.M) {
	testenv.Main(m, &env, func() {
		if dir, err := buildDir(); err == nil {
			_ = os.RemoveAll(dir)
		}
	})
}

const configNS = "metallb-system"

// syncBuffer collects the speakers' output for the failure report.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// l2Lab is a cluster (lab, API forwarders, speakers) with the test's helpers on top.
type l2Lab struct {
	*cluster.Cluster
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs speakers in network namespaces")
	}
	for _, tool := range []string{"ip", "arping"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is required (iproute2, iputils-arping): %v", tool, err)
		}
	}
}

// buildDir holds the binaries the tests build, once per test binary; TestMain removes it.
var buildDir = sync.OnceValues(func() (string, error) { return os.MkdirTemp("", "ironlb-e2e-") })

// buildSpeaker builds the speaker binary once per test binary.
var buildSpeaker = sync.OnceValues(func() (string, error) {
	dir, err := buildDir()
	if err != nil {
		return "", err
	}
	return cluster.BuildSpeaker(env.Root, dir)
})

func startL2Lab(t *testing.T, prefix string) *l2Lab {
	t.Helper()
	needRoot(t)
	bin, err := buildSpeaker()
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(env.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	c, err := cluster.Start(context.Background(), cluster.Config{Prefix: prefix, APIAddr: u.Host,
		Kubeconfig: env.Kubeconfig, Namespace: configNS, SpeakerBin: bin, Output: logs,
		SpeakerArgs: strings.Fields(os.Getenv("IRONLB_SPEAKER_ARGS"))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Close first: it kills and reaps the speakers, and reaping waits until what they
		// wrote has been copied out of their pipes, so the report misses no line.
		if err := c.Close(); err != nil {
			t.Errorf("close the lab: %v", err)
		}
		if t.Failed() || os.Getenv("IRONLB_SPEAKER_LOG") != "" {
			t.Logf("speaker output:\n%s", logs.String())
		}
	})
	// Tests share the API server: remove what this one configured, so the next starts clean.
	t.Cleanup(func() { cleanConfig(t) })
	return &l2Lab{c}
}

// cleanConfig deletes the metallb.io configuration and every LoadBalancer Service, so the
// next test's controller starts from nothing.
func cleanConfig(t *testing.T) {
	ctx := context.Background()
	var svcs corev1.ServiceList
	if err := env.Client.List(ctx, &svcs); err != nil {
		t.Errorf("list Services: %v", err)
	}
	for i := range svcs.Items {
		if svcs.Items[i].Spec.Type == corev1.ServiceTypeLoadBalancer {
			_ = env.Client.Delete(ctx, &svcs.Items[i])
		}
	}
	for _, obj := range []client.Object{&v1beta1.IPAddressPool{}, &v1beta1.L2Advertisement{}, &v1beta1.ServiceL2Status{}} {
		if err := env.Client.DeleteAllOf(ctx, obj, client.InNamespace(configNS)); err != nil {
			t.Errorf("delete %T: %v", obj, err)
		}
	}
}

// soleAnswerer waits until ARP requests for ip are answered, all by one node, and returns it.
func (l *l2Lab) soleAnswerer(t *testing.T, ip string, timeout time.Duration) string {
	t.Helper()
	var owner string
	testenv.Eventually(t, timeout, "one node answering ARP for "+ip, func() (bool, string) {
		got := l.Arping(ip, 2)
		owner = cluster.OnlyOne(got, 2)
		return owner != "", fmt.Sprintf("replies %v", got)
	})
	return owner
}

// statusNode returns the node of the ServiceL2Status of ns/name ("" if none, "many" if
// several).
func statusNode(t *testing.T, ns, name string) (string, string) {
	var list v1beta1.ServiceL2StatusList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(configNS),
		client.MatchingLabels{v1beta1.LabelServiceNamespace: ns, v1beta1.LabelServiceName: name}); err != nil {
		t.Fatalf("list ServiceL2Status: %v", err)
	}
	switch len(list.Items) {
	case 0:
		return "", ""
	case 1:
		var ifs []string
		for _, i := range list.Items[0].Status.Interfaces {
			ifs = append(ifs, i.Name)
		}
		return list.Items[0].Status.Node, strings.Join(ifs, ",")
	default:
		return "many", ""
	}
}

// createNodes creates the Node objects the speakers' names refer to.
func createNodes(t *testing.T, l *l2Lab) {
	t.Helper()
	for _, n := range l.Nodes {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: cluster.NodeName(n), Labels: map[string]string{
			corev1.LabelHostname: cluster.NodeName(n)}}}
		if err := env.Client.Create(context.Background(), node); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
}

func apply(t *testing.T, yaml string) {
	t.Helper()
	if out, err := env.Kubectl(context.Background(), []byte(yaml), "apply", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
}

func seedFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "seeds", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// endpointsOn gives ns/name a ready endpoint on each node named (what kube-controller-manager
// would write for pods there; envtest runs no controller-manager).
func endpointsOn(t *testing.T, ns, name string, nodes ...string) {
	t.Helper()
	eps := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name + "-e2e", Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for i, n := range nodes {
		eps.Endpoints = append(eps.Endpoints, discoveryv1.Endpoint{Addresses: []string{fmt.Sprintf("10.244.%d.2", i+1)}, NodeName: ptr.To(n)})
	}
	ctx := context.Background()
	var cur discoveryv1.EndpointSlice
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(eps), &cur); err == nil {
		cur.Endpoints = eps.Endpoints
		if err := env.Client.Update(ctx, &cur); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := env.Client.Create(ctx, eps); err != nil {
		t.Fatal(err)
	}
}

// sinceOrNone is t-since rounded, or "none" for a zero t.
func sinceOrNone(t, since time.Time) string {
	if t.IsZero() {
		return "none"
	}
	return t.Sub(since).Round(time.Millisecond).String()
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2].Round(time.Millisecond)
}

func waitIPs(t *testing.T, ns, name string, n int) []string {
	t.Helper()
	var ips []string
	testenv.Eventually(t, 20*time.Second, fmt.Sprintf("%d IPs on %s/%s", n, ns, name), func() (bool, string) {
		var svc corev1.Service
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &svc); err != nil {
			return false, err.Error()
		}
		ips = ips[:0]
		for _, in := range svc.Status.LoadBalancer.Ingress {
			ips = append(ips, in.IP)
		}
		return len(ips) == n, fmt.Sprintf("ingress %v", ips)
	})
	return ips
}

// seedStory starts the lab with speakers, the controller in this process, and seed 000 as
// written (plus the L2Advertisement MetalLB's L2 mode needs): testsvc with endpoints on every
// node. It returns the lab, testsvc's namespace and its IP.
func seedStory(t *testing.T, prefix string) (*l2Lab, string, string) {
	t.Helper()
	l := startL2Lab(t, prefix)
	ctx := context.Background()
	if err := env.EnsureNamespace(ctx, configNS); err != nil {
		t.Fatal(err)
	}
	createNodes(t, l)
	apptest.Start(t, env.Config, configNS)

	apply(t, seedFile(t, "000-first-pool.yaml"))
	apply(t, "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l2, namespace: metallb-system}\n")
	ns, err := env.Namespace(ctx, "seed")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := env.Kubectl(ctx, []byte(seedFile(t, "000-testsvc.yaml")), "apply", "-n", ns, "-f", "-"); err != nil {
		t.Fatalf("apply testsvc: %v\n%s", err, out)
	}
	endpointsOn(t, ns, "testsvc", "node1", "node2", "node3")
	ip := waitIPs(t, ns, "testsvc", 1)[0]
	if ip != "192.168.50.50" {
		t.Fatalf("testsvc got %s, want the seed's 192.168.50.50", ip)
	}
	return l, ns, ip
}

// TestL2 is seed 000 on the lab LAN, then what users do next: dual stack, eTP Local, pinning
// to nodes and interfaces, and losing the owner two ways.
// dualPool is a dual-stack pool on the lab LAN, given out only on request (the Services
// name it with metallb.io/address-pool).
const dualPool = `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: dual, namespace: metallb-system}
spec:
  addresses: [192.168.50.60-192.168.50.69, "fd00:50::60/124"]
  autoAssign: false
`

func TestL2(t *testing.T) {
	l, ns, ip := seedStory(t, "ilbe2e")

	t.Run("one node answers ARP and says so", func(t *testing.T) {
		owner := l.soleAnswerer(t, ip, 30*time.Second)
		testenv.Eventually(t, 10*time.Second, "ServiceL2Status names the answering node", func() (bool, string) {
			node, ifs := statusNode(t, ns, "testsvc")
			return node == owner && ifs == "eth0", fmt.Sprintf("status node %q interfaces %q, ARP answered by %s", node, ifs, owner)
		})
	})

	t.Run("dual stack: ARP and NDP lead to the same node", func(t *testing.T) {
		if _, err := exec.LookPath("ndisc6"); err != nil {
			t.Skip("ndisc6 not installed (Debian package ndisc6)")
		}
		apply(t, dualPool)
		apply(t, fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: dual
  namespace: %s
  annotations: {metallb.io/address-pool: dual}
spec:
  type: LoadBalancer
  ipFamilyPolicy: RequireDualStack
  ports: [{port: 80}]
`, ns))
		endpointsOn(t, ns, "dual", "node2")
		ips := waitIPs(t, ns, "dual", 2)
		var v4, v6 string
		for _, s := range ips {
			if netip.MustParseAddr(s).Is4() {
				v4 = s
			} else {
				v6 = s
			}
		}
		owner := l.soleAnswerer(t, v4, 30*time.Second)
		testenv.Eventually(t, 10*time.Second, "one NDP answer from the ARP owner", func() (bool, string) {
			got := l.Ndisc6(v6)
			return slices.Equal(got, []string{owner}), fmt.Sprintf("NDP answers from %v, ARP owner %s", got, owner)
		})
	})

	t.Run("externalTrafficPolicy Local follows the endpoints", func(t *testing.T) {
		apply(t, fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: local, namespace: %s}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  ports: [{port: 80}]
`, ns))
		lip := waitIPs(t, ns, "local", 1)[0]
		endpointsOn(t, ns, "local", "node3")
		if got := l.soleAnswerer(t, lip, 30*time.Second); got != "node3" {
			t.Errorf("answered by %s, want node3 (the only endpoint)", got)
		}
		endpointsOn(t, ns, "local", "node1")
		testenv.Eventually(t, 20*time.Second, "ownership moves to node1", func() (bool, string) {
			got := l.Arping(lip, 2)
			return cluster.OnlyOne(got, 2) == "node1", fmt.Sprintf("replies %v", got)
		})
	})

	t.Run("nodeSelectors and interfaces are honoured", func(t *testing.T) {
		apply(t, `apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: pinned, namespace: metallb-system}
spec:
  addresses: [192.168.50.70-192.168.50.71]
  autoAssign: false
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: pinned, namespace: metallb-system}
spec:
  ipAddressPools: [pinned]
  nodeSelectors: [{matchLabels: {kubernetes.io/hostname: node2}}]
  interfaces: [eth0]
`)
		// The catch-all advertisement would also select this pool; narrow it to the seed's.
		apply(t, "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l2, namespace: metallb-system}\nspec: {ipAddressPools: [first-pool, dual]}\n")
		apply(t, fmt.Sprintf(`apiVersion: v1
kind: Service
metadata:
  name: pinned
  namespace: %s
  annotations: {metallb.io/address-pool: pinned}
spec:
  type: LoadBalancer
  ports: [{port: 80}]
`, ns))
		endpointsOn(t, ns, "pinned", "node1")
		pip := waitIPs(t, ns, "pinned", 1)[0]
		if got := l.soleAnswerer(t, pip, 30*time.Second); got != "node2" {
			t.Errorf("answered by %s, want node2 (the nodeSelector)", got)
		}
		testenv.Eventually(t, 10*time.Second, "status node2 on eth0", func() (bool, string) {
			node, ifs := statusNode(t, ns, "pinned")
			return node == "node2" && ifs == "eth0", fmt.Sprintf("status %q %q", node, ifs)
		})
	})

	t.Run("stopping the owner's speaker moves the VIP", func(t *testing.T) {
		owner := l.soleAnswerer(t, ip, 30*time.Second)
		w, err := cluster.WatchARP(l.Client, netip.MustParseAddr(ip), 20*time.Millisecond)
		if err != nil {
			t.Fatalf("watch ARP from the client: %v", err)
		}
		defer w.Close()
		ownerMAC := strings.ToLower(l.Node(owner).MAC.String())
		term := time.Now()
		// StopSpeaker returns once the process has exited, and fails naming a speaker that
		// does not: a stopping speaker that hangs keeps answering for VIPs others took over.
		if err := l.StopSpeaker(owner, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		exited := time.Now()
		// The owner silences its responders before anything else, so its answers stop well
		// before it exits; none may come after. (The watch timestamps a packet when it reads
		// it: a second allows for a loaded test process reading late.)
		if late, _, ok := w.First(exited.Add(time.Second), false, ownerMAC, ""); ok {
			t.Errorf("%s answered ARP %v after SIGTERM, after its process had exited", owner, late.Sub(term).Round(time.Millisecond))
		}
		testenv.Eventually(t, 10*time.Second, "another node answers the watch", func() (bool, string) {
			_, _, ok := w.First(term, false, "", ownerMAC)
			return ok, "no answer from another node since the SIGTERM"
		})
		first, firstMAC, _ := w.First(term, false, "", ownerMAC)
		both := 0
		for _, macs := range w.Answers(term, first) {
			if len(macs) > 1 {
				both++
			}
		}
		t.Logf("SIGTERM to %s: its last ARP answer after %v, exit after %v; first answer from %s after %v; %d requests answered by two MACs",
			owner, sinceOrNone(w.Last(term, false, ownerMAC), term), exited.Sub(term).Round(time.Millisecond),
			l.NodeByMAC(firstMAC), first.Sub(term).Round(time.Millisecond), both)
		var next string
		testenv.Eventually(t, 10*time.Second, "another node answers", func() (bool, string) {
			got := l.Arping(ip, 2)
			next = cluster.OnlyOne(got, 2)
			return next != "" && next != owner, fmt.Sprintf("replies %v", got)
		})
		testenv.Eventually(t, 10*time.Second, "status follows", func() (bool, string) {
			node, _ := statusNode(t, ns, "testsvc")
			return node == next, fmt.Sprintf("status node %q, answering %s", node, next)
		})
		if err := l.StartSpeaker(l.Node(owner)); err != nil {
			t.Fatal(err)
		}
		// Stateless election: the VIP goes back to its home node once that speaker is back.
		testenv.Eventually(t, 30*time.Second, "the VIP returns home", func() (bool, string) {
			got := l.Arping(ip, 2)
			return cluster.OnlyOne(got, 2) == owner, fmt.Sprintf("replies %v, home %s", got, owner)
		})
	})

	t.Run("cutting the owner's link moves the VIP", func(t *testing.T) {
		vip := netip.MustParseAddr(ip)
		w, err := cluster.WatchARP(l.Client, vip, 20*time.Millisecond)
		if err != nil {
			t.Fatalf("watch ARP from the client: %v", err)
		}
		defer w.Close()
		var toGARP, toAnswer []time.Duration
		for run := range failoverRuns() {
			owner := l.soleAnswerer(t, ip, 30*time.Second)
			n := l.Node(owner)
			ownerMAC := strings.ToLower(n.MAC.String())
			cut := time.Now()
			if err := l.CutLink(n); err != nil {
				t.Fatal(err)
			}
			var garp, answer time.Time
			var garpMAC, answerMAC string
			testenv.Eventually(t, 10*time.Second, "another node announces and answers", func() (bool, string) {
				var okG, okA bool
				garp, garpMAC, okG = w.First(cut, true, "", ownerMAC)
				answer, answerMAC, okA = w.First(cut, false, "", ownerMAC)
				return okG && okA, fmt.Sprintf("gratuitous ARP seen %v, answer seen %v", okG, okA)
			})
			if garpMAC != answerMAC {
				t.Errorf("run %d: announced by %s but answered by %s", run, l.NodeByMAC(garpMAC), l.NodeByMAC(answerMAC))
			}
			toGARP = append(toGARP, garp.Sub(cut))
			toAnswer = append(toAnswer, answer.Sub(cut))
			t.Logf("run %d: %s -> %s: first gratuitous ARP after %v, first answer after %v", run, owner,
				l.NodeByMAC(garpMAC), garp.Sub(cut).Round(time.Millisecond), answer.Sub(cut).Round(time.Millisecond))

			back := time.Now()
			if err := l.RestoreLink(n); err != nil {
				t.Fatal(err)
			}
			// The home node never lost the VIP in its own view; it must tell the LAN again,
			// which has learnt the other node's MAC meanwhile.
			testenv.Eventually(t, 15*time.Second, "the home node announces again after the link is back", func() (bool, string) {
				_, _, ok := w.First(back, true, ownerMAC, "")
				return ok, "no gratuitous ARP from " + owner
			})
			testenv.Eventually(t, 15*time.Second, "one answerer again after the link is back", func() (bool, string) {
				got := l.Arping(ip, 2)
				return cluster.OnlyOne(got, 2) == owner, fmt.Sprintf("replies %v, home %s", got, owner)
			})
		}
		t.Logf("failover over %d link cuts: first gratuitous ARP median %v max %v; first answer median %v max %v",
			len(toGARP), median(toGARP), slices.Max(toGARP).Round(time.Millisecond), median(toAnswer), slices.Max(toAnswer).Round(time.Millisecond))
	})
}
