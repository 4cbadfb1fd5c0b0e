package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ironlb/ironlb/e2etest/cluster"
	"github.com/ironlb/ironlb/e2etest/lab"
)

// WorkDir holds everything a demo run writes: the binaries it builds (bin/), the kubeconfig,
// the components' log and the state file. Its name is fixed, like the namespaces', so a run
// finds and removes what a killed one left.
func WorkDir() string { return filepath.Join(os.TempDir(), "ironlb-demo") }

// LogFile receives the speakers' and the router's output, and with --keep the demo's own
// once the story is told.
func LogFile() string { return filepath.Join(WorkDir(), "demo.log") }

func stateFile() string { return filepath.Join(WorkDir(), "state.json") }

// state tells a later run (or `make demo-down`) which process runs the demo and which
// directories its control plane uses: etcd and kube-apiserver outlive a demo killed with
// SIGKILL, and their command lines name those directories.
type state struct {
	PID int `json:"pid"`
	// Cmdline is /proc/PID/cmdline when the demo wrote the file: a process with the same pid
	// and another command line is not the demo.
	Cmdline string   `json:"cmdline"`
	Dirs    []string `json:"dirs,omitempty"`
}

func readState() (state, error) {
	var st state
	b, err := os.ReadFile(stateFile())
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("read %s: %w", stateFile(), err)
	}
	return st, nil
}

func (st state) write() error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return os.WriteFile(stateFile(), b, 0o600)
}

// running reports whether the demo that wrote st still runs.
func (st state) running() bool {
	if st.PID <= 0 || st.PID == os.Getpid() {
		return false
	}
	cmd, err := cmdline(st.PID)
	return err == nil && cmd == st.Cmdline && alive(st.PID)
}

func cmdline(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return string(b), err
}

// alive reports whether pid runs (a zombie does not).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || (b[i+2] != 'Z' && b[i+2] != 'X')
}

// begin prepares a run: it refuses to start beside a running demo, removes what a killed one
// left, and records this process in a new WorkDir.
func begin(ctx context.Context) (state, error) {
	old, err := readState()
	if err == nil && old.running() {
		return old, fmt.Errorf("a demo is already running (pid %d, kept with --keep?): `sudo make demo-down` stops it", old.PID)
	}
	if _, err := cleanUp(ctx, old); err != nil {
		return old, fmt.Errorf("remove what an earlier demo left: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(WorkDir(), "bin"), 0o755); err != nil {
		return old, err
	}
	self, err := cmdline(os.Getpid())
	if err != nil {
		return old, err
	}
	st := state{PID: os.Getpid(), Cmdline: self}
	return st, st.write()
}

// cleanUp removes everything of a demo that no longer runs: its namespaces (and the processes
// in them), processes naming its directories (etcd and kube-apiserver of a killed demo), the
// router's files, the directories. It returns what it found.
func cleanUp(ctx context.Context, st state) ([]string, error) {
	var found []string
	names, err := lab.Namespaces(ctx, Prefix)
	if err != nil {
		return nil, err
	}
	if len(names) > 0 {
		found = append(found, fmt.Sprintf("%d network namespaces (%s)", len(names), strings.Join(names, " ")))
	}
	errs := []error{lab.Remove(ctx, Prefix)}
	// Only the control plane's directories are random enough to kill by: a user's `tail -f` of
	// the log names WorkDir too. The speakers and FRR died with their namespaces.
	procs := processesNaming(st.Dirs)
	for _, pid := range procs {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("kill pid %d: %w", pid, err))
		}
	}
	if len(procs) > 0 {
		found = append(found, fmt.Sprintf("%d processes (pids %v)", len(procs), procs))
	}
	for deadline := time.Now().Add(10 * time.Second); len(processesNaming(st.Dirs)) > 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	cluster.RemoveFRRLeftovers(Prefix)
	for _, d := range demoDirs(st.Dirs) {
		if _, err := os.Stat(d); err == nil {
			found = append(found, d)
			errs = append(errs, os.RemoveAll(d))
		}
	}
	return found, errors.Join(errs...)
}

// demoDirs are the directories of a demo: WorkDir, the router's, and the control plane's.
func demoDirs(controlPlane []string) []string {
	return append([]string{WorkDir(), cluster.FRRDir(Prefix)}, controlPlane...)
}

// processesNaming lists the processes, other than this one, whose command line names one of
// dirs or a path inside it.
func processesNaming(dirs []string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() || !alive(pid) {
			continue
		}
		cmd, err := cmdline(pid)
		if err != nil {
			continue
		}
		if slices.ContainsFunc(dirs, func(d string) bool { return names(cmd, d) }) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// names reports whether the NUL-separated command line holds path p itself or a path below
// it ("/tmp/ironlb-demo/bin/speaker" names /tmp/ironlb-demo; "/tmp/ironlb-demo-2" does not).
func names(cmd, p string) bool {
	for rest := cmd; ; {
		i := strings.Index(rest, p)
		if i < 0 {
			return false
		}
		rest = rest[i+len(p):]
		if rest == "" || rest[0] == '/' || rest[0] == 0 {
			return true
		}
	}
}

// Leftovers lists what a finished demo left behind: namespaces, processes or directories.
// controlPlane are the control plane's directories (testenv.Env.Dirs).
func Leftovers(ctx context.Context, controlPlane []string) ([]string, error) {
	var left []string
	names, err := lab.Namespaces(ctx, Prefix)
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		left = append(left, "network namespace "+n)
	}
	dirs := demoDirs(controlPlane)
	for _, pid := range processesNaming(dirs) {
		cmd, _ := cmdline(pid)
		left = append(left, fmt.Sprintf("process %d: %s", pid, strings.ReplaceAll(strings.TrimRight(cmd, "\x00"), "\x00", " ")))
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); err == nil {
			left = append(left, "directory "+d)
		}
	}
	return left, nil
}

// Down stops a demo kept running with --keep (SIGTERM: it cleans up after itself, as at the end
// of the story) and removes whatever a killed demo left behind, saying what it did on out.
func Down(ctx context.Context, out io.Writer) error {
	st, err := readState()
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if st.running() {
		fmt.Fprintf(out, "Stopping the demo (pid %d)...\n", st.PID)
		if err := syscall.Kill(st.PID, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("stop the demo (pid %d): %w", st.PID, err)
		}
		// It stops the controller, FRR, the speakers and the control plane; a minute is plenty.
		deadline := time.Now().Add(time.Minute)
		for st.running() && time.Now().Before(deadline) && ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond)
		}
		if st.running() {
			fmt.Fprintf(out, "The demo did not stop within a minute: killing it\n")
			_ = syscall.Kill(st.PID, syscall.SIGKILL)
		}
	}
	found, err := cleanUp(ctx, st)
	for _, f := range found {
		fmt.Fprintf(out, "Removed %s\n", f)
	}
	if err != nil {
		return err
	}
	left, err := Leftovers(ctx, st.Dirs)
	if err != nil {
		return err
	}
	if len(left) > 0 {
		return fmt.Errorf("still there: %s", strings.Join(left, "; "))
	}
	fmt.Fprintf(out, "Nothing of the demo is left: no %s-* network namespace, no process, no %s\n", Prefix, WorkDir())
	return nil
}
