package doctor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/packet"
)

const etherTypeARP = 0x0806

// ARPProber returns the Prober that asks from this machine with raw ARP packets; it needs
// CAP_NET_RAW.
func ARPProber() Prober { return arpProber{} }

type arpProber struct{}

// Probe opens one ARP socket per interface, sends requests for the interface's VIPs three times
// over the first half of the window (a lost request must not look like a missing answerer) and
// collects replies until the window ends. Sockets bound to the ARP EtherType see only incoming
// packets, so this node's own replies are never heard (see checkDuplicateARP).
func (arpProber) Probe(ctx context.Context, probes []Probe, window time.Duration) []Answers {
	out := make([][]Answers, len(probes))
	var wg sync.WaitGroup
	for i, p := range probes {
		wg.Go(func() { out[i] = probeIface(ctx, p, window) })
	}
	wg.Wait()
	return slices.Concat(out...)
}

func probeIface(ctx context.Context, p Probe, window time.Duration) []Answers {
	fail := func(err error) []Answers {
		msg := err.Error()
		if errors.Is(err, os.ErrPermission) {
			msg += " (raw sockets need CAP_NET_RAW: run as root on the node, or in the speaker pod)"
		}
		res := make([]Answers, len(p.VIPs))
		for i, ip := range p.VIPs {
			res[i] = Answers{VIP: ip, Iface: p.Iface, Err: msg}
		}
		return res
	}
	ifi, err := net.InterfaceByName(p.Iface)
	if err != nil {
		return fail(fmt.Errorf("look up interface %s: %w", p.Iface, err))
	}
	// Not arp.Dial: it leaks its socket when the interface has no IPv4 address.
	conn, err := packet.Listen(ifi, packet.Raw, etherTypeARP, nil)
	if err != nil {
		return fail(fmt.Errorf("open ARP socket on %s: %w", p.Iface, err))
	}
	c, err := arp.New(ifi, conn)
	if err != nil {
		_ = conn.Close()
		return fail(fmt.Errorf("open ARP client on %s: %w", p.Iface, err))
	}
	defer c.Close()
	end := time.Now().Add(window)
	if d, ok := ctx.Deadline(); ok && d.Before(end) {
		end = d
	}
	_ = c.SetReadDeadline(end)

	var mu sync.Mutex
	seen := map[netip.Addr][]net.HardwareAddr{}
	want := map[netip.Addr]bool{}
	for _, ip := range p.VIPs {
		want[ip] = true
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			pkt, _, err := c.Read()
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					return
				}
				if time.Now().After(end) {
					return
				}
				continue // a malformed frame
			}
			ip := pkt.SenderIP.Unmap()
			if pkt.Operation != arp.OperationReply || !want[ip] {
				continue
			}
			mu.Lock()
			if !slices.ContainsFunc(seen[ip], func(m net.HardwareAddr) bool { return bytes.Equal(m, pkt.SenderHardwareAddr) }) {
				seen[ip] = append(seen[ip], slices.Clone(pkt.SenderHardwareAddr))
			}
			mu.Unlock()
		}
	})
	var sendErr error
	for round := range 3 {
		for _, ip := range p.VIPs {
			if err := c.Request(ip); err != nil && sendErr == nil {
				sendErr = fmt.Errorf("send ARP request for %s on %s: %w", ip, p.Iface, err)
			}
		}
		if round < 2 {
			select {
			case <-ctx.Done():
			case <-time.After(window / 6):
			}
		}
	}
	wg.Wait()
	if sendErr != nil {
		return fail(sendErr)
	}
	res := make([]Answers, len(p.VIPs))
	for i, ip := range p.VIPs {
		res[i] = Answers{VIP: ip, Iface: p.Iface, MACs: seen[ip]}
	}
	return res
}
