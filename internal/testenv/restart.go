package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
)

// RestartAPIServer crashes the kube-apiserver (SIGKILL: connections and watches drop without a
// goodbye), keeps it down for down, and starts it again with the same flags, certificates and
// etcd, so the data survives as in a real restart. It returns once the new one is ready.
// envtest cannot restart its own process, so the replacement is this Env's to stop.
func (e *Env) RestartAPIServer(ctx context.Context, down time.Duration) error {
	pid, args, err := e.apiServerProcess()
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill kube-apiserver %d: %w", pid, err)
	}
	// Its listening port is free again once it is gone (envtest reaps it).
	for deadline := time.Now().Add(10 * time.Second); processAlive(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("kube-apiserver %d did not exit", pid)
		}
	}
	select {
	case <-time.After(down):
	case <-ctx.Done():
		return ctx.Err()
	}
	cmd := exec.Command(args[0], args[1:]...)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start kube-apiserver again: %w", err)
	}
	e.restarted = append(e.restarted, cmd)
	cs, err := kubernetes.NewForConfig(e.Config)
	if err != nil {
		return err
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil && bytes.Equal(bytes.TrimSpace(body), []byte("ok")) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kube-apiserver not ready 60s after its restart: %v", err)
		}
	}
}

// apiServerProcess finds this process's kube-apiserver child serving Config.Host, and its
// command line.
func (e *Env) apiServerProcess() (int, []string, error) {
	u, err := url.Parse(e.Config.Host)
	if err != nil {
		return 0, nil, err
	}
	port := "--secure-port=" + u.Port()
	stats, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range stats {
		raw, err := os.ReadFile(f)
		if err != nil || len(raw) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		if filepath.Base(args[0]) != "kube-apiserver" || !containsArg(args, port) {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(f)))
		if err != nil {
			continue
		}
		return pid, args, nil
	}
	return 0, nil, errors.New("no kube-apiserver process with " + port)
}

func containsArg(args []string, want string) bool {
	for _, a := range args {
		if a == want {
			return true
		}
	}
	return false
}

// processAlive reports whether pid runs (a zombie waiting to be reaped does not).
func processAlive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] != 'Z'
}
