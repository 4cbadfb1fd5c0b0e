package bfd

import (
	"net/netip"
	"testing"
)

// TestDispatch runs received datagrams through parse, demultiplexing and the TTL check, with
// sessions that exist but do not run. Sessions: peer4 (discriminator 1, any interface, minimum
// TTL 254), peer6 (2, 255), ll6 on interface index 7 (3) and on index 8 (4).
func TestDispatch(t *testing.T) {
	m := New(Options{})
	mk := func(p Peer, discr uint32, ifIndex int32) *runner {
		n, err := p.normalize()
		if err != nil {
			t.Fatal(err)
		}
		r := newRunner(m, n, discr)
		r.ifIndex.Store(ifIndex)
		return r
	}
	r4 := mk(Peer{Remote: peer4}, 1, 0)
	r6 := mk(Peer{Remote: peer6, Profile: Profile{MinimumTTL: 255}}, 2, 0)
	ll7 := mk(Peer{Remote: ll6, Interface: "eth7"}, 3, 7)
	ll8 := mk(Peer{Remote: ll6, Interface: "eth8"}, 4, 8)
	m.table.Store(newDemuxTable(map[netip.Addr]*runner{
		r4.peer.Remote: r4, r6.peer.Remote: r6, ll7.peer.Remote: ll7, ll8.peer.Remote: ll8,
	}))

	pkt := func(st State, your uint32) []byte {
		p := packet{State: st, DetectMult: 3, MyDiscriminator: 0xabc, YourDiscriminator: your, DesiredMinTxInterval: ms, RequiredMinRxInterval: ms}
		return p.appendTo(nil)
	}
	auth := pkt(Up, 1)
	auth[1] |= flagAuth
	auth[3] = 26
	auth = append(auth, 0, 0)

	tests := []struct {
		name    string
		in      inbound
		want    *runner
		wantDrp string
	}{
		{"by Your Discriminator", inbound{src: peer4, ttl: 255, payload: pkt(Up, 1)}, r4, ""},
		{"TTL 254 accepted by default", inbound{src: peer4, ttl: 254, payload: pkt(Up, 1)}, r4, ""},
		{"TTL 253 dropped", inbound{src: peer4, ttl: 253, payload: pkt(Up, 1)}, nil, dropTTL},
		{"no TTL from the kernel dropped", inbound{src: peer4, ttl: -1, payload: pkt(Up, 1)}, nil, dropTTL},
		{"minimum TTL 255 refuses 254", inbound{src: peer6, ttl: 254, payload: pkt(Up, 2)}, nil, dropTTL},
		{"Down without Your Discriminator by source", inbound{src: peer6, ttl: 255, payload: pkt(Down, 0)}, r6, ""},
		{"unknown discriminator", inbound{src: peer4, ttl: 255, payload: pkt(Up, 99)}, nil, dropNoSession},
		{"discriminator of another peer's session", inbound{src: peer4, ttl: 255, payload: pkt(Up, 2)}, nil, dropNoSession},
		{"unknown source", inbound{src: local4, ttl: 255, payload: pkt(Down, 0)}, nil, dropNoSession},
		{"link-local on interface 7", inbound{src: ll6, ifIndex: 7, ttl: 255, payload: pkt(Down, 0)}, ll7, ""},
		{"link-local on interface 8", inbound{src: ll6, ifIndex: 8, ttl: 255, payload: pkt(Down, 0)}, ll8, ""},
		{"link-local on an unknown interface", inbound{src: ll6, ifIndex: 9, ttl: 255, payload: pkt(Down, 0)}, nil, dropNoSession},
		{"discriminator right, interface wrong", inbound{src: ll6, ifIndex: 8, ttl: 255, payload: pkt(Up, 3)}, nil, dropNoSession},
		{"malformed", inbound{src: peer4, ttl: 255, payload: pkt(Up, 0)}, nil, dropMalformed},
		{"authentication", inbound{src: peer4, ttl: 255, payload: auth}, nil, dropAuthentication},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := m.dispatch(tc.in, tc.in.src.Is4()); got != tc.wantDrp {
				t.Fatalf("drop reason %q, want %q", got, tc.wantDrp)
			}
			for _, r := range []*runner{r4, r6, ll7, ll8} {
				select {
				case <-r.rx:
					if r != tc.want {
						t.Fatalf("delivered to %s (%d), want %v", r.peer.Remote, r.discr, tc.want)
					}
				default:
					if r == tc.want {
						t.Fatalf("not delivered to %s", r.peer.Remote)
					}
				}
			}
		})
	}

	t.Run("full backlog drops", func(t *testing.T) {
		in := inbound{src: peer4, ttl: 255, payload: pkt(Up, 1)}
		for range rxBacklog {
			if got := m.dispatch(in, true); got != "" {
				t.Fatalf("dropped %q before the backlog was full", got)
			}
		}
		if got := m.dispatch(in, true); got != dropBacklog {
			t.Fatalf("drop reason %q, want %q", got, dropBacklog)
		}
	})
}
