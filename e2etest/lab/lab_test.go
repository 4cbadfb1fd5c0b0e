package lab_test

// IP plan: the one in the package doc (LAN 192.168.50.0/24 and fd00:50::/64, pods
// 10.244.N.0/24 and fd00:10:244:N::/64). Each test uses its own prefix "ilbt-..." so it never removes a lab named
// "ilb" that a developer runs by hand, and a failing test leaves nothing another test trips on.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ironlb/ironlb/e2etest/lab"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("iproute2 is required: %v", err)
	}
}

// lifetimes counts down in `ip addr` output for DHCP or SLAAC addresses; they are not state.
var lifetimes = regexp.MustCompile(`(valid|preferred)_lft \S+`)

// rootState is what the lab must never change in the root namespace.
func rootState(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, args := range [][]string{
		{"-o", "link"},
		{"-o", "addr"},
		{"route"},
		{"-6", "route"},
	} {
		out, err := exec.Command("ip", args...).Output()
		if err != nil {
			t.Fatalf("ip %s: %v", strings.Join(args, " "), err)
		}
		fmt.Fprintf(&b, "## ip %s\n%s", strings.Join(args, " "), lifetimes.ReplaceAllString(string(out), "$1_lft X"))
	}
	return b.String()
}

// guardRoot checks, after everything else the test registered with Cleanup has run (lab
// Close included), that links, addresses and routes of the root namespace are unchanged.
func guardRoot(t *testing.T) {
	t.Helper()
	before := rootState(t)
	t.Cleanup(func() {
		if after := rootState(t); after != before {
			t.Errorf("root namespace changed\n--- before\n%s--- after\n%s", before, after)
		}
	})
}

func startLab(t *testing.T, cfg lab.Config) *lab.Lab {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	l, err := lab.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("lab %q up in %v", cfg.Prefix, time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("close lab: %v", err)
		}
	})
	return l
}

func ping(ctx context.Context, from *lab.Host, to string) error {
	_, err := from.Exec(ctx, "ping", "-c1", "-W1", to)
	return err
}

// eventually polls check until it returns nil or the deadline passes.
func eventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond) // poll interval, not synchronisation
	}
}

func TestLab(t *testing.T) {
	needRoot(t)
	guardRoot(t)
	l := startLab(t, lab.Config{Prefix: "ilbt-lab"})
	ctx := t.Context()

	if len(l.Nodes) != 3 {
		t.Fatalf("got %d nodes, want the default 3", len(l.Nodes))
	}

	t.Run("client reaches every node over IPv4 and IPv6", func(t *testing.T) {
		for _, n := range l.Nodes {
			for _, addr := range []string{n.IPv4.String(), n.IPv6.String()} {
				if err := ping(ctx, l.Client, addr); err != nil {
					t.Errorf("client -> %s (%s): %v", n.Name, addr, err)
				}
			}
		}
	})

	t.Run("router reaches the client", func(t *testing.T) {
		if err := ping(ctx, l.Router, l.Client.IPv4.String()); err != nil {
			t.Error(err)
		}
	})

	t.Run("node reaches its pod and the pod routes through the node", func(t *testing.T) {
		for _, n := range l.Nodes {
			if len(n.Pods) != 1 {
				t.Fatalf("%s has %d pods, want the default 1", n.Name, len(n.Pods))
			}
			pod := n.Pods[0]
			for _, addr := range []string{pod.IPv4.String(), pod.IPv6.String()} {
				if err := ping(ctx, &n.Host, addr); err != nil {
					t.Errorf("%s -> %s (%s): %v", n.Name, pod.Name, addr, err)
				}
			}
			// The node's LAN addresses are not on the pod link: these go through the default routes.
			for _, addr := range []string{n.IPv4.String(), n.IPv6.String()} {
				if err := ping(ctx, pod, addr); err != nil {
					t.Errorf("%s -> %s LAN address %s: %v", pod.Name, n.Name, addr, err)
				}
			}
		}
	})

	t.Run("nodes forward IPv4 and IPv6", func(t *testing.T) {
		n := l.Nodes[0]
		for _, key := range []string{"net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"} {
			out, err := n.Exec(ctx, "sysctl", "-n", key)
			if err != nil || strings.TrimSpace(out) != "1" {
				t.Errorf("%s in %s = %q, %v; want 1", key, n.Name, out, err)
			}
		}
	})

	t.Run("arping answers with the planned MAC", func(t *testing.T) {
		if _, err := exec.LookPath("arping"); err != nil {
			t.Skip("arping not installed (Debian: iputils-arping); ARP is still exercised by the IPv4 pings")
		}
		n := l.Nodes[1]
		out, err := l.Client.Exec(ctx, "arping", "-c1", "-w2", "-I", l.Client.Iface, n.IPv4.String())
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(strings.ToLower(out), n.MAC.String()) {
			t.Errorf("arping %s: reply does not name %s:\n%s", n.IPv4, n.MAC, out)
		}
	})

	t.Run("CutLink isolates the node and RestoreLink brings it back", func(t *testing.T) {
		n, other := l.Nodes[0], l.Nodes[1]
		if err := l.CutLink(n); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "client loses "+n.Name, func() error {
			if ping(ctx, l.Client, n.IPv4.String()) == nil {
				return errors.New("ping still answered")
			}
			return nil
		})
		if err := ping(ctx, l.Client, other.IPv4.String()); err != nil {
			t.Errorf("cutting %s also cut %s: %v", n.Name, other.Name, err)
		}
		if err := l.RestoreLink(n); err != nil {
			t.Fatal(err)
		}
		eventually(t, 10*time.Second, "client reaches "+n.Name+" again", func() error {
			return ping(ctx, l.Client, n.IPv4.String())
		})
		eventually(t, 10*time.Second, "client reaches "+n.Name+" again over IPv6", func() error {
			return ping(ctx, l.Client, n.IPv6.String())
		})
	})
}

