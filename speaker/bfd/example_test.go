package bfd_test

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/ironlb/ironlb/speaker/bfd"
	"github.com/prometheus/client_golang/prometheus"
)

// A BGP speaker runs one Manager, gives it a peer for every BGP neighbour with a BFD profile,
// and takes a neighbour's BGP session down when its BFD session goes Down for a reason other
// than the router disabling BFD.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := bfd.New(bfd.Options{Registerer: prometheus.NewRegistry()})
	go func() { _ = m.Start(ctx) }()

	router := netip.MustParseAddr("192.168.50.1")
	events, stop := m.Subscribe() // before reading State, so no change falls in between
	defer stop()
	err := m.SetPeers([]bfd.Peer{{
		Remote:  router,
		Profile: bfd.Profile{ReceiveInterval: 300 * time.Millisecond, TransmitInterval: 300 * time.Millisecond, DetectMultiplier: 3},
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("now:", m.State(router))
	for e := range events {
		if e.State == bfd.Down && e.Previous == bfd.Up && e.RemoteState != bfd.AdminDown {
			fmt.Printf("BFD to %s down (%s): shut the BGP session\n", e.Peer, e.Diag)
		}
	}
}
