package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/ironlb/ironlb/e2etest/lab"
)

// FRR runs FRRouting's zebra, bgpd and bfdd (Debian package frr) in one lab namespace, the
// router the speakers peer with. Everything the daemons read or write lives in a directory of
// its own (configuration, pid files, vty and zebra sockets, BFD's control socket): nothing
// under /etc/frr, no daemon in the root namespace, no port outside the namespace. zebra is
// there so bgpd installs routes (ECMP included) in the namespace's kernel table and so bgpd and
// bfdd can talk. The daemons run as the frr user the package creates.
type FRR struct {
	host  *lab.Host
	dir   string
	procs map[string]*exec.Cmd
}

// frrDaemons start in this order: zebra first, the others connect to it.
var frrDaemons = []string{"zebra", "bgpd", "bfdd"}

// FRRDir is where the FRR of a lab prefix keeps its files: fixed per prefix, so a new run
// removes what a killed one left.
func FRRDir(prefix string) string { return filepath.Join(os.TempDir(), "ironlb-frr-"+prefix) }

// StartFRR starts the daemons in host's namespace with bgpdConf as bgpd's configuration (bfdd
// and zebra start empty; bgpd's "neighbor ... bfd" configures BFD through them) and waits
// until vtysh reaches all three.
func StartFRR(ctx context.Context, host *lab.Host, prefix, bgpdConf string) (*FRR, error) {
	for _, tool := range []string{"/usr/lib/frr/bgpd", "/usr/lib/frr/zebra", "/usr/lib/frr/bfdd", "vtysh"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("FRR is not installed (Debian package frr): %w", err)
		}
	}
	f := &FRR{host: host, dir: FRRDir(prefix), procs: map[string]*exec.Cmd{}}
	f.removeLeftovers()
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		return nil, err
	}
	// The daemons drop to the frr user, which must create its sockets and pid files here.
	if err := os.Chmod(f.dir, 0o777); err != nil {
		return nil, err
	}
	confs := map[string]string{
		"zebra.conf": "hostname router\n",
		"bgpd.conf":  bgpdConf,
		"bfdd.conf":  "",
		// vtysh reads it from --config_dir; empty is fine, missing is an error.
		"vtysh.conf": "",
	}
	for name, c := range confs {
		if err := os.WriteFile(filepath.Join(f.dir, name), []byte(c), 0o644); err != nil {
			return nil, err
		}
	}
	for _, d := range frrDaemons {
		args := []string{"/usr/lib/frr/" + d,
			"-u", "frr", "-g", "frr",
			"-f", filepath.Join(f.dir, d+".conf"),
			"-i", filepath.Join(f.dir, d+".pid"),
			"-z", filepath.Join(f.dir, "zserv.api"),
			"--vty_socket", f.dir,
			"-P", "0", // no vty TCP port
			"--log", "stdout",
		}
		if d == "bfdd" {
			args = append(args, "--bfdctl", filepath.Join(f.dir, "bfdd.sock"))
		}
		cmd, err := host.Start(context.Background(), args...)
		if err != nil {
			return nil, errors.Join(err, f.Close())
		}
		f.procs[d] = cmd
		// bgpd and bfdd give up on zebra if its socket is not there yet.
		if d == "zebra" {
			if err := f.waitFor(ctx, filepath.Join(f.dir, "zserv.api")); err != nil {
				return nil, errors.Join(err, f.Close())
			}
		}
	}
	for _, d := range frrDaemons {
		if err := f.waitFor(ctx, filepath.Join(f.dir, d+".vty")); err != nil {
			return nil, errors.Join(err, f.Close())
		}
	}
	return f, nil
}

