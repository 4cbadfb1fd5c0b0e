// Package cluster runs ironlb's speakers in the network-namespace lab against an API server
// the calling process runs (the test control plane): the lab of package lab, plus a forwarder
// in each node's namespace that makes the API server's 127.0.0.1:port reachable there, plus
// one real speaker process per node. The e2e tests and `make demo` share it.
//
// Nodes are named node1..nodeN in Kubernetes (the caller creates the Node objects); the
// speakers find each other with a static --peers list, as the lab has no pods.
package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ironlb/ironlb/e2etest/lab"
	"github.com/ironlb/ironlb/speaker/ifaces"
)

// Config describes the cluster to start.
type Config struct {
	// Prefix names the lab's namespaces (see lab.Config). Required.
	Prefix string
	// Nodes is the number of nodes. Default 3.
	Nodes int
	// APIAddr is the API server's host:port on 127.0.0.1, as the calling process reaches it.
	// Required.
	APIAddr string
	// Kubeconfig is a kubeconfig file for that API server. Required.
	Kubeconfig string
	// Namespace is the speakers' configuration namespace. Default metallb-system.
	Namespace string
	// SpeakerBin is the speaker binary (see BuildSpeaker). Required.
	SpeakerBin string
	// Output receives the speakers' logs. Default: discarded.
	Output io.Writer
	// PodsPerNode is the number of pod namespaces behind each node (see lab.Config); 0 means
	// none.
	PodsPerNode int
	// SpeakerArgs are extra flags for every speaker, such as --proxy=nftables; a flag given
	// again there wins.
	SpeakerArgs []string
}

// Cluster is a running lab with speakers.
type Cluster struct {
	*lab.Lab
	cfg     Config
	keyDir  string
	mu      sync.Mutex
	procs   map[string]*exec.Cmd          // speakers by node name
	forward map[string]context.CancelFunc // the API forwarders by node name
}

// BuildSpeaker builds the speaker binary from the repository at root into dir.
func BuildSpeaker(root, dir string) (string, error) {
	bin := filepath.Join(dir, "speaker")
	cmd := exec.Command("go", "build", "-o", bin, "./speaker")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./speaker: %w\n%s", err, out)
	}
	return bin, nil
}

// Start builds the lab (removing a previous run's leftovers), connects every node to the API
// server and starts a speaker on each.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if cfg.Nodes == 0 {
		cfg.Nodes = 3
	}
	if cfg.Namespace == "" {
		cfg.Namespace = "metallb-system"
	}
	pods := cfg.PodsPerNode
	if pods == 0 {
		pods = -1 // lab's "none"
	}
	l, err := lab.Start(ctx, lab.Config{Prefix: cfg.Prefix, Nodes: cfg.Nodes, PodsPerNode: pods, Output: cfg.Output})
	if err != nil {
		return nil, err
	}
	c := &Cluster{Lab: l, cfg: cfg, procs: map[string]*exec.Cmd{}}
	fail := func(err error) (*Cluster, error) {
		return nil, errors.Join(err, c.Close())
	}
	if c.keyDir, err = os.MkdirTemp("", "ironlb-cluster-"); err != nil {
		return fail(err)
	}
	// Any bytes will do: the speakers derive the AES key from the Secret's content.
	if err := os.WriteFile(c.keyFile(), []byte("lab memberlist secret, any length"), 0o600); err != nil {
		return fail(err)
	}
	if err := c.APIUp(); err != nil {
		return fail(err)
	}
	for _, n := range l.Nodes {
		if err := c.StartSpeaker(n); err != nil {
			return fail(err)
		}
	}
	return c, nil
}

func (c *Cluster) keyFile() string { return filepath.Join(c.keyDir, "secretkey") }

// APIUp lets every node reach the API server: a forwarder whose listener lives in the node's
// namespace, on the same 127.0.0.1:port the calling process uses.
func (c *Cluster) APIUp() error {
	for _, n := range c.Nodes {
		if err := c.NodeAPIUp(n); err != nil {
			return err
		}
	}
	return nil
}

// APIDown cuts every node off the API server (an API outage as the speakers see it).
func (c *Cluster) APIDown() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cancel := range c.forward {
		cancel()
	}
	c.forward = nil
}

