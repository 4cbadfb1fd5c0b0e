package demo

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ironlb/ironlb/internal/testenv"
)

// storyFacts are what the story must show, as regular expressions over its output.
var storyFacts = []struct{ what, re string }{
	{"the seed's Service got its EXTERNAL-IP", `testsvc +LoadBalancer +\S+ +192\.168\.50\.50 `},
	{"the pod's page came back through the VIP", `\| <title>Welcome to nginx!</title>.*\n +\| pod n\d-pod1\n`},
	{"the answer names pod and node", `the page came back through the VIP: pod n\d-pod1 answered; it saw the request come from \S+, node\d`},
	{"one node answers ARP", `node\d answers, and only it`},
	{"the takeover happened, timed", `node\d took over: its gratuitous ARP reached the client \d+ms after the cut`},
	{"curl works through the new owner", `curl 192\.168\.50\.50:8989 again: pod n\d-pod1 answered, reached through node\d`},
	{"the VIP went home", `node\d answers again, alone`},
	{"the router has the route from all three nodes", `\*[=>] +198\.51\.100\.10/32 +192\.168\.50\.1[123] .*64512 i\n +\| \*[=>] +192\.168\.50\.1[123] .*\n +\| \*[=>] +192\.168\.50\.1[123] `},
	{"the router's kernel has the ECMP route", `198\.51\.100\.10 .*proto bgp.*\n(.*nexthop via 192\.168\.50\.1[123] dev eth0.*\n){3}`},
	{"the routed VIP answers through the router", `curl 198\.51\.100\.10 from the client, through its gateway the router: pod n\d-pod1 answered`},
	{"status shows the new L2 owner", `Announced by: +node\d on eth0 \(L2, ServiceL2Status l2-\w+\), since `},
	{"status shows the failover", `Last failover: +node\d -> node\d at `},
	{"status shows the BGP announcers", `Mode: +BGP\n(.*\n)?.*Announced by: +node1 to peers router \(BGP.*\n.*node2 to peers router.*\n.*node3 to peers router`},
	{"the injected fault makes two nodes answer", `replies 1 from node\d, 1 from node\d`},
	{"doctor finds the seed's pain", `ERROR +ipvs-arp .*\n(.*\n)*.*ERROR +vip-bound `},
	{"the fix clears it", `ironlb doctor on node\d: exit 0, "0 problems`},
}

func checkStory(t *testing.T, out string) {
	t.Helper()
	for _, f := range storyFacts {
		if !regexp.MustCompile(f.re).MatchString(out) {
			t.Errorf("the story does not show that %s (%q)", f.what, f.re)
		}
	}
	if t.Failed() {
		t.Logf("the story:\n%s", out)
	}
}

func checkNothingLeft(t *testing.T) {
	t.Helper()
	if left, err := Leftovers(context.Background(), nil); err != nil || len(left) > 0 {
		t.Errorf("left behind: %v (%v)", left, err)
	}
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: builds network namespaces")
	}
	for _, tool := range []string{"ip", "arping", "curl", "nft", "vtysh", "/usr/lib/frr/bgpd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is required (Debian packages iproute2, iputils-arping, curl, nftables, frr): %v", tool, err)
		}
	}
}

// TestDemo runs `make demo`'s story and checks it tells what it promises, then that nothing
// is left behind.
func TestDemo(t *testing.T) {
	needRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out bytes.Buffer
	err := Run(ctx, Options{}, &out)
	if err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	checkStory(t, out.String())
	if !strings.Contains(out.String(), "nothing left behind: no ilbdemo-* network namespace") {
		t.Errorf("the story does not end checking that nothing is left behind:\n%s", out.String())
	}
	checkNothingLeft(t)
}

// TestDemoKeep runs `make demo ARGS=--keep` as a user does (the command, which returns once
// the story is told), runs the commands it prints against the lab it left, then `make
// demo-down`, and checks that nothing is left behind.
func TestDemoKeep(t *testing.T) {
	needRoot(t)
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "demo")
	if out, err := exec.Command("go", "build", "-o", bin, filepath.Join(root, "e2etest", "cmd", "demo")).CombinedOutput(); err != nil {
		t.Fatalf("go build ./e2etest/cmd/demo: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	t.Cleanup(func() {
		// Whatever happened: stop it.
		if out, err := exec.Command(bin, "--down").CombinedOutput(); err != nil {
			t.Errorf("demo --down: %v\n%s", err, out)
		}
	})
	keep := exec.CommandContext(ctx, bin, "--keep")
	keep.Dir = root
	out, err := keep.CombinedOutput()
	if err != nil {
		t.Fatalf("demo --keep: %v\n%s", err, out)
	}
	story := string(out)
	checkStory(t, story)
	if strings.Contains(story, "nothing left behind") || strings.Contains(story, "Cleaning up") {
		t.Errorf("--keep cleaned up:\n%s", story)
	}

	// The printed instructions, run as printed (but the pager and demo-down).
	_, instructions, ok := strings.Cut(story, "Left running: look around")
	if !ok {
		t.Fatalf("no instructions in:\n%s", story)
	}
	var script []string
	for _, l := range strings.Split(instructions, "\n")[1:] {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "less ") || strings.Contains(l, "make demo-down") {
			continue
		}
		script = append(script, l)
	}
	sh := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", strings.Join(script, "\n"))
	got, err := sh.CombinedOutput()
	if err != nil {
		t.Fatalf("the printed commands failed: %v\n%s\n%s", err, strings.Join(script, "\n"), got)
	}
	for _, want := range []string{
		"Welcome to nginx!",                       // curl through both VIPs
		"198.51.100.10/32",                        // the router's table
		"first-pool",                              // kubectl get ipaddresspools and ironlb status
		"node1,node2,node3 (BGP)",                 // kubectl ironlb status
		"table ip ironlb",                         // the proxy's ruleset
		"0 problems",                              // ironlb doctor on a node
		"Unicast reply from 192.168.50.50 [02:00", // arping
	} {
		if !strings.Contains(string(got), want) {
			t.Errorf("the printed commands' output lacks %q:\n%s", want, got)
		}
	}

	down, err := exec.CommandContext(ctx, bin, "--down").CombinedOutput()
	if err != nil {
		t.Fatalf("demo --down: %v\n%s", err, down)
	}
	if !strings.Contains(string(down), "Stopping the demo (pid") || !strings.Contains(string(down), "Nothing of the demo is left") {
		t.Errorf("demo --down said:\n%s", down)
	}
	checkNothingLeft(t)
}

func TestNames(t *testing.T) {
	for _, tc := range []struct {
		name, cmd, path string
		want            bool
	}{
		{"the directory itself", "etcd\x00--data-dir=/tmp/k8s_1\x00", "/tmp/k8s_1", true},
		{"a path inside", "/tmp/ironlb-demo/bin/speaker\x00--node-name\x00node1\x00", "/tmp/ironlb-demo", true},
		{"at the end without a NUL", "x\x00/tmp/ironlb-demo", "/tmp/ironlb-demo", true},
		{"a longer name", "/tmp/ironlb-demo-2/x\x00", "/tmp/ironlb-demo", false},
		{"a longer name, then the real one", "/tmp/ironlb-demo-2\x00/tmp/ironlb-demo/x", "/tmp/ironlb-demo", true},
		{"absent", "bash\x00", "/tmp/ironlb-demo", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := names(tc.cmd, tc.path); got != tc.want {
				t.Errorf("names(%q, %q) = %v, want %v", tc.cmd, tc.path, got, tc.want)
			}
		})
	}
}
