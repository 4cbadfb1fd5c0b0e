package bfd

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/ironlb/ironlb/e2etest/lab"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// running is a Manager serving inside a test namespace, with its events, log lines and metrics
// recorded.
type running struct {
	*Manager
	reg *prometheus.Registry

	mu     sync.Mutex
	events []Event
	logs   []string
}

// runManager starts a Manager whose sockets live in host's namespace; it stops when the test
// ends.
func runManager(t *testing.T, host *lab.Host) *running {
	t.Helper()
	r := &running{reg: prometheus.NewRegistry()}
	logger := funcr.New(func(prefix, args string) {
		line := prefix + " " + args
		r.mu.Lock()
		r.logs = append(r.logs, line)
		r.mu.Unlock()
	}, funcr.Options{Verbosity: 1})
	r.Manager = New(Options{Logger: logger.WithName(host.Name), Registerer: r.reg, InNetNS: host.Do})
	events, cancelSub := r.Subscribe()
	subDone := make(chan struct{})
	go func() {
		defer close(subDone)
		for e := range events {
			r.mu.Lock()
			r.events = append(r.events, e)
			r.mu.Unlock()
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("Start: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("Manager in %s did not stop within 30s", host.Name)
		}
		cancelSub()
		<-subDone
		if t.Failed() {
			r.mu.Lock()
			t.Logf("log of the Manager in %s:\n%s", host.Name, strings.Join(r.logs, "\n"))
			r.mu.Unlock()
		}
	})
	return r
}

// mark is a position in the recorded events and logs; waits look only at what came after it.
type mark struct{ events, logs int }

func (r *running) mark() mark {
	r.mu.Lock()
	defer r.mu.Unlock()
	return mark{len(r.events), len(r.logs)}
}

// setPeers calls SetPeers and fails the test on error.
func (r *running) setPeers(t testing.TB, peers ...Peer) {
	t.Helper()
	if err := r.SetPeers(peers); err != nil {
		t.Fatal(err)
	}
}

// waitEvent waits for an event of peer reaching state after m and returns it.
func (r *running) waitEvent(t testing.TB, m mark, peer netip.Addr, state State, timeout time.Duration) Event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r.mu.Lock()
		for _, e := range r.events[m.events:] {
			if e.Peer == peer && e.State == state {
				r.mu.Unlock()
				return e
			}
		}
		seen := fmt.Sprint(r.events[m.events:])
		r.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no %s event for %s within %v; events since: %s", state, peer, timeout, seen)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eventsSince returns the events of peer after m.
func (r *running) eventsSince(m mark, peer netip.Addr) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Event
	for _, e := range r.events[m.events:] {
		if e.Peer == peer {
			out = append(out, e)
		}
	}
	return out
}

// waitLog waits for a log line after m containing every one of parts.
func (r *running) waitLog(t testing.TB, m mark, timeout time.Duration, parts ...string) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r.mu.Lock()
		for _, l := range r.logs[m.logs:] {
			ok := true
			for _, p := range parts {
				ok = ok && strings.Contains(l, p)
			}
			if ok {
				r.mu.Unlock()
				return l
			}
		}
		r.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("no log line with %q within %v", parts, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metric returns the sum of the series of metric name that carry every one of the label values.
func (r *running) metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !hasLabelValues(m, labels) {
				continue
			}
			switch {
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func hasLabelValues(m *dto.Metric, values []string) bool {
	for _, v := range values {
		found := false
		for _, l := range m.GetLabel() {
			found = found || l.GetValue() == v
		}
		if !found {
			return false
		}
	}
	return true
}