func (f *FRR) waitFor(ctx context.Context, path string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("FRR did not create %s within 10s", path)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Dir is the directory of the daemons' files (the --vty_socket directory).
func (f *FRR) Dir() string { return f.dir }

// Vtysh runs vtysh commands against these daemons and returns the output. vtysh talks to them
// over the unix sockets in Dir, so it needs no namespace.
func (f *FRR) Vtysh(ctx context.Context, cmds ...string) (string, error) {
	args := []string{"--vty_socket", f.dir, "--config_dir", f.dir}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	cmd := exec.CommandContext(ctx, "vtysh", args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("vtysh %s: %w: %s", strings.Join(cmds, " / "), err, out)
	}
	return string(out), nil
}

// Configure applies configuration lines in configure mode, e.g. "router bgp 64513",
// "neighbor 192.168.50.11 password x".
func (f *FRR) Configure(ctx context.Context, lines ...string) error {
	out, err := f.Vtysh(ctx, append([]string{"configure terminal"}, lines...)...)
	if err != nil {
		return err
	}
	// vtysh exits 0 on some rejected lines; they print "% ...".
	if strings.Contains(out, "% ") {
		return fmt.Errorf("FRR rejected %q: %s", lines, out)
	}
	return nil
}

// RIBPath is one path of a prefix in bgpd's table.
type RIBPath struct {
	Valid     bool   `json:"valid"`
	Best      bool   `json:"bestpath"`
	Multipath bool   `json:"multipath"`
	Stale     bool   `json:"stale"`
	PeerID    string `json:"peerId"`
	Path      string `json:"path"`
	LocalPref uint32 `json:"locPrf"`
	PathFrom  string `json:"pathFrom"`
	Nexthops  []struct {
		IP    string `json:"ip"`
		Scope string `json:"scope"`
		Used  bool   `json:"used"`
	} `json:"nexthops"`
}

// NextHop is the path's global next hop.
func (p RIBPath) NextHop() string {
	for _, n := range p.Nexthops {
		if n.Scope == "" || n.Scope == "global" {
			return n.IP
		}
	}
	return ""
}

// RIB reads bgpd's table of a family ("ipv4" or "ipv6"): prefix -> paths.
func (f *FRR) RIB(ctx context.Context, family string) (map[string][]RIBPath, error) {
	out, err := f.Vtysh(ctx, "show bgp "+family+" unicast json")
	if err != nil {
		return nil, err
	}
	var t struct {
		Routes map[string][]RIBPath `json:"routes"`
	}
	if err := json.Unmarshal([]byte(out), &t); err != nil {
		return nil, fmt.Errorf("parse show bgp %s unicast json: %w: %s", family, err, out)
	}
	return t.Routes, nil
}

// RouteDetail is one path of "show bgp <family> unicast <prefix> json": its attributes.
type RouteDetail struct {
	Peer struct {
		PeerID string `json:"peerId"`
	} `json:"peer"`
	LocalPref uint32 `json:"locPrf"`
	Community struct {
		String string `json:"string"`
	} `json:"community"`
	LargeCommunity struct {
		String string `json:"string"`
	} `json:"largeCommunity"`
	ASPath struct {
		String string `json:"string"`
	} `json:"aspath"`
	Nexthops []struct {
		IP         string `json:"ip"`
		Scope      string `json:"scope"`
		Accessible bool   `json:"accessible"`
	} `json:"nexthops"`
	Valid bool `json:"valid"`
}

// Route reads the paths of one prefix with their attributes; none when bgpd has no such
// prefix.
func (f *FRR) Route(ctx context.Context, family, prefix string) ([]RouteDetail, error) {
	out, err := f.Vtysh(ctx, "show bgp "+family+" unicast "+prefix+" json")
	if err != nil {
		return nil, err
	}
	var r struct {
		Paths []RouteDetail `json:"paths"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return nil, fmt.Errorf("parse show bgp %s unicast %s json: %w: %s", family, prefix, err, out)
	}
	return r.Paths, nil
}

// Neighbors reads the session state of every neighbor: address -> state (Established,
// Active, ...).
func (f *FRR) Neighbors(ctx context.Context) (map[string]string, error) {
	out, err := f.Vtysh(ctx, "show bgp neighbors json")
	if err != nil {
		return nil, err
	}
	var n map[string]struct {
		State string `json:"bgpState"`
	}
	if err := json.Unmarshal([]byte(out), &n); err != nil {
		return nil, fmt.Errorf("parse show bgp neighbors json: %w: %s", err, out)
	}
	states := map[string]string{}
	for addr, v := range n {
		states[addr] = v.State
	}
	return states, nil
}

// BFDPeers reads bfdd's sessions: peer address -> status (up, down, init).
func (f *FRR) BFDPeers(ctx context.Context) (map[string]string, error) {
	out, err := f.Vtysh(ctx, "show bfd peers json")
	if err != nil {
		return nil, err
	}
	var ps []struct {
		Peer   string `json:"peer"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &ps); err != nil {
		return nil, fmt.Errorf("parse show bfd peers json: %w: %s", err, out)
	}
	states := map[string]string{}
	for _, p := range ps {
		states[p.Peer] = p.Status
	}
	return states, nil
}

// Close stops the daemons with SIGTERM, so they remove their crash-log directories under
// /var/tmp/frr, and removes Dir. Lab.Close kills what is left.
func (f *FRR) Close() error {
	for _, d := range frrDaemons {
		if cmd := f.procs[d]; cmd != nil && cmd.Process != nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, d := range frrDaemons {
		cmd := f.procs[d]
		if cmd == nil || cmd.Process == nil {
			continue
		}
		for running(cmd.Process.Pid) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	f.removeLeftovers()
	return nil
}

// RemoveFRRLeftovers deletes what the FRR of a lab prefix left behind when its run was killed:
// its directory and the daemons' crash-log directories. The daemons must be gone already
// (removing the lab's namespaces kills them).
func RemoveFRRLeftovers(prefix string) { (&FRR{dir: FRRDir(prefix)}).removeLeftovers() }

// removeLeftovers deletes Dir and the /var/tmp/frr directories of the daemons whose pid
// files are in it (a killed run's daemons cannot remove their own).
func (f *FRR) removeLeftovers() {
	for _, d := range frrDaemons {
		b, err := os.ReadFile(filepath.Join(f.dir, d+".pid"))
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && !running(pid) {
			_ = os.RemoveAll(filepath.Join("/var/tmp/frr", fmt.Sprintf("%s.%d", d, pid)))
		}
	}
	_ = os.RemoveAll(f.dir)
}

// running reports whether pid is a live process (not gone, not a zombie awaiting Lab.Close).
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses, which may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || (s[i+2] != 'Z' && s[i+2] != 'X')
}

// WaitFIB polls the kernel routing table of host's namespace over netlink every 2 ms until
// done holds for the next hops of the route to prefix (none: no route), and returns when it
// first did. It measures when forwarding changes, to the millisecond; a vtysh call takes tens of
// milliseconds, more under load. Start it before the event to time, in its own goroutine.
func WaitFIB(ctx context.Context, host *lab.Host, prefix netip.Prefix, timeout time.Duration, done func(nextHops []netip.Addr) bool) (time.Time, error) {
	var at time.Time
	err := host.Do(func() error {
		// Opened here, on Do's thread: the socket belongs to host's namespace.
		h, err := netlink.NewHandle()
		if err != nil {
			return fmt.Errorf("netlink in %s: %w", host.Name, err)
		}
		defer h.Close()
		family := netlink.FAMILY_V4
		if prefix.Addr().Is6() {
			family = netlink.FAMILY_V6
		}
		dst := &net.IPNet{IP: prefix.Addr().AsSlice(), Mask: net.CIDRMask(prefix.Bits(), prefix.Addr().BitLen())}
		deadline := time.Now().Add(timeout)
		var last []netip.Addr
		for time.Now().Before(deadline) && ctx.Err() == nil {
			routes, err := h.RouteListFiltered(family, &netlink.Route{Dst: dst}, netlink.RT_FILTER_DST)
			if err != nil {
				return fmt.Errorf("list routes to %s in %s: %w", prefix, host.Name, err)
			}
			last = last[:0]
			for _, r := range routes {
				if gw, ok := netip.AddrFromSlice(r.Gw); ok {
					last = append(last, gw.Unmap())
				}
				for _, nh := range r.MultiPath {
					if gw, ok := netip.AddrFromSlice(nh.Gw); ok {
						last = append(last, gw.Unmap())
					}
				}
			}
			slices.SortFunc(last, netip.Addr.Compare)
			if done(last) {
				at = time.Now()
				return nil
			}
			time.Sleep(2 * time.Millisecond)
		}
		return fmt.Errorf("route to %s in %s: not as wanted within %v; last next hops %v", prefix, host.Name, timeout, last)
	})
	return at, err
}
