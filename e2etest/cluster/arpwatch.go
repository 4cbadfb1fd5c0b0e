package cluster

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"

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
		filter, err := bpf.Assemble(watchFilter(vip, ifi.HardwareAddr))
		if err != nil {
			return fmt.Errorf("assemble ARP watch filter: %w", err)
		}
		// The socket stays in host's namespace.
		conn, err := packet.Listen(ifi, packet.Raw, etherTypeARP, &packet.Config{Filter: filter})
		if err != nil {
			return fmt.Errorf("open ARP watch socket: %w", err)
		}
		if w.c, err = arp.New(ifi, conn); err != nil {
			_ = conn.Close()
			return fmt.Errorf("open ARP watch client: %w", err)
		}
		return nil
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

// watchFilter passes ARP packets from vip that are gratuitous (target vip) or addressed to
// mac. Everything else on the link is left in the kernel: a flood test sends tens of
// thousands of requests a second from the same interface (their copies would reach this
// socket), and answers to other requesters are not the watch's.
func watchFilter(vip netip.Addr, mac net.HardwareAddr) []bpf.Instruction {
	v := binary.BigEndian.Uint32(vip.Unmap().AsSlice())
	return []bpf.Instruction{
		bpf.LoadAbsolute{Off: offARPSenderIP, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: v, SkipTrue: 7},
		bpf.LoadAbsolute{Off: offARPTargetIP, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: v, SkipTrue: 4},
		bpf.LoadAbsolute{Off: offARPTargetHW, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: binary.BigEndian.Uint32(mac[0:4]), SkipTrue: 3},
		bpf.LoadAbsolute{Off: offARPTargetHW + 4, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(binary.BigEndian.Uint16(mac[4:6])), SkipTrue: 1},
		bpf.RetConstant{Val: 128},
		bpf.RetConstant{Val: 0},
	}
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

// Last returns the time of the last event after since from mac of the kind asked for, or the
// zero time if there is none.
func (w *ARPWatch) Last(since time.Time, gratuitous bool, mac string) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	var last time.Time
	for _, e := range w.events {
		if !e.at.Before(since) && e.gratuitous == gratuitous && e.mac == mac {
			last = e.at
		}
	}
	return last
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

// Counts returns how many requests were sent in [from, to) and how many answers (not
// announcements) each MAC sent in [from, to+late): unlike Answers it does not need an answer
// to arrive before the next request, so on a loaded machine it tells a late answer from a
// lost one.
func (w *ARPWatch) Counts(from, to time.Time, late time.Duration) (requests int, answers map[string]int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.requests {
		if !r.Before(from) && r.Before(to) {
			requests++
		}
	}
	answers = map[string]int{}
	for _, e := range w.events {
		if !e.gratuitous && !e.at.Before(from) && e.at.Before(to.Add(late)) {
			answers[e.mac]++
		}
	}
	return requests, answers
}

func (w *ARPWatch) Close() {
	close(w.stop)
	w.wg.Wait()
	w.c.Close()
}
