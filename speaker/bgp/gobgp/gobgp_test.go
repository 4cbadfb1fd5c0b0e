package gobgp

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	bgppacket "github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"github.com/osrg/gobgp/v3/pkg/server"

	"github.com/ironlb/ironlb/internal/testenv"
	"github.com/ironlb/ironlb/speaker/bgp"
)

// The sessions run over loopback against a second, listening GoBGP server standing in for the
// router (the real router, FRR, is in e2etest). IP plan: the router listens on 127.0.0.1, the
// speaker connects from 127.0.0.2; prefixes are from 192.168.50.0/24 and fd00:50::/64.

const (
	routerAddr  = "127.0.0.1"
	speakerAddr = "127.0.0.2"
	routerASN   = 64512
)

// freePort finds a TCP port free on the router address.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", routerAddr+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// router is a listening GoBGP server with the speaker as a passive neighbor.
type router struct {
	srv  *server.BgpServer
	port int
}

func startRouter(t *testing.T, neighborASN uint32, password string) *router {
	t.Helper()
	port := freePort(t)
	srv := server.NewBgpServer(server.LoggerOption(&logger{}))
	go srv.Serve()
	ctx := context.Background()
	if err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: routerASN, RouterId: "10.0.0.1", ListenPort: int32(port), ListenAddresses: []string{routerAddr},
	}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.StopBgp(context.Background(), &api.StopBgpRequest{}) })
	peer := &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: speakerAddr, PeerAsn: neighborASN, AuthPassword: password},
		Transport: &api.Transport{PassiveMode: true},
		Timers:    &api.Timers{Config: &api.TimersConfig{HoldTime: 9, KeepaliveInterval: 3}},
		AfiSafis: []*api.AfiSafi{
			{Config: &api.AfiSafiConfig{Family: familyV4, Enabled: true}},
			{Config: &api.AfiSafiConfig{Family: familyV6, Enabled: true}},
		},
	}
	if err := srv.AddPeer(ctx, &api.AddPeerRequest{Peer: peer}); err != nil {
		t.Fatal(err)
	}
	return &router{srv: srv, port: port}
}

// route is a path as the router received it.
type route struct {
	nexthop     string
	localPref   uint32
	asPath      string
	communities []string
}

func (r *router) routes(t *testing.T, fam *api.Family) map[string]route {
	t.Helper()
	out := map[string]route{}
	err := r.srv.ListPath(context.Background(), &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: fam}, func(d *api.Destination) {
		for _, p := range d.Paths {
			native, err := apiutil.GetNativePathAttributes(p)
			if err != nil {
				t.Errorf("decode path %s: %v", d.Prefix, err)
				continue
			}
			var rt route
			for _, a := range native {
				switch a := a.(type) {
				case *bgppacket.PathAttributeNextHop:
					rt.nexthop = a.Value.String()
				case *bgppacket.PathAttributeMpReachNLRI:
					rt.nexthop = a.Nexthop.String()
				case *bgppacket.PathAttributeLocalPref:
					rt.localPref = a.Value
				case *bgppacket.PathAttributeAsPath:
					var asns []string
					for _, seg := range a.Value {
						for _, as := range seg.GetAS() {
							asns = append(asns, fmt.Sprint(as))
						}
					}
					rt.asPath = strings.Join(asns, " ")
				case *bgppacket.PathAttributeCommunities:
					for _, c := range a.Value {
						rt.communities = append(rt.communities, fmt.Sprintf("%d:%d", c>>16, c&0xffff))
					}
				case *bgppacket.PathAttributeLargeCommunities:
					for _, c := range a.Values {
						rt.communities = append(rt.communities, "large:"+c.String())
					}
				}
			}
			out[d.Prefix] = rt
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// statuses collects what a session reports.
type statuses struct {
	mu   sync.Mutex
	list []bgp.Status
}

func (s *statuses) add(st bgp.Status) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.list = append(s.list, st)
}

func (s *statuses) last() bgp.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.list) == 0 {
		return bgp.Status{}
	}
	return s.list[len(s.list)-1]
}

func newRouter(t *testing.T) *Router {
	lvl := slog.LevelInfo
	if testing.Verbose() {
		lvl = slog.LevelDebug - 4
	}
	return &Router{Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))}
}

