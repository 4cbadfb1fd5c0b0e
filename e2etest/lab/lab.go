package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Names of the fixed objects inside the lab namespaces. They never appear in the root
// namespace, so they need no prefix.
const (
	bridgeName = "br0"
	hostIface  = "eth0"
)

// Limits that keep the IP plan valid: node N is 192.168.50.(10+N) and must stay below the VIP
// range that starts at .50; pod I of a node is 10.244.N.(1+I) and fd00:10:244:N::(1+I).
const (
	maxNodes       = 39
	maxPodsPerNode = 200
	maxPrefixLen   = 32
)

// closeTimeout bounds teardown; Close has no context because it usually runs in t.Cleanup.
const closeTimeout = 30 * time.Second

var prefixRE = regexp.MustCompile(`^[a-z][a-z0-9]*(-[a-z0-9]+)*$`)

// Config describes the lab to build.
type Config struct {
	// Prefix starts every namespace name ("<Prefix>-lan", "<Prefix>-node1", ...). Lowercase
	// letters, digits and inner hyphens. Default "ilb".
	Prefix string
	// Nodes is the number of nodes on the LAN, 1 to 39. Default 3.
	Nodes int
	// PodsPerNode is the number of pod namespaces behind each node, up to 200. Default 1;
	// -1 means none (0 already means "use the default").
	PodsPerNode int
	// Output receives stdout and stderr of processes started with Host.Start. Default: discarded.
	Output io.Writer
}

func (c Config) withDefaults() (Config, error) {
	if c.Prefix == "" {
		c.Prefix = "ilb"
	}
	if c.Nodes == 0 {
		c.Nodes = 3
	}
	switch {
	case c.PodsPerNode == 0:
		c.PodsPerNode = 1
	case c.PodsPerNode == -1:
		c.PodsPerNode = 0
	}
	if c.Output == nil {
		c.Output = io.Discard
	}
	if len(c.Prefix) > maxPrefixLen || !prefixRE.MatchString(c.Prefix) {
		return c, fmt.Errorf("lab prefix %q: want lowercase letters, digits and inner hyphens, at most %d characters", c.Prefix, maxPrefixLen)
	}
	if c.Nodes < 1 || c.Nodes > maxNodes {
		return c, fmt.Errorf("lab nodes %d: want 1 to %d", c.Nodes, maxNodes)
	}
	if c.PodsPerNode < 0 || c.PodsPerNode > maxPodsPerNode {
		return c, fmt.Errorf("lab pods per node %d: want 0 to %d (-1 for none)", c.PodsPerNode, maxPodsPerNode)
	}
	return c, nil
}

// Lab is a running set of namespaces. Close removes it.
type Lab struct {
	// LAN is the namespace holding bridge br0; its ports are named after the hosts
	// ("client", "router", "node1", ...). It has no addresses.
	LAN    *Host
	Client *Host
	Router *Host
	Nodes  []*Node

	prefix string
	output io.Writer

	mu       sync.Mutex
	procs    []*exec.Cmd
	forwards map[*forwarder]struct{} // see Host.Forward
	closed   bool
}

// Host is one network namespace with one interface towards its link.
type Host struct {
	// Name is the network namespace name, as shown by `ip netns list`.
	Name string
	// IPv4 and IPv6 are the addresses on Iface; both are the zero Addr for the LAN namespace,
	// which has no addresses at all.
	IPv4 netip.Addr
	IPv6 netip.Addr
	// MAC is the address of Iface, fixed by the IP plan so tests can expect it in neighbour
	// tables and ARP replies.
	MAC net.HardwareAddr
	// Iface is the interface name inside the namespace ("eth0", or "br0" for the LAN).
	Iface string

	lab *Lab
}

// Node is a host on the LAN with pods behind it.
type Node struct {
	Host
	// Index is the node number, from 1; it picks the LAN address and the pod subnet 10.244.Index.0/24.
	Index int
	// LANPort is the name of the node's veth peer in the LAN namespace, the port CutLink turns off.
	LANPort string
	// PodCIDR is 10.244.Index.0/24; the node holds .1 on each pod-facing veth.
	PodCIDR netip.Prefix
	// PodCIDRv6 is fd00:10:244:Index::/64 (Index spelled in decimal digits, as the LAN plan
	// does); the node holds ::1 on each pod-facing veth.
	PodCIDRv6 netip.Prefix
	// Pods are the pod namespaces behind the node, each on its own veth pair ("pod1" on the node).
	Pods []*Host
}