// NodeAPIUp lets node n reach the API server (again); nothing changes if it does.
func (c *Cluster) NodeAPIUp(n *lab.Node) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.forward[n.Name] != nil {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := n.Forward(ctx, c.cfg.APIAddr, c.cfg.APIAddr); err != nil {
		cancel()
		return fmt.Errorf("forward the API server into %s: %w", n.Name, err)
	}
	if c.forward == nil {
		c.forward = map[string]context.CancelFunc{}
	}
	c.forward[n.Name] = cancel
	return nil
}

// NodeAPIDown cuts node n off the API server, closing its open connections: with CutLink, the
// whole cable of a node whose API traffic shares the LAN.
func (c *Cluster) NodeAPIDown(n *lab.Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cancel := c.forward[n.Name]; cancel != nil {
		cancel()
		delete(c.forward, n.Name)
	}
}

// NodeName is the Kubernetes name of a lab node: node1, node2, ...
func NodeName(n *lab.Node) string { return fmt.Sprintf("node%d", n.Index) }

// Node returns the lab node with the Kubernetes name, or nil.
func (c *Cluster) Node(name string) *lab.Node {
	for _, n := range c.Nodes {
		if NodeName(n) == name {
			return n
		}
	}
	return nil
}

// NodeByMAC names the node whose eth0 has mac (any case), or says the MAC is unknown.
func (c *Cluster) NodeByMAC(mac string) string {
	for _, n := range c.Nodes {
		if strings.EqualFold(n.MAC.String(), mac) {
			return NodeName(n)
		}
	}
	return "unknown MAC " + mac
}

// StartSpeaker starts the speaker of node n (again).
func (c *Cluster) StartSpeaker(n *lab.Node) error {
	var peers []string
	for _, o := range c.Nodes {
		if o != n {
			peers = append(peers, o.IPv4.String())
		}
	}
	args := []string{c.cfg.SpeakerBin,
		"--kubeconfig", c.cfg.Kubeconfig,
		"--node-name", NodeName(n),
		"--namespace", c.cfg.Namespace,
		"--memberlist-bind-addr", n.IPv4.String(),
		"--peers", strings.Join(peers, ","),
		"--memberlist-key-file", c.keyFile(),
		"--metrics-bind-address", "0",
		"--health-probe-bind-address", "0",
		"--zap-log-level", "info",
		// Milliseconds matter when a failure is read from the logs (the default is seconds).
		"--zap-time-encoding", "rfc3339nano",
		// The lab names a node's veth to each pod "podN", where CNIs use veth*, cali*, lxc*...
		// (the speaker's default exclusions): leave it out as those are, so the speakers answer
		// ARP on eth0 only, as on a real node.
		"--excluded-interfaces", strings.Join(append(slices.Clone(ifaces.DefaultExcludedPrefixes), "pod"), ","),
	}
	cmd, err := n.Start(context.Background(), append(args, c.cfg.SpeakerArgs...)...)
	if err != nil {
		return fmt.Errorf("start speaker on %s: %w", n.Name, err)
	}
	c.mu.Lock()
	c.procs[NodeName(n)] = cmd
	c.mu.Unlock()
	return nil
}

// StopTimeout bounds how long StopSpeaker waits for the process to exit: above the speaker's
// own --shutdown-timeout (20s), which it must keep.
const StopTimeout = 30 * time.Second

