package ifaces_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/ironlb/ironlb/e2etest/lab"
	"github.com/ironlb/ironlb/speaker/ifaces"
)

// TestWatch runs Watch inside a lab node's namespace and expects it to report a link being
// (a veth pair; dummy links need a module CI may lack) created there, brought up and taken down (all inside the lab namespace, never the root one).
func TestWatch(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
	ctx := context.Background()
	l, err := lab.Start(ctx, lab.Config{Prefix: "ilbt-watch", Nodes: 1, PodsPerNode: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	n := l.Nodes[0]

	events := make(chan struct{}, 1)
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- n.Do(func() error {
			return ifaces.Watch(wctx, func() {
				select {
				case events <- struct{}{}:
				default:
				}
			})
		})
	}()
	// Watch subscribes asynchronously; poke until the first event shows it listens.
	deadline := time.After(10 * time.Second)
	for _, step := range [][]string{
		{"ip", "link", "add", "wv0", "type", "veth", "peer", "name", "wv1"},
		{"ip", "link", "set", "wv0", "up"},
		{"ip", "link", "set", "wv0", "down"},
	} {
		for got := false; !got; {
			if _, err := n.Exec(ctx, step...); err != nil && step[2] == "add" {
				// "add" fails once the link exists: an earlier attempt went through.
			} else if err != nil {
				t.Fatalf("%v: %v", step, err)
			}
			select {
			case <-events:
				got = true
			case <-time.After(200 * time.Millisecond):
				if step[2] != "add" {
					t.Fatalf("no event for %v", step)
				}
			case <-deadline:
				t.Fatalf("no event for %v within 10s", step)
			}
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Watch: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Watch did not return after its context ended")
	}
}