func open(t *testing.T, r *Router, cfg bgp.PeerConfig) (bgp.Session, *statuses) {
	t.Helper()
	st := &statuses{}
	s, err := r.Open(context.Background(), cfg, st.add)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s, st
}

func speakerCfg(rt *router, myASN uint32) bgp.PeerConfig {
	return bgp.PeerConfig{Name: "r", MyASN: myASN, PeerASN: routerASN, Addr: netip.MustParseAddr(routerAddr), Port: uint16(rt.port),
		SourceAddr: netip.MustParseAddr(speakerAddr), RouterID: netip.MustParseAddr("192.168.50.11"), ConnectTime: 2 * time.Second,
		HoldTime: 9 * time.Second}
}

func waitState(t *testing.T, st *statuses, want bgp.State) bgp.Status {
	t.Helper()
	var got bgp.Status
	testenv.Eventually(t, 20*time.Second, "session "+want.String(), func() (bool, string) {
		got = st.last()
		return got.State == want, fmt.Sprintf("last status %+v", got)
	})
	return got
}

// TestEBGP: an eBGP session with both families; paths arrive with the speaker's address (or the
// given IPv6 next hop), our AS prepended, communities; withdrawals and replacements follow; the
// router's own routes are not accepted.
func TestEBGP(t *testing.T) {
	rt := startRouter(t, 64600, "")
	r := newRouter(t)
	s, st := open(t, r, speakerCfg(rt, 64600))
	up := waitState(t, st, bgp.StateEstablished)
	if up.LocalAddr != netip.MustParseAddr(speakerAddr) || up.PeerASN != routerASN {
		t.Errorf("established status %+v, want local %s peer AS %d", up, speakerAddr, routerASN)
	}
	ctx := context.Background()
	paths := []bgp.Path{
		{Prefix: netip.MustParsePrefix("192.168.50.50/32"), Communities: []uint32{65000<<16 | 100},
			LargeCommunities: []bgp.LargeCommunity{{GlobalAdmin: 1, LocalData1: 2, LocalData2: 3}}, LocalPref: 300},
		{Prefix: netip.MustParsePrefix("fd00:50::50/128"), NextHop: netip.MustParseAddr("fd00:50::11")},
	}
	for _, p := range paths {
		if err := s.Advertise(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 10*time.Second, "routes at the router", func() (bool, string) {
		v4, v6 := rt.routes(t, familyV4), rt.routes(t, familyV6)
		got4, got6 := v4["192.168.50.50/32"], v6["fd00:50::50/128"]
		ok := got4.nexthop == speakerAddr && got4.asPath == "64600" && slices.Equal(got4.communities, []string{"65000:100", "large:1:2:3"}) &&
			got4.localPref == 0 && got6.nexthop == "fd00:50::11"
		return ok, fmt.Sprintf("v4 %+v v6 %+v (eBGP drops local preference)", v4, v6)
	})

	// A routes from the router to the speaker is not accepted.
	rp, err := apiPath(bgp.Path{Prefix: netip.MustParsePrefix("10.99.0.0/16"), NextHop: netip.MustParseAddr(routerAddr)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.srv.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: rp}); err != nil {
		t.Fatal(err)
	}

	// Replace one path, withdraw the other.
	paths[0].Communities = []uint32{65000<<16 | 200}
	paths[0].LargeCommunities = nil
	if err := s.Advertise(ctx, paths[0]); err != nil {
		t.Fatal(err)
	}
	if err := s.Withdraw(ctx, paths[1].Prefix); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "replaced and withdrawn", func() (bool, string) {
		v4, v6 := rt.routes(t, familyV4), rt.routes(t, familyV6)
		return slices.Equal(v4["192.168.50.50/32"].communities, []string{"65000:200"}) && len(v6) == 0, fmt.Sprintf("v4 %+v v6 %+v", v4, v6)
	})
	var learned []string
	in := s.(*session).in
	if err := in.srv.ListPath(ctx, &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: familyV4}, func(d *api.Destination) {
		learned = append(learned, d.Prefix)
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(learned, []string{"192.168.50.50/32"}) {
		t.Errorf("the speaker's RIB holds %v, want only its own 192.168.50.50/32 (routes from peers are rejected)", learned)
	}

	// Disabling takes the session down at the router (routes gone); enabling brings it back.
	if err := s.SetEnabled(ctx, false, "BFD down"); err != nil {
		t.Fatal(err)
	}
	down := waitState(t, st, bgp.StateIdle)
	if down.Reason != bgp.ReasonAdminDown || down.Detail != "BFD down" {
		t.Errorf("disabled session reports %v (%s), want admin_down", down.Reason, down.Detail)
	}
	testenv.Eventually(t, 10*time.Second, "routes withdrawn", func() (bool, string) {
		v4 := rt.routes(t, familyV4)
		_, has := v4["192.168.50.50/32"]
		return !has, fmt.Sprintf("v4 %+v", v4)
	})
	if err := s.SetEnabled(ctx, true, ""); err != nil {
		t.Fatal(err)
	}
	waitState(t, st, bgp.StateEstablished)
	testenv.Eventually(t, 10*time.Second, "routes back", func() (bool, string) {
		v4 := rt.routes(t, familyV4)
		_, has := v4["192.168.50.50/32"]
		return has, fmt.Sprintf("v4 %+v", v4)
	})
}

// TestIBGPAndReuse: local preference reaches an iBGP peer; a closed session's server is reused
// by the next session, with a fresh RIB.
func TestIBGPAndReuse(t *testing.T) {
	rt := startRouter(t, routerASN, "")
	r := newRouter(t)
	ctx := context.Background()
	s, st := open(t, r, speakerCfg(rt, routerASN))
	waitState(t, st, bgp.StateEstablished)
	if err := s.Advertise(ctx, bgp.Path{Prefix: netip.MustParsePrefix("192.168.50.60/32"), LocalPref: 250}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "local preference at the router", func() (bool, string) {
		v4 := rt.routes(t, familyV4)
		got := v4["192.168.50.60/32"]
		return got.localPref == 250 && got.nexthop == speakerAddr && got.asPath == "", fmt.Sprintf("v4 %+v", v4)
	})
	first := s.(*session).in
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "withdrawn on close", func() (bool, string) {
		v4 := rt.routes(t, familyV4)
		return len(v4) == 0, fmt.Sprintf("v4 %+v", v4)
	})
	s2, st2 := open(t, r, speakerCfg(rt, routerASN))
	if s2.(*session).in != first {
		t.Errorf("a new server was made although a stopped one was idle")
	}
	waitState(t, st2, bgp.StateEstablished)
	if err := s2.Advertise(ctx, bgp.Path{Prefix: netip.MustParsePrefix("192.168.50.61/32")}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "only the new session's route", func() (bool, string) {
		v4 := rt.routes(t, familyV4)
		_, has := v4["192.168.50.61/32"]
		return len(v4) == 1 && has && v4["192.168.50.61/32"].localPref == 100, fmt.Sprintf("v4 %+v", v4)
	})
}