// Start removes whatever a previous run with the same prefix left behind and builds a new lab.
// On error everything created so far is removed again.
func Start(ctx context.Context, cfg Config) (*Lab, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := removeAll(ctx, cfg.Prefix); err != nil {
		return nil, fmt.Errorf("remove leftovers of lab %q: %w", cfg.Prefix, err)
	}
	l := plan(cfg)
	if err := l.build(ctx); err != nil {
		if cerr := l.Close(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("clean up after failed start: %w", cerr))
		}
		return nil, fmt.Errorf("start lab %q: %w", cfg.Prefix, err)
	}
	return l, nil
}

// plan fills in every name and address without touching the kernel.
func plan(cfg Config) *Lab {
	p := cfg.Prefix
	l := &Lab{prefix: p, output: cfg.Output}
	l.LAN = &Host{Name: p + "-lan", Iface: bridgeName, lab: l}
	l.Router = l.lanHost(p+"-router", 1)
	l.Client = l.lanHost(p+"-client", 2)
	for n := 1; n <= cfg.Nodes; n++ {
		node := &Node{
			Host:      *l.lanHost(fmt.Sprintf("%s-node%d", p, n), 10+n),
			Index:     n,
			LANPort:   fmt.Sprintf("node%d", n),
			PodCIDR:   netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, byte(n), 0}), 24),
			PodCIDRv6: netip.MustParsePrefix(fmt.Sprintf("fd00:10:244:%d::/64", n)),
		}
		for i := 1; i <= cfg.PodsPerNode; i++ {
			node.Pods = append(node.Pods, &Host{
				Name:  fmt.Sprintf("%s-n%d-pod%d", p, n, i),
				IPv4:  netip.AddrFrom4([4]byte{10, 244, byte(n), byte(1 + i)}),
				IPv6:  netip.MustParseAddr(fmt.Sprintf("fd00:10:244:%d::%d", n, 1+i)),
				MAC:   net.HardwareAddr{0x02, 0x00, 10, 244, byte(n), byte(1 + i)},
				Iface: hostIface,
				lab:   l,
			})
		}
		l.Nodes = append(l.Nodes, node)
	}
	return l
}

// lanHost plans a host on 192.168.50.0/24. The IPv6 host part repeats the decimal IPv4 octet
// as hex digits (node 1: .11 and ::11) so the two plans read the same.
func (l *Lab) lanHost(name string, octet int) *Host {
	return &Host{
		Name:  name,
		IPv4:  netip.AddrFrom4([4]byte{192, 168, 50, byte(octet)}),
		IPv6:  netip.MustParseAddr(fmt.Sprintf("fd00:50::%d", octet)),
		MAC:   net.HardwareAddr{0x02, 0x00, 192, 168, 50, byte(octet)},
		Iface: hostIface,
		lab:   l,
	}
}

// lanHosts are the hosts with a port on br0, with the port name of each.
func (l *Lab) lanHosts() (hosts []*Host, ports []string) {
	hosts = []*Host{l.Router, l.Client}
	ports = []string{"router", "client"}
	for _, n := range l.Nodes {
		hosts = append(hosts, &n.Host)
		ports = append(ports, n.LANPort)
	}
	return hosts, ports
}

func (l *Lab) build(ctx context.Context) error {
	all := []*Host{l.LAN}
	lanHosts, ports := l.lanHosts()
	all = append(all, lanHosts...)
	for _, n := range l.Nodes {
		all = append(all, n.Pods...)
	}
	for _, h := range all {
		if err := h.create(ctx); err != nil {
			return err
		}
	}

	// Spanning tree stays off (the default) so ports forward as soon as they are up; multicast
	// snooping is off so IPv6 neighbour solicitations are flooded without a querier.
	if err := ipIn(ctx, l.LAN.Name, "link", "add", bridgeName, "type", "bridge", "stp_state", "0", "mcast_snooping", "0"); err != nil {
		return err
	}
	if err := ipIn(ctx, l.LAN.Name, "link", "set", bridgeName, "up"); err != nil {
		return err
	}
	for i, h := range lanHosts {
		if err := l.attach(ctx, h, ports[i]); err != nil {
			return err
		}
	}
	for _, n := range l.Nodes {
		// Forwarding is per namespace: this changes nothing outside the lab.
		if err := n.exec0(ctx, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"); err != nil {
			return err
		}
		for i, pod := range n.Pods {
			if err := n.connectPod(ctx, pod, fmt.Sprintf("pod%d", i+1)); err != nil {
				return err
			}
		}
	}
	return nil
}