// StopSpeaker signals the speaker of the named node — SIGTERM as Kubernetes stops a pod (it
// stops answering and leaves memberlist), SIGKILL as a crash — and waits until the process has
// exited. A speaker still running after StopTimeout is sent SIGQUIT, so its goroutine dump in
// the output shows where it hangs, and StopSpeaker returns an error saying so.
func (c *Cluster) StopSpeaker(name string, sig syscall.Signal) error {
	c.mu.Lock()
	cmd := c.procs[name]
	delete(c.procs, name)
	c.mu.Unlock()
	if cmd == nil {
		return fmt.Errorf("no speaker runs on %s", name)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("stop speaker %s: %w", name, err)
	}
	// Not cmd.Wait: the lab reaps its processes (Lab.Close). An exited, unreaped process is a
	// zombie, which running reports as gone.
	pid := cmd.Process.Pid
	deadline := time.Now().Add(StopTimeout)
	for running(pid) {
		if time.Now().After(deadline) {
			_ = cmd.Process.Signal(syscall.SIGQUIT)
			for end := time.Now().Add(5 * time.Second); running(pid) && time.Now().Before(end); {
				time.Sleep(20 * time.Millisecond)
			}
			return fmt.Errorf("speaker %s still running %v after %v; sent SIGQUIT, see its goroutine dump in the speaker output", name, StopTimeout, sig)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

var arpReply = regexp.MustCompile(`reply from (\S+) \[([0-9A-Fa-f:]+)\]`)

// Arping asks for ip from the client with iputils' arping by broadcast (-b: a second answerer
// would answer too), count requests a second apart, stopping at count replies, and returns the
// replies per node.
func (c *Cluster) Arping(ip string, count int) map[string]int {
	out, _ := c.Client.Exec(context.Background(), "arping", "-b", "-c", fmt.Sprint(count), "-w", fmt.Sprint(count+1), "-I", "eth0", ip)
	got := map[string]int{}
	for _, m := range arpReply.FindAllStringSubmatch(out, -1) {
		if m[1] == ip {
			got[c.NodeByMAC(m[2])]++
		}
	}
	return got
}

var ndiscAnswer = regexp.MustCompile(`Target link-layer address: ([0-9A-Fa-f:]+)`)

// Ndisc6 solicits ip from the client with ndisc6, waiting for every answer (-m), and returns
// the answering nodes.
func (c *Cluster) Ndisc6(ip string) []string {
	out, _ := c.Client.Exec(context.Background(), "ndisc6", "-m", "-n", "-r", "2", "-w", "500", ip, "eth0")
	var got []string
	for _, m := range ndiscAnswer.FindAllStringSubmatch(out, -1) {
		got = append(got, c.NodeByMAC(m[1]))
	}
	return got
}

// OnlyOne returns the node that sent all of at least min replies, or "".
func OnlyOne(replies map[string]int, min int) string {
	if len(replies) != 1 {
		return ""
	}
	for n, c := range replies {
		if c >= min {
			return n
		}
	}
	return ""
}

// Close stops the forwarders and speakers and removes the lab.
func (c *Cluster) Close() error {
	c.APIDown()
	err := c.Lab.Close() // kills the speakers
	if c.keyDir != "" {
		err = errors.Join(err, os.RemoveAll(c.keyDir))
	}
	return err
}

// Usage is what a speaker process has used.
type Usage struct {
	// CPU is user plus system time since the process started.
	CPU time.Duration
	// RSS is the resident memory now, PeakRSS the most it had (bytes).
	RSS, PeakRSS uint64
}

// SpeakerUsage reads the named node's speaker's CPU time and memory from /proc.
func (c *Cluster) SpeakerUsage(name string) (Usage, error) {
	c.mu.Lock()
	cmd := c.procs[name]
	c.mu.Unlock()
	if cmd == nil {
		return Usage{}, fmt.Errorf("no speaker runs on %s", name)
	}
	u, err := processUsage(cmd.Process.Pid)
	if err != nil {
		return Usage{}, fmt.Errorf("usage of the speaker on %s: %w", name, err)
	}
	return u, nil
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on every Linux
// architecture Go supports.
const clockTicks = 100

func processUsage(pid int) (Usage, error) {
	var u Usage
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return u, err
	}
	// The command name is in parentheses and may contain spaces; fields count from after it.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return u, fmt.Errorf("parse /proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return u, fmt.Errorf("parse /proc/%d/stat: %d fields", pid, len(f))
	}
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	var ticks uint64
	for _, s := range f[11:13] {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return u, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
		}
		ticks += n
	}
	u.CPU = time.Duration(ticks) * time.Second / clockTicks
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var kb uint64
		if _, err := fmt.Sscanf(strings.TrimSpace(val), "%d kB", &kb); err != nil {
			continue
		}
		switch key {
		case "VmRSS":
			u.RSS = kb << 10
		case "VmHWM":
			u.PeakRSS = kb << 10
		}
	}
	return u, nil
}
