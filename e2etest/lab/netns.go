package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// Do runs fn on an OS thread that has been moved into the host's network namespace, so the
// sockets fn opens (listeners, connections, packet sockets) live there and keep working from
// any goroutine afterwards. fn runs on a goroutine of its own, locked to its thread, which is
// never the process's main thread; goroutines that fn starts run in the test process's own
// namespace. A panic in fn is raised again in the caller, and runtime.Goexit in fn (t.FailNow)
// ends the caller's goroutine too, as if fn had run there. Do returns fn's error.
//
// If the thread cannot be switched back, its goroutine exits still locked, and the runtime
// ends the thread instead of handing it to other goroutines in the wrong namespace.
func (h *Host) Do(fn func() error) error {
	done := make(chan doResult, 1)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() != unix.Getpid() {
			h.do(fn, done)
			return
		}
		// This is the main thread. `ip netns pids`, and so Lab.Close, finds a process by its
		// main thread's namespace, and the runtime cannot end the main thread when a switch
		// back fails. Holding it here makes the worker below start on another thread.
		locked := make(chan struct{})
		go func() {
			runtime.LockOSThread()
			close(locked)
			h.do(fn, done)
		}()
		<-locked
		runtime.UnlockOSThread()
	}()
	r := <-done
	if r.goexit {
		runtime.Goexit()
	}
	if r.panicked {
		panic(r.value)
	}
	return r.err
}

type doResult struct {
	err      error
	panicked bool
	value    any // of the panic
	goexit   bool
}

// do is Do's worker; it runs on a goroutine locked once to a thread other than the main
// thread, and unlocks it only when the thread is back in its own namespace.
func (h *Host) do(fn func() error, done chan<- doResult) {
	var r doResult
	defer func() { done <- r }()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		r.err = fmt.Errorf("open own network namespace: %w", err)
		return
	}
	defer orig.Close()
	target, err := os.Open("/run/netns/" + h.Name)
	if err != nil {
		runtime.UnlockOSThread()
		r.err = fmt.Errorf("open netns %s: %w", h.Name, err)
		return
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		r.err = fmt.Errorf("enter netns %s: %w", h.Name, err)
		return
	}
	// Deferred so it runs on runtime.Goexit too, which unwinds past call.
	defer func() {
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			r.err = errors.Join(r.err, fmt.Errorf("leave netns %s: %w", h.Name, err))
			return // still locked: the thread ends with this goroutine
		}
		runtime.UnlockOSThread()
	}()
	r.goexit = true
	r.err, r.panicked, r.value = call(fn)
	r.goexit = false
}

// call runs fn and turns a panic into a value, so Do can switch the thread back first.
func call(fn func() error) (err error, panicked bool, value any) {
	panicked = true
	defer func() {
		if panicked {
			value = recover()
		}
	}()
	err = fn()
	panicked = false
	return err, false, nil
}

// Forward listens on the TCP address listen (such as "127.0.0.1:6443", or "127.0.0.1:0" for
// any free port) inside the host's namespace and connects every accepted connection to target,
// dialled from the namespace of the test process. Each direction is copied until EOF and then
// half-closed, so request/response protocols that shut down their write side work. It returns
// the listener's address.
//
// This is how processes inside a node (started with Host.Start) reach a server of the test,
// such as an envtest kube-apiserver on 127.0.0.1 of the root namespace: they talk to the node's
// own loopback, and the root namespace gets no address, route or firewall rule for it.
//
// Forwarding stops, closing the listener and every forwarded connection, when ctx ends or the
// lab is closed, whichever comes first.
func (h *Host) Forward(ctx context.Context, listen string, target string) (net.Addr, error) {
	var ln net.Listener
	err := h.Do(func() error {
		var err error
		ln, err = new(net.ListenConfig).Listen(ctx, "tcp", listen)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("forward %s in netns %s to %s: %w", listen, h.Name, target, err)
	}
	fctx, cancel := context.WithCancel(ctx)
	f := &forwarder{ln: ln, target: target, cancel: cancel, conns: map[net.Conn]struct{}{}, lab: h.lab}
	if l := h.lab; l != nil {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			cancel()
			_ = ln.Close()
			return nil, fmt.Errorf("forward %s in netns %s to %s: lab is closed", listen, h.Name, target)
		}
		if l.forwards == nil {
			l.forwards = map[*forwarder]struct{}{}
		}
		l.forwards[f] = struct{}{}
		l.mu.Unlock()
	}
	f.wg.Add(2)
	go f.accept(fctx)
	go f.stopOnDone(fctx)
	return ln.Addr(), nil
}

// forwarder is one Forward: a listener in a lab namespace and the connections it proxies.
type forwarder struct {
	ln     net.Listener
	target string
	cancel context.CancelFunc
	lab    *Lab // nil for a Host made outside Start
	wg     sync.WaitGroup

	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	stopped bool
}

// stop ends forwarding and waits until every socket is closed. An open socket holds its network
// namespace alive, so Lab.Close calls this before it deletes the namespaces.
func (f *forwarder) stop() {
	f.cancel()
	f.wg.Wait()
}

func (f *forwarder) stopOnDone(ctx context.Context) {
	defer f.wg.Done()
	<-ctx.Done()
	_ = f.ln.Close()
	f.mu.Lock()
	f.stopped = true
	for c := range f.conns {
		_ = c.Close()
	}
	f.mu.Unlock()
	if f.lab != nil {
		f.lab.mu.Lock()
		delete(f.lab.forwards, f)
		f.lab.mu.Unlock()
	}
}

func (f *forwarder) accept(ctx context.Context) {
	defer f.wg.Done()
	// A broken listener ends the forwarder rather than spinning on Accept.
	defer f.cancel()
	var dialer net.Dialer
	for {
		in, err := f.ln.Accept()
		if err != nil {
			return
		}
		if !f.track(in) {
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer f.untrack(in)
			// This goroutine is not locked to a thread, so it dials from the process's namespace.
			out, err := dialer.DialContext(ctx, "tcp", f.target)
			if err != nil {
				return // the client sees its connection closed
			}
			if !f.track(out) {
				return
			}
			defer f.untrack(out)
			proxy(in, out)
		}()
	}
}

// track registers a live connection so stop can close it; after stop it closes c instead.
func (f *forwarder) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		_ = c.Close()
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *forwarder) untrack(c net.Conn) {
	_ = c.Close()
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
}

// proxy copies both directions of a and b until both have ended.
func proxy(a, b net.Conn) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); pipe(b, a) }()
	go func() { defer wg.Done(); pipe(a, b) }()
	wg.Wait()
}

// pipe copies src to dst. At EOF it half-closes dst so the peer sees EOF too while the other
// direction keeps flowing; on an error (reset, or stop closing the sockets) it closes both,
// which also ends the other direction.
func pipe(dst, src net.Conn) {
	if _, err := io.Copy(dst, src); err != nil {
		_ = dst.Close()
		_ = src.Close()
		return
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}
