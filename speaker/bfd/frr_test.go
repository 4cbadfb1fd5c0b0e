package bfd

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const bfddPath = "/usr/lib/frr/bfdd"

// bfdd is FRR's BFD daemon running inside a test namespace, with its configuration, pid file,
// control and vty sockets in a directory of its own: nothing goes to /etc/frr or /var/run/frr.
// (FRR's crash-log directory under /var/tmp/frr is fixed at build time; it is removed after.)
// It runs without zebra, which single-hop sessions without interface names do not need.
type bfdd struct {
	dir string
	log *syncBuffer
}

// syncBuffer is a bytes.Buffer the process's output can be copied into while a test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// requireBFDD skips when FRR is not installed, except in CI, which installs it.
func requireBFDD(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(bfddPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("FRR's bfdd missing in CI (%v): .ci/run installs the frr package", err)
		}
		t.Skip("needs FRR's bfdd (apt-get install frr)")
	}
}

// startBFDD runs bfdd in namespace ns with the given frr.conf text and waits for its vty.
func startBFDD(t *testing.T, ns, conf string) *bfdd {
	t.Helper()
	requireBFDD(t)
	// bfdd drops to the frr user, which must reach and write the directory: t.TempDir's parent
	// is private to root.
	dir, err := os.MkdirTemp("", "ilb-bfd-frr-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "frr.conf")
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	d := &bfdd{dir: dir, log: &syncBuffer{}}
	cmd := exec.Command("ip", "netns", "exec", ns, bfddPath,
		"-f", cfg, "-i", filepath.Join(dir, "bfdd.pid"),
		"--vty_socket", dir, "--bfdctl", filepath.Join(dir, "bfdd.sock"),
		"-z", filepath.Join(dir, "zserv.api"), "--log", "stdout", "--log-level", "debug")
	cmd.Stdout, cmd.Stderr = d.log, d.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start bfdd: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		// SIGTERM first: bfdd then removes its crash-log directory, /var/tmp/frr/bfdd.<pid>.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		_ = os.RemoveAll(fmt.Sprintf("/var/tmp/frr/bfdd.%d", cmd.Process.Pid))
		if t.Failed() {
			t.Logf("bfdd log:\n%s", d.log.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, "bfdd.vty")); err == nil {
			if _, err := d.vtysh("show bfd peers json"); err == nil {
				return d
			}
		}
		select {
		case <-exited:
			t.Fatalf("bfdd exited: %s", d.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("bfdd vty not ready after 20s: %s", d.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// vtysh runs commands against this bfdd only.
func (d *bfdd) vtysh(cmds ...string) (string, error) {
	args := []string{"--vty_socket", d.dir}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "vtysh", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("vtysh %s: %w: %s%s", strings.Join(cmds, "; "), err, stderr.String(), stdout.String())
	}
	return stdout.String(), nil
}

// configure applies configuration lines under "configure terminal".
func (d *bfdd) configure(t testing.TB, lines ...string) {
	t.Helper()
	if _, err := d.vtysh(append([]string{"configure terminal"}, lines...)...); err != nil {
		t.Fatal(err)
	}
}

// frrPeer is one entry of `show bfd peers json` (intervals in milliseconds).
type frrPeer struct {
	Peer                   string `json:"peer"`
	ID                     uint32 `json:"id"`
	RemoteID               uint32 `json:"remote-id"`
	Status                 string `json:"status"`
	Diagnostic             string `json:"diagnostic"`
	RemoteDiagnostic       string `json:"remote-diagnostic"`
	PassiveMode            bool   `json:"passive-mode"`
	ReceiveInterval        int    `json:"receive-interval"`
	TransmitInterval       int    `json:"transmit-interval"`
	DetectMultiplier       int    `json:"detect-multiplier"`
	RemoteReceiveInterval  int    `json:"remote-receive-interval"`
	RemoteTransmitInterval int    `json:"remote-transmit-interval"`
	RemoteDetectMultiplier int    `json:"remote-detect-multiplier"`
}

// peer returns bfdd's view of the session with addr.
func (d *bfdd) peer(addr string) (frrPeer, error) {
	out, err := d.vtysh("show bfd peers json")
	if err != nil {
		return frrPeer{}, err
	}
	var peers []frrPeer
	if err := json.Unmarshal([]byte(out), &peers); err != nil {
		return frrPeer{}, fmt.Errorf("parse show bfd peers json: %w: %s", err, out)
	}
	for _, p := range peers {
		if p.Peer == addr {
			return p, nil
		}
	}
	return frrPeer{}, fmt.Errorf("bfdd has no peer %s: %s", addr, out)
}

// counters returns bfdd's packet counters for the session with addr.
func (d *bfdd) counters(addr string) (map[string]any, error) {
	out, err := d.vtysh("show bfd peers counters json")
	if err != nil {
		return nil, err
	}
	var peers []map[string]any
	if err := json.Unmarshal([]byte(out), &peers); err != nil {
		return nil, fmt.Errorf("parse show bfd peers counters json: %w: %s", err, out)
	}
	for _, p := range peers {
		if p["peer"] == addr {
			return p, nil
		}
	}
	return nil, fmt.Errorf("bfdd has no counters for %s: %s", addr, out)
}

// waitPeer polls bfdd until cond holds for the session with addr, and returns that view.
func (d *bfdd) waitPeer(t testing.TB, addr string, timeout time.Duration, what string, cond func(frrPeer) bool) frrPeer {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last frrPeer
	var err error
	for time.Now().Before(deadline) {
		last, err = d.peer(addr)
		if err == nil && cond(last) {
			return last
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("bfdd peer %s: not %s within %v: last %+v, %v", addr, what, timeout, last, errors.Join(err))
	return last
}