// TestFailures: a wrong TCP MD5 password is a connect timeout, and said so; a wrong peer AS
// is a NOTIFICATION; nothing listening is a refusal; dynamicASN external refuses our own AS.
func TestFailures(t *testing.T) {
	if os.Geteuid() != 0 {
		// TCP MD5 keys need no privilege, but some sandboxes refuse the socket option.
		t.Log("not root: TCP MD5 may be refused by the sandbox")
	}
	tests := []struct {
		name     string
		routerAS uint32 // the AS the router expects from us
		password string // the router's
		mutate   func(*bgp.PeerConfig)
		want     bgp.Reason
		detail   string
	}{
		{"wrong md5 password", 64600, "right", func(c *bgp.PeerConfig) { c.Password = "wrong" }, bgp.ReasonConnectTimeout, "timeout"},
		{"wrong peer AS", 64600, "", func(c *bgp.PeerConfig) { c.PeerASN = 64999 }, bgp.ReasonNotificationSent, "bad peer AS"},
		{"router expects another AS from us", 64601, "", nil, bgp.ReasonNotificationReceived, "answered our OPEN with a NOTIFICATION"},
		{"nothing listens", 64600, "", func(c *bgp.PeerConfig) { c.Port = uint16(freePort(t)) }, bgp.ReasonConnectRefused, "refused"},
		{"dynamicASN external but the router is in our AS", routerASN, "", func(c *bgp.PeerConfig) {
			c.MyASN, c.PeerASN, c.DynamicASN = routerASN, 0, bgp.DynamicASNExternal
		}, bgp.ReasonNotificationSent, "dynamicASN is external"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rt := startRouter(t, tc.routerAS, tc.password)
			cfg := speakerCfg(rt, 64600)
			if tc.mutate != nil {
				tc.mutate(&cfg)
			}
			_, st := open(t, newRouter(t), cfg)
			testenv.Eventually(t, 30*time.Second, "failure reported", func() (bool, string) {
				got := st.last()
				return got.Reason == tc.want && strings.Contains(strings.ToLower(got.Detail), strings.ToLower(tc.detail)), fmt.Sprintf("status %+v", got)
			})
			if got := st.last(); got.State == bgp.StateEstablished {
				t.Errorf("state %v", got.State)
			}
		})
	}
}

