package cluster

import (
	"errors"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"

	"github.com/ironlb/ironlb/e2etest/lab"
)

// ARPWatch stands on the client's eth0 with a packet socket: it asks for the VIP every
// interval and timestamps every ARP packet whose sender is the VIP — the answers to its
// requests and the gratuitous announcements. It measures failover from the LAN's side.
type ARPWatch struct {
	c    *arp.Client
	vip  netip.Addr
	stop chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	events   []arpEvent
	requests []time.Time // when each request was sent, ascending
}

type arpEvent struct {
	at         time.Time
	mac        string // lower case
	gratuitous bool   // an announcement (target = VIP), not an answer to us
}

// WatchARP starts a watch for vip from host; Close stops it.
func WatchARP(host *lab.Host, vip netip.Addr, interval time.Duration) (*ARPWatch, error) {
	w := &ARPWatch{vip: vip, stop: make(chan struct{})}
	err := host.Do(func() error {
		ifi, err := net.InterfaceByName(host.Iface)
		if err != nil {
			return err
		}
		w.c, err = arp.Dial(ifi) // the socket stays in host's namespace
		return err
	})
	if err != nil {
		return nil, err
	}
	w.wg.Add(2)
	go w.read()
	go func() {
		defer w.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			w.mu.Lock()
			w.requests = append(w.requests, time.Now())
			w.mu.Unlock()
			_ = w.c.Request(vip)
			select {
			case <-w.stop:
				return
			case <-t.C:
			}
		}
	}()
	return w, nil
}

func (w *ARPWatch) read() {
	defer w.wg.Done()
	for {
		_ = w.c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		p, _, err := w.c.Read()
		at := time.Now()
		select {
		case <-w.stop:
			return
		default:
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if strings.Contains(err.Error(), "closed") {
				return
			}
			continue // not an ARP packet we can parse
		}
		if p.SenderIP != w.vip {
			continue
		}
		w.mu.Lock()
		w.events = append(w.events, arpEvent{at: at, mac: strings.ToLower(p.SenderHardwareAddr.String()), gratuitous: p.TargetIP == w.vip})
		w.mu.Unlock()
	}
}

// First returns the time of the first event after since from a MAC other than notMAC ("" for
// any) of the kind asked for.
func (w *ARPWatch) First(since time.Time, gratuitous bool, mac, notMAC string) (time.Time, string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, e := range w.events {
		if e.at.Before(since) || e.gratuitous != gratuitous || (mac != "" && e.mac != mac) || (notMAC != "" && e.mac == notMAC) {
			continue
		}
		return e.at, e.mac, true
	}
	return time.Time{}, "", false
}

// Answers groups the answers to the requests sent in [from, to): for each request, the set
// of MACs that answered it (an answer belongs to the last request sent before it).
func (w *ARPWatch) Answers(from, to time.Time) []map[string]bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []map[string]bool
	first := -1
	for i, r := range w.requests {
		if !r.Before(from) && r.Before(to) {
			if first < 0 {
				first = i
			}
			out = append(out, map[string]bool{})
		}
	}
	if first < 0 {
		return nil
	}
	for _, e := range w.events {
		if e.gratuitous {
			continue
		}
		// The request this answers: the last one sent before it.
		i := sort.Search(len(w.requests), func(i int) bool { return w.requests[i].After(e.at) }) - 1
		if i >= first && i-first < len(out) {
			out[i-first][e.mac] = true
		}
	}
	return out
}

func (w *ARPWatch) Close() {
	close(w.stop)
	w.wg.Wait()
	w.c.Close()
}

// FloodARP sends ARP requests from host for addresses nobody owns (192.168.50.100-199, outside
// the lab's hosts and VIPs), up to rate per second for d, and counts the answers (any ARP
// reply whose sender is one of those addresses). Frames are built once and written raw: the
// point is the speakers' load, not the sender's.
func FloodARP(host *lab.Host, d time.Duration, rate int) (sent, answered int, err error) {
	var c *arp.Client
	var raw *packet.Conn
	var ifi *net.Interface
	err = host.Do(func() error {
		var err error
		if ifi, err = net.InterfaceByName(host.Iface); err != nil {
			return err
		}
		if c, err = arp.Dial(ifi); err != nil {
			return err
		}
		raw, err = packet.Listen(ifi, packet.Raw, 0x0806, nil)
		return err
	})
	if err != nil {
		if c != nil {
			c.Close()
		}
		return 0, 0, err
	}
	defer c.Close()
	defer raw.Close()
	var frames [][]byte
	for i := range 100 {
		target := netip.AddrFrom4([4]byte{192, 168, 50, byte(100 + i)})
		p, err := arp.NewPacket(arp.OperationRequest, ifi.HardwareAddr, host.IPv4, ethernetBroadcast, target)
		if err != nil {
			return 0, 0, err
		}
		pb, err := p.MarshalBinary()
		if err != nil {
			return 0, 0, err
		}
		f, err := (&ethernet.Frame{Destination: ethernetBroadcast, Source: ifi.HardwareAddr, EtherType: ethernet.EtherTypeARP, Payload: pb}).MarshalBinary()
		if err != nil {
			return 0, 0, err
		}
		frames = append(frames, f)
	}
	flooded := func(ip netip.Addr) bool {
		b := ip.As4()
		return ip.Is4() && b[0] == 192 && b[1] == 168 && b[2] == 50 && b[3] >= 100 && b[3] < 200
	}
	var readers sync.WaitGroup
	var mu sync.Mutex
	stop := make(chan struct{})
	readers.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			p, _, err := c.Read()
			if err == nil && p.Operation == arp.OperationReply && flooded(p.SenderIP) {
				mu.Lock()
				answered++
				mu.Unlock()
			}
		}
	})
	dst := &packet.Addr{HardwareAddr: ethernetBroadcast}
	start := time.Now()
	for now := start; now.Sub(start) < d; now = time.Now() {
		// Paced: never ahead of rate, as fast as the socket allows when behind.
		if want := int(now.Sub(start).Seconds() * float64(rate)); sent >= want {
			time.Sleep(100 * time.Microsecond)
			continue
		}
		if _, werr := raw.WriteTo(frames[sent%len(frames)], dst); werr == nil {
			sent++
		}
	}
	time.Sleep(200 * time.Millisecond) // late answers
	close(stop)
	readers.Wait()
	mu.Lock()
	defer mu.Unlock()
	return sent, answered, nil
}

var ethernetBroadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
