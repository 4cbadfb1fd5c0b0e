package bgpannounce

import (
	"context"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ironlb/ironlb/e2etest/lab"
	"github.com/ironlb/ironlb/internal/testenv"
	"github.com/ironlb/ironlb/speaker/bfd"
)

// TestOnDemandBFD runs in a lab node's namespace (root only): no manager, so no port 3784,
// until peers are set; with the port taken, SetPeers says why and the speaker goes on; once
// the port is free a new manager runs and takes the peers.
//
// IP plan: the lab's node1 192.168.50.11, its peer the router 192.168.50.1 (no BFD there:
// the session stays Down, which is all this test needs).
func TestOnDemandBFD(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs BFD in a network namespace")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l, err := lab.Start(ctx, lab.Config{Prefix: "ilb-odbfd", Nodes: 1, PodsPerNode: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := l.Close(); err != nil {
			t.Errorf("close the lab: %v", err)
		}
	}()
	node := l.Nodes[0]
	inNode := func(fn func() error) error { return node.Do(fn) }
	bound := func() bool {
		var free bool
		_ = node.Do(func() error {
			c, err := net.ListenPacket("udp4", "0.0.0.0:3784")
			if err == nil {
				free = true
				c.Close()
			}
			return nil
		})
		return !free
	}

	o := &OnDemandBFD{New: func() *bfd.Manager { return bfd.New(bfd.Options{InNetNS: inNode}) }, RetryMax: 500 * time.Millisecond}
	done := make(chan error, 1)
	go func() { done <- o.Start(ctx) }()
	peer := bfd.Peer{Remote: netip.MustParseAddr("192.168.50.1"), Local: node.IPv4, Interface: "eth0"}

	if err := o.SetPeers(nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // not synchronisation: time for a wrongly started manager to show
	if bound() {
		t.Fatal("port 3784 is bound although no BFD peer was set")
	}
	var blocker net.PacketConn
	if err := node.Do(func() (err error) { blocker, err = net.ListenPacket("udp4", "0.0.0.0:3784"); return err }); err != nil {
		t.Fatal(err)
	}
	if err := o.SetPeers([]bfd.Peer{peer}); err != nil {
		t.Fatal(err) // recorded; the manager starts in the background
	}
	testenv.Eventually(t, 10*time.Second, "SetPeers says BFD cannot run", func() (bool, string) {
		err := o.SetPeers([]bfd.Peer{peer})
		return err != nil && strings.Contains(err.Error(), "address already in use"), "SetPeers error: " + errString(err)
	})
	blocker.Close()
	testenv.Eventually(t, 10*time.Second, "a new manager runs and holds the port", func() (bool, string) {
		err := o.SetPeers([]bfd.Peer{peer})
		return err == nil && bound(), "SetPeers error: " + errString(err)
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Start returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("OnDemandBFD did not stop")
	}
}

func errString(err error) string {
	if err == nil {
		return "none"
	}
	return err.Error()
}