// TestDynamicASNInternal: dynamicASN internal peers with the router as iBGP.
func TestDynamicASNInternal(t *testing.T) {
	rt := startRouter(t, routerASN, "")
	cfg := speakerCfg(rt, routerASN)
	cfg.PeerASN, cfg.DynamicASN = 0, bgp.DynamicASNInternal
	_, st := open(t, newRouter(t), cfg)
	if got := waitState(t, st, bgp.StateEstablished); got.PeerASN != routerASN {
		t.Errorf("peer AS %d", got.PeerASN)
	}
}

// TestNoLeakOnClose: sessions opened and closed again and again, established or still
// connecting, leave no goroutine, socket or server behind: each Close returns its server to the
// idle list, and the next Open takes it.
func TestNoLeakOnClose(t *testing.T) {
	rt := startRouter(t, 64600, "")
	r := newRouter(t)
	ctx := context.Background()
	cycle := func(cfg bgp.PeerConfig, want bgp.State) {
		t.Helper()
		st := &statuses{}
		s, err := r.Open(ctx, cfg, st.add)
		if err != nil {
			t.Fatal(err)
		}
		routed := func() bool { _, ok := rt.routes(t, familyV4)["192.168.50.50/32"]; return ok }
		if want == bgp.StateEstablished {
			waitState(t, st, want)
			if err := s.Advertise(ctx, bgp.Path{Prefix: netip.MustParsePrefix("192.168.50.50/32")}); err != nil {
				t.Fatal(err)
			}
			testenv.Eventually(t, 10*time.Second, "route at the router", func() (bool, string) { return routed(), "" })
		}
		if err := s.Close(ctx); err != nil {
			t.Fatal(err)
		}
		// Also keeps the next Open's StartBgp from racing with the router still handling this
		// session (GoBGP's package-level route selection options; see docs/bgp.md, Limits).
		testenv.Eventually(t, 10*time.Second, "route withdrawn", func() (bool, string) { return !routed(), "" })
	}
	refused := speakerCfg(rt, 64600)
	refused.Port = uint16(freePort(t))
	// The first cycles make the one server that all later sessions reuse.
	cycle(speakerCfg(rt, 64600), bgp.StateEstablished)
	cycle(refused, bgp.StateIdle)
	goroutines, fds := settled(t)
	for range 3 {
		cycle(speakerCfg(rt, 64600), bgp.StateEstablished)
		cycle(refused, bgp.StateIdle)
	}
	testenv.Eventually(t, 10*time.Second, "goroutines and file descriptors back to where they were", func() (bool, string) {
		g, f := runtime.NumGoroutine(), openFDs(t)
		return g <= goroutines && f <= fds, fmt.Sprintf("%d goroutines (were %d), %d fds (were %d)\n%s", g, goroutines, f, fds, stacks())
	})
	r.mu.Lock()
	idle := len(r.idle)
	r.mu.Unlock()
	if idle != 1 {
		t.Errorf("%d idle servers, want the one all sessions shared", idle)
	}
}

// settled waits for the goroutine count to stop moving and returns it with the open files.
func settled(t *testing.T) (int, int) {
	t.Helper()
	last, stable := -1, 0
	for stable < 5 {
		time.Sleep(100 * time.Millisecond)
		n := runtime.NumGoroutine()
		if n == last {
			stable++
		} else {
			last, stable = n, 0
		}
	}
	return last, openFDs(t)
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

func stacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}
