package app_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"

	"github.com/ironlb/ironlb/internal/testenv"
	"github.com/ironlb/ironlb/speaker/app"
	"github.com/ironlb/ironlb/speaker/ifaces"
	"github.com/ironlb/ironlb/speaker/l2announce"
)

// stopResponder is a responder that records whether its VIPs were dropped while it was still
// running (before the speaker stopped its announcer), and that can refuse to stop.
type stopResponder struct {
	hang bool // Start ignores its context, as a responder stuck in a syscall would

	mu             sync.Mutex
	owned          []netip.Addr
	running        bool
	droppedRunning bool // SetOwned(nothing) arrived while Start ran
	announcedAfter int  // Announce calls after the drop
}

func (f *stopResponder) Start(ctx context.Context) error {
	f.mu.Lock()
	f.running = true
	f.mu.Unlock()
	if f.hang {
		select {} // never returns; the test process ends it
	}
	<-ctx.Done()
	f.mu.Lock()
	f.running = false
	f.mu.Unlock()
	return nil
}

func (f *stopResponder) SetOwned(ips []netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(ips) == 0 && len(f.owned) > 0 && f.running {
		f.droppedRunning = true
	}
	f.owned = slices.Clone(ips)
}

func (f *stopResponder) Announce(netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.droppedRunning {
		f.announcedAfter++
	}
	return nil
}

func (f *stopResponder) state() (owned []netip.Addr, droppedRunning bool, announcedAfter int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.owned), f.droppedRunning, f.announcedAfter
}

// runStopping starts a speaker owning the VIP on eth0 and returns it with its responder, the
// cancel that stands for SIGTERM and Run's result.
func runStopping(t *testing.T, ns, node string, r *stopResponder, timeout time.Duration, log logr.Logger) (context.CancelFunc, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- app.Run(ctx, app.Config{
			NodeName: node, Namespace: ns, MetricsAddr: "0", ProbeAddr: "0",
			Registry: prometheus.NewRegistry(), InProcessInstances: true,
			Members: newMembers(node), DisableBGP: true, StartupGrace: time.Millisecond,
			Links: fakeLinks{{Name: "eth0", Index: 2, Up: true}},
			NewResponder: func(ifaces.Link) (l2announce.Responder, error) {
				return r, nil
			},
			ShutdownTimeout: timeout,
			Log:             log,
		}, env.Config)
	}()
	t.Cleanup(cancel)
	testenv.Eventually(t, 20*time.Second, "the speaker answers for the VIP", func() (bool, string) {
		owned, _, _ := r.state()
		return slices.Contains(owned, netip.MustParseAddr(vip)), fmt.Sprintf("owned %v", owned)
	})
	return cancel, done
}

// TestStopSilencesFirst: on SIGTERM the speaker stops answering for its VIPs before it stops
// anything else (the responder is still running when it is told to drop them), announces
// nothing more, and Run returns.
func TestStopSilencesFirst(t *testing.T) {
	ns, err := env.Namespace(context.Background(), "stop")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := setup(t, ns, corev1.ServiceExternalTrafficPolicyCluster)
	r := &stopResponder{}
	stop, done := runStopping(t, ns, a, r, 10*time.Second, logr.Discard())
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after the stop: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30s of the stop")
	}
	owned, droppedRunning, after := r.state()
	if len(owned) != 0 || !droppedRunning {
		t.Errorf("responder owns %v at the end, VIPs dropped while it still ran: %v; want nothing owned, dropped first", owned, droppedRunning)
	}
	if after != 0 {
		t.Errorf("%d announcements after the VIPs were dropped", after)
	}
}

// TestStopHangNamed: a part that does not stop makes Run return at the deadline with an error
// naming it, having silenced the responder first.
func TestStopHangNamed(t *testing.T) {
	ns, err := env.Namespace(context.Background(), "stophang")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := setup(t, ns, corev1.ServiceExternalTrafficPolicyCluster)
	r := &stopResponder{hang: true}
	stop, done := runStopping(t, ns, a, r, time.Second, logr.Discard())
	stop()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "still running") || !strings.Contains(err.Error(), "l2") {
			t.Errorf("Run after a hung stop: %v; want an error naming the l2 part", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30s of the stop, with a 1s shutdown timeout")
	}
	if owned, dropped, _ := r.state(); len(owned) != 0 || !dropped {
		t.Errorf("hung responder owns %v (dropped while running: %v); want it silenced first", owned, dropped)
	}
}

// blockingSink is a log sink whose writes block while blocked is set, as a speaker's writes to
// a stderr pipe that nobody drains do.
type blockingSink struct {
	mu      sync.Mutex
	blocked bool
	release chan struct{}
}

func (b *blockingSink) wait() {
	b.mu.Lock()
	blocked, release := b.blocked, b.release
	b.mu.Unlock()
	if blocked {
		<-release
	}
}

func (b *blockingSink) Init(logr.RuntimeInfo)          {}
func (b *blockingSink) Enabled(int) bool               { return true }
func (b *blockingSink) Info(int, string, ...any)       { b.wait() }
func (b *blockingSink) Error(error, string, ...any)    { b.wait() }
func (b *blockingSink) WithValues(...any) logr.LogSink { return b }
func (b *blockingSink) WithName(string) logr.LogSink   { return b }

// TestStopSilencesWhileLoggingBlocks: answering stops at SIGTERM even when every log write
// blocks (stderr a full pipe): the silence comes before the first log line of the stop.
func TestStopSilencesWhileLoggingBlocks(t *testing.T) {
	ns, err := env.Namespace(context.Background(), "stoplog")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := setup(t, ns, corev1.ServiceExternalTrafficPolicyCluster)
	r := &stopResponder{}
	sink := &blockingSink{release: make(chan struct{})}
	stop, done := runStopping(t, ns, a, r, 10*time.Second, logr.New(sink))
	sink.mu.Lock()
	sink.blocked = true
	sink.mu.Unlock()
	stop()
	testenv.Eventually(t, 10*time.Second, "the VIP dropped while logs block", func() (bool, string) {
		owned, _, _ := r.state()
		return len(owned) == 0, fmt.Sprintf("still answering for %v", owned)
	})
	close(sink.release)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after the stop: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30s of the logs unblocking")
	}
}