func TestStartRemovesLeftovers(t *testing.T) {
	needRoot(t)
	guardRoot(t)
	const prefix = "ilbt-crash"
	ctx := t.Context()

	// A run that dies without Close: namespaces, a process inside one and a stray interface
	// all stay behind, plus a node namespace from a run with more nodes.
	old, err := lab.Start(ctx, lab.Config{Prefix: prefix, Nodes: 1})
	if err != nil {
		t.Fatal(err)
	}
	// The old lab is never closed (the test reaps its process itself), so if the test stops
	// before the second Start, its namespaces are removed here instead.
	t.Cleanup(func() { removeNamespaces(t, prefix) })
	sleeper, err := old.Nodes[0].Start(ctx, "sleep", "300")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.LAN.Exec(ctx, "ip", "link", "add", "leftover0", "type", "bridge"); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "ip", "netns", "add", prefix+"-node7")
	// Not a lab name for this prefix, so it must survive.
	mustRun(t, "ip", "netns", "add", prefix+"-keep")
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", prefix+"-keep").Run() })

	l := startLab(t, lab.Config{Prefix: prefix, Nodes: 1})

	// The old lab is abandoned, so the test may reap its process itself.
	waited := make(chan error, 1)
	go func() { waited <- sleeper.Wait() }()
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
		t.Error("process left in the old lab was not killed")
	}
	if out, err := l.LAN.Exec(ctx, "ip", "-o", "link", "show"); err != nil || strings.Contains(out, "leftover0") {
		t.Errorf("LAN namespace is the old one (or unreadable): %v\n%s", err, out)
	}
	names, err := lab.Namespaces(ctx, prefix)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{prefix + "-lan", prefix + "-router", prefix + "-client", prefix + "-node1", prefix + "-n1-pod1"}
	if !sameSet(names, want) {
		t.Errorf("namespaces after restart = %v, want %v", names, want)
	}
	if !netnsExists(t, prefix+"-keep") {
		t.Errorf("%s-keep does not belong to the lab but was removed", prefix)
	}
	if err := ping(ctx, l.Client, l.Nodes[0].IPv4.String()); err != nil {
		t.Errorf("restarted lab does not work: %v", err)
	}
}

func TestClose(t *testing.T) {
	needRoot(t)
	guardRoot(t)
	const prefix = "ilbt-close"
	ctx := t.Context()

	l, err := lab.Start(ctx, lab.Config{Prefix: prefix, Nodes: 2, PodsPerNode: 2})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(l.Nodes[1].Pods); got != 2 {
		t.Errorf("node2 has %d pods, want 2", got)
	}
	sleeper, err := l.Nodes[1].Pods[1].Start(ctx, "sleep", "300")
	if err != nil {
		t.Fatal(err)
	}

	if err := l.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if st := sleeper.ProcessState; st == nil || st.Exited() {
		t.Errorf("background process not killed and reaped by Close: %v", st)
	}
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), prefix) {
		t.Errorf("ip netns list still shows the lab after Close:\n%s", out)
	}
	if _, err := l.Client.Start(ctx, "true"); err == nil {
		t.Error("Start on a closed lab succeeded")
	}
}

// TestConfig needs no root: a bad Config is refused before anything is created.
func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  lab.Config
	}{
		{"prefix with a slash", lab.Config{Prefix: "ilb/x"}},
		{"prefix with upper case", lab.Config{Prefix: "ILB"}},
		{"prefix ending in a hyphen", lab.Config{Prefix: "ilb-"}},
		{"prefix too long", lab.Config{Prefix: strings.Repeat("a", 33)}},
		{"nodes would reach the VIP range", lab.Config{Nodes: 40}},
		{"negative nodes", lab.Config{Nodes: -1}},
		{"too many pods", lab.Config{PodsPerNode: 201}},
		{"pods below -1", lab.Config{PodsPerNode: -2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if l, err := lab.Start(t.Context(), tc.cfg); err == nil {
				_ = l.Close()
				t.Fatalf("Start(%+v) succeeded, want a config error", tc.cfg)
			}
		})
	}
}

func removeNamespaces(t *testing.T, prefix string) {
	t.Helper()
	names, err := lab.Namespaces(context.Background(), prefix)
	if err != nil {
		t.Error(err)
	}
	for _, name := range names {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	}
}

func mustRun(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

func netnsExists(t *testing.T, name string) bool {
	t.Helper()
	_, err := os.Stat("/run/netns/" + name)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, s := range a {
		seen[s]++
	}
	for _, s := range b {
		if seen[s] == 0 {
			return false
		}
		seen[s]--
	}
	return true
}