// create adds the namespace, brings lo up and turns off duplicate address detection, which
// would otherwise keep new IPv6 addresses (link-local ones too) tentative for about a second.
func (h *Host) create(ctx context.Context) error {
	if _, err := run(ctx, "ip", "netns", "add", h.Name); err != nil {
		return err
	}
	if err := ipIn(ctx, h.Name, "link", "set", "lo", "up"); err != nil {
		return err
	}
	return h.exec0(ctx, "sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
}

// attach creates the host's eth0 with its peer directly in the LAN namespace and plugs the peer
// into br0. Creating the pair inside the host namespace keeps the root namespace untouched.
func (l *Lab) attach(ctx context.Context, h *Host, port string) error {
	steps := [][]string{
		{"link", "add", h.Iface, "address", h.MAC.String(), "type", "veth", "peer", "name", port, "netns", l.LAN.Name},
		{"addr", "add", netip.PrefixFrom(h.IPv4, 24).String(), "dev", h.Iface},
		{"addr", "add", netip.PrefixFrom(h.IPv6, 64).String(), "dev", h.Iface, "nodad"},
		{"link", "set", h.Iface, "up"},
	}
	for _, s := range steps {
		if err := ipIn(ctx, h.Name, s...); err != nil {
			return err
		}
	}
	if err := ipIn(ctx, l.LAN.Name, "link", "set", port, "master", bridgeName); err != nil {
		return err
	}
	return ipIn(ctx, l.LAN.Name, "link", "set", port, "up")
}

// connectPod links a pod namespace to the node with a veth pair; the node side holds the
// gateway addresses .1 and ::1 of the pod subnets, and the pod routes everything through them.
func (n *Node) connectPod(ctx context.Context, pod *Host, nodeSide string) error {
	gw, gw6 := n.PodCIDR.Addr().Next(), n.PodCIDRv6.Addr().Next()
	for _, s := range [][]string{
		{"link", "add", pod.Iface, "address", pod.MAC.String(), "type", "veth", "peer", "name", nodeSide, "netns", n.Name},
		{"addr", "add", netip.PrefixFrom(pod.IPv4, n.PodCIDR.Bits()).String(), "dev", pod.Iface},
		{"addr", "add", netip.PrefixFrom(pod.IPv6, n.PodCIDRv6.Bits()).String(), "dev", pod.Iface, "nodad"},
		{"link", "set", pod.Iface, "up"},
	} {
		if err := ipIn(ctx, pod.Name, s...); err != nil {
			return err
		}
	}
	for _, s := range [][]string{
		{"addr", "add", netip.PrefixFrom(gw, n.PodCIDR.Bits()).String(), "dev", nodeSide},
		{"addr", "add", netip.PrefixFrom(gw6, n.PodCIDRv6.Bits()).String(), "dev", nodeSide, "nodad"},
		{"link", "set", nodeSide, "up"},
		// Every pod veth carries the pod subnets; the host routes pick this pod's veth, or
		// the node would send to all its pods through the first one.
		{"route", "add", netip.PrefixFrom(pod.IPv4, 32).String(), "dev", nodeSide},
		{"-6", "route", "add", netip.PrefixFrom(pod.IPv6, 128).String(), "dev", nodeSide},
	} {
		if err := ipIn(ctx, n.Name, s...); err != nil {
			return err
		}
	}
	if err := ipIn(ctx, pod.Name, "route", "add", "default", "via", gw.String(), "dev", pod.Iface); err != nil {
		return err
	}
	return ipIn(ctx, pod.Name, "-6", "route", "add", "default", "via", gw6.String(), "dev", pod.Iface)
}

// CutLink sets the node's port on the LAN bridge down, as if its cable were pulled: the node's
// eth0 loses carrier and nothing crosses between the node and the LAN.
func (l *Lab) CutLink(n *Node) error {
	return l.setPort(n, "down")
}

// RestoreLink undoes CutLink.
func (l *Lab) RestoreLink(n *Node) error {
	return l.setPort(n, "up")
}

func (l *Lab) setPort(n *Node, state string) error {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	if err := ipIn(ctx, l.LAN.Name, "link", "set", n.LANPort, state); err != nil {
		return fmt.Errorf("set LAN port of %s %s: %w", n.Name, state, err)
	}
	return nil
}

// Exec runs a command inside the host's namespace and returns its stdout. The error carries
// the command's stderr.
func (h *Host) Exec(ctx context.Context, args ...string) (string, error) {
	return run(ctx, "ip", append([]string{"netns", "exec", h.Name}, args...)...)
}

// exec0 is Exec for commands whose output does not matter.
func (h *Host) exec0(ctx context.Context, args ...string) error {
	_, err := h.Exec(ctx, args...)
	return err
}

// Start starts a command in the background inside the host's namespace. It runs in its own
// process group; cancelling ctx or closing the lab kills the group. The lab owns the process:
// do not call Wait on the returned Cmd, Lab.Close reaps it. Its output goes to Config.Output.
func (h *Host) Start(ctx context.Context, args ...string) (*exec.Cmd, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("start in netns %s: no command", h.Name)
	}
	l := h.lab
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, fmt.Errorf("start %q in netns %s: lab is closed", strings.Join(args, " "), h.Name)
	}
	// `ip netns exec` execs the command itself (no fork), so the pid is the command's.
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.Name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd) }
	cmd.WaitDelay = 5 * time.Second
	cmd.Stdout = l.output
	cmd.Stderr = l.output
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %q in netns %s: %w", strings.Join(args, " "), h.Name, err)
	}
	l.procs = append(l.procs, cmd)
	return cmd, nil
}

