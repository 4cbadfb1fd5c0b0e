package bfd

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ironlb/ironlb/e2etest/lab"
)

// link is two network namespaces joined by a veth pair, eth0 on both sides: side A ("<p>-a")
// holds .1 of each subnet, side B ("<p>-b") holds .2. Nothing touches the root namespace: the
// pair is created inside A with its peer placed straight into B.
type link struct {
	A, B   *lab.Host
	subnet []netip.Prefix // the subnets; A has Addr().Next(), B the one after
}

// requireRoot skips a test that needs network namespaces when not root.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
}

// newLink builds the two namespaces, first removing whatever a killed run with the same prefix
// left behind, and removes them when the test ends.
func newLink(t *testing.T, prefix string, subnets ...string) *link {
	t.Helper()
	requireRoot(t)
	l := &link{A: &lab.Host{Name: prefix + "-a", Iface: "eth0"}, B: &lab.Host{Name: prefix + "-b", Iface: "eth0"}}
	names := []string{l.A.Name, l.B.Name}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := removeNamespaces(ctx, names); err != nil {
		t.Fatalf("remove leftovers: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := removeNamespaces(ctx, names); err != nil {
			t.Errorf("remove namespaces: %v", err)
		}
	})
	steps := [][]string{
		{"netns", "add", l.A.Name},
		{"netns", "add", l.B.Name},
		{"-n", l.A.Name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", l.B.Name},
	}
	for _, h := range []*lab.Host{l.A, l.B} {
		// DAD off: link-local and static IPv6 addresses are usable at once after link up. IPv6
		// addresses survive `ip link set down` (by default the kernel flushes them), as they
		// survive a pulled cable. No generated link-local address: a test that wants one adds
		// it, so the source address of link-local packets is known.
		steps = append(steps,
			[]string{"-n", h.Name, "link", "set", "lo", "up"},
			[]string{"netns", "exec", h.Name, "sysctl", "-q", "-w",
				"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.eth0.accept_dad=0",
				"net.ipv6.conf.all.keep_addr_on_down=1", "net.ipv6.conf.eth0.keep_addr_on_down=1",
				"net.ipv6.conf.eth0.addr_gen_mode=1"},
		)
	}
	for _, s := range subnets {
		p := netip.MustParsePrefix(s)
		l.subnet = append(l.subnet, p)
		for i, h := range []*lab.Host{l.A, l.B} {
			a := p.Addr().Next()
			if i == 1 {
				a = a.Next()
			}
			add := []string{"-n", h.Name, "addr", "add", netip.PrefixFrom(a, p.Bits()).String(), "dev", "eth0"}
			if a.Is6() {
				add = append(add, "nodad")
			}
			steps = append(steps, add)
		}
	}
	steps = append(steps,
		[]string{"-n", l.A.Name, "link", "set", "eth0", "up"},
		[]string{"-n", l.B.Name, "link", "set", "eth0", "up"},
	)
	for _, s := range steps {
		if out, err := exec.CommandContext(ctx, "ip", s...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(s, " "), err, out)
		}
	}
	return l
}

// addrA and addrB are the addresses of side A and B in subnet i.
func (l *link) addrA(i int) netip.Addr { return l.subnet[i].Addr().Next() }
func (l *link) addrB(i int) netip.Addr { return l.subnet[i].Addr().Next().Next() }

// setLink sets eth0 of h up or down, as pulling or plugging the cable on that side; it returns
// when the command has returned.
func setLink(t *testing.T, h *lab.Host, state string) {
	t.Helper()
	if out, err := exec.Command("ip", "-n", h.Name, "link", "set", "eth0", state).CombinedOutput(); err != nil {
		t.Fatalf("set eth0 of %s %s: %v: %s", h.Name, state, err, out)
	}
}

// removeNamespaces kills the processes in each existing namespace of names and deletes it.
func removeNamespaces(ctx context.Context, names []string) error {
	out, err := exec.CommandContext(ctx, "ip", "netns", "list").Output()
	if err != nil {
		return fmt.Errorf("ip netns list: %w", err)
	}
	exists := map[string]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			exists[f[0]] = true
		}
	}
	var errs []error
	for _, n := range names {
		if !exists[n] {
			continue
		}
		pids, _ := exec.CommandContext(ctx, "ip", "netns", "pids", n).Output()
		for _, f := range strings.Fields(string(pids)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
				if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
					errs = append(errs, fmt.Errorf("kill %d in %s: %w", pid, n, err))
				}
			}
		}
		if out, err := exec.CommandContext(ctx, "ip", "netns", "del", n).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip netns del %s: %v: %s", n, err, out))
		}
	}
	return errors.Join(errs...)
}
