// Command demo is `make demo`: the seeds' story on one machine (see package demo). With --keep
// it tells the story in a background process that keeps the lab running and returns the
// terminal; --down (`make demo-down`) stops that process and removes what a killed demo left.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"

	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/ironlb/ironlb/e2etest/demo"
)

// ready is the line the background demo sends when the story is told: the foreground half
// stops relaying there, without printing it.
const ready = "\x00ironlb-demo-ready"

func main() {
	keep := flag.Bool("keep", false, "leave the lab running in the background after the story, and print how to use it (make demo-down removes it)")
	down := flag.Bool("down", false, "stop a demo left running with --keep and remove what a killed demo left behind, then exit")
	kept := flag.Bool("kept", false, "internal: the background half of --keep, telling the story on file descriptor 3")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch {
	case *down:
		err = demo.Down(ctx, os.Stdout)
	case *keep:
		err = detach(ctx)
	case *kept:
		err = background(ctx)
	default:
		// The story is the output; the components log only errors.
		ctrl.SetLogger(zap.New(zap.Level(zapcore.ErrorLevel)))
		err = demo.Run(ctx, demo.Options{}, os.Stdout)
	}
	switch {
	case err != nil && ctx.Err() != nil:
		fmt.Fprintln(os.Stderr, "demo: interrupted")
		os.Exit(130)
	case err != nil:
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// detach starts this program again with --kept in a session of its own (Ctrl-C in this
// terminal no longer reaches it) and relays the story it tells until it is ready. Interrupted
// before that, it stops the background demo, which cleans up.
func detach(ctx context.Context) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	cmd := exec.Command(self, "--kept")
	// The story goes to descriptor 3, not 1 or 2: once this half is gone, a write to a closed
	// pipe there is an error the demo ignores, where on 1 or 2 it would kill it (SIGPIPE).
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return fmt.Errorf("start the background demo: %w", err)
	}
	w.Close()
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGTERM)
		case <-stopped:
		}
	}()
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if sc.Text() == ready {
			return cmd.Process.Release()
		}
		fmt.Println(sc.Text())
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("the background demo stopped: %w", err)
	}
	return errors.New("the background demo stopped before the story was told")
}

// background is the --kept half: the story and the controller's errors go to descriptor 3
// until the lab is ready, then to the demo's log.
func background(ctx context.Context) error {
	out := &switchWriter{w: os.NewFile(3, "story")}
	ctrl.SetLogger(zap.New(zap.WriteTo(out), zap.Level(zapcore.ErrorLevel)))
	told := func() {
		fmt.Fprintln(out, ready)
		if log, err := os.OpenFile(demo.LogFile(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
			out.switchTo(log)
		} else {
			out.switchTo(nil)
		}
	}
	err := demo.Run(ctx, demo.Options{Keep: true, Told: told}, out)
	if err != nil {
		fmt.Fprintln(out, "demo:", err)
	}
	return err
}

// switchWriter writes to w until switchTo replaces it (closing the old one); nil discards.
type switchWriter struct {
	mu sync.Mutex
	w  io.WriteCloser
}

func (s *switchWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		return len(p), nil
	}
	// The reader may be gone (the foreground half was killed): the story goes on regardless.
	_, _ = s.w.Write(p)
	return len(p), nil
}

func (s *switchWriter) switchTo(w io.WriteCloser) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w != nil {
		_ = s.w.Close()
	}
	s.w = w
}