func killGroup(cmd *exec.Cmd) error {
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// Close stops every Host.Forward, kills the processes started with Host.Start and removes every
// namespace with the lab's prefix, including ones a failed Start left half built. Calling it
// again does nothing.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	procs := l.procs
	l.procs = nil
	// A copy: stopping a forwarder removes it from the map.
	var forwards []*forwarder
	for f := range l.forwards {
		forwards = append(forwards, f)
	}
	l.mu.Unlock()

	// A forwarder's sockets would keep its namespace alive after `ip netns del`.
	for _, f := range forwards {
		f.stop()
	}
	var errs []error
	for _, cmd := range procs {
		if err := killGroup(cmd); err != nil {
			errs = append(errs, fmt.Errorf("kill %q: %w", cmd.String(), err))
		}
		// The exit status is that of a killed process; only reaping matters here.
		_ = cmd.Wait()
	}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	if err := removeAll(ctx, l.prefix); err != nil {
		errs = append(errs, fmt.Errorf("close lab %q: %w", l.prefix, err))
	}
	return errors.Join(errs...)
}

// Namespaces lists the lab namespaces with the prefix that exist right now, whoever made them.
func Namespaces(ctx context.Context, prefix string) ([]string, error) {
	out, err := run(ctx, "ip", "netns", "list")
	if err != nil {
		return nil, err
	}
	own := regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `-(lan|client|router|node[0-9]+|n[0-9]+-pod[0-9]+)$`)
	var names []string
	for _, line := range strings.Split(out, "\n") {
		// Lines look like "ilb-node1 (id: 3)" once the namespace has an id.
		fields := strings.Fields(line)
		if len(fields) > 0 && own.MatchString(fields[0]) {
			names = append(names, fields[0])
		}
	}
	return names, nil
}

// Remove deletes every namespace of the lab with the prefix, and the processes in them, as Start
// does before building: for tools that clean up after a killed run without starting a new one.
func Remove(ctx context.Context, prefix string) error { return removeAll(ctx, prefix) }

// removeAll deletes every lab namespace with the prefix. A process still inside one would keep
// the namespace (and its veths) alive after `ip netns del`, so those are killed first; only lab
// code puts processes there. Deleting a namespace destroys its interfaces, and a veth pair goes
// when either end goes, so nothing else needs removing.
func removeAll(ctx context.Context, prefix string) error {
	names, err := Namespaces(ctx, prefix)
	if err != nil {
		return err
	}
	var errs []error
	for _, name := range names {
		out, err := run(ctx, "ip", "netns", "pids", name)
		if err != nil {
			errs = append(errs, err)
		}
		for _, f := range strings.Fields(out) {
			pid, err := strconv.Atoi(f)
			if err != nil || pid <= 1 {
				continue
			}
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				errs = append(errs, fmt.Errorf("kill pid %d in netns %s: %w", pid, name, err))
			}
		}
		if _, err := run(ctx, "ip", "netns", "del", name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ipIn runs `ip -n ns args...`; ip switches namespace itself, which is cheaper than netns exec.
func ipIn(ctx context.Context, ns string, args ...string) error {
	_, err := run(ctx, "ip", append([]string{"-n", ns}, args...)...)
	return err
}

// run executes a command and returns its stdout; on failure the error names the command and
// carries its stderr.
func run(ctx context.Context, name string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
	}
	return stdout.String(), nil
}
