// Package gobgp implements bgp.Router with GoBGP v3 running in the speaker's process. It is
// the only package that imports GoBGP.
//
// Each session gets its own GoBGP server holding exactly one peer. That makes every BGPPeer
// independent: its own local AS and router ID (GoBGP's router ID is per server), its own paths
// with their own attributes (a prefix may carry other communities to another peer), and closing
// or reopening it cannot disturb another session. A server costs a few goroutines and a RIB of
// the prefixes sent to that one peer. GoBGP never stops a server's main loop, so stopped servers
// are kept and started again for the next session instead of leaking one loop per reopen.
//
// Servers do not listen (GoBGP's ListenPort -1): the speaker connects to its peers, as
// MetalLB's native BGP mode does; the router must accept incoming connections. Routes the peer
// sends are rejected by an import policy: the speaker only announces.
package gobgp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
	bgppacket "github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"github.com/osrg/gobgp/v3/pkg/server"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/ironlb/ironlb/speaker/bgp"
)

// Defaults for PeerConfig fields left zero.
const (
	// DefaultConnectRetry is the wait between connection attempts. GoBGP's own default, 120s,
	// suits daemons that also accept connections; a speaker that only dials out would take
	// minutes to come back after a router restart.
	DefaultConnectRetry = 5 * time.Second
	// DefaultHoldTime is GoBGP's (and MetalLB's) 90s.
	DefaultHoldTime = 90 * time.Second
	// gracefulRestartTime is the restart time announced with the graceful restart capability:
	// how long the peer keeps our routes while the speaker restarts (FRR's default too).
	gracefulRestartTime = 120
	rejectLearned       = "ironlb-reject-learned"
)

var (
	familyV4 = &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	familyV6 = &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
)

// Router opens each session on its own GoBGP server. The zero value is ready to use.
type Router struct {
	// Log receives GoBGP's messages: its errors as errors, the rest as debug (it repeats
	// every failed attempt; the Manager logs each transition once). Default: discard.
	Log *slog.Logger

	mu   sync.Mutex
	idle []*instance // stopped servers, to be started again
}

var _ bgp.Router = (*Router)(nil)

// instance is a GoBGP server and its logger, which follows the server from session to session.
type instance struct {
	srv *server.BgpServer
	log *logger
}

func (r *Router) get() *instance {
	r.mu.Lock()
	defer r.mu.Unlock()
	if n := len(r.idle); n > 0 {
		in := r.idle[n-1]
		r.idle = r.idle[:n-1]
		return in
	}
	l := &logger{}
	in := &instance{srv: server.NewBgpServer(server.LoggerOption(l)), log: l}
	// Serve is GoBGP's main loop; it never returns, which is why instances are reused.
	go in.srv.Serve()
	return in
}

func (r *Router) put(in *instance) {
	in.log.set(nil)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.idle = append(r.idle, in)
}

// Open starts a GoBGP server for cfg with the session's peer in it.
func (r *Router) Open(ctx context.Context, cfg bgp.PeerConfig, notify func(bgp.Status)) (bgp.Session, error) {
	if !cfg.RouterID.Is4() {
		return nil, fmt.Errorf("router ID %v is not an IPv4 address", cfg.RouterID)
	}
	if !cfg.Addr.IsValid() {
		return nil, errors.New("no peer address")
	}
	in := r.get()
	wctx, cancel := context.WithCancel(context.Background())
	s := &session{cfg: cfg, in: in, notify: notify, cancel: cancel, addr: cfg.Addr.String(),
		status: bgp.Status{State: bgp.StateIdle}}
	in.log.set(&sessionLog{s: s, log: cmp.Or(r.Log, slog.New(slog.DiscardHandler)).With("peer", cfg.Name)})
	fail := func(what string, err error) (bgp.Session, error) {
		cancel()
		_ = in.srv.StopBgp(context.Background(), &api.StopBgpRequest{})
		r.put(in)
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := in.srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn:      cfg.MyASN,
		RouterId: cfg.RouterID.String(),
		// No listener: the session connects out.
		ListenPort: -1,
	}}); err != nil {
		return fail("start GoBGP", err)
	}
	if err := rejectLearnedRoutes(ctx, in.srv); err != nil {
		return fail("install the import policy", err)
	}
	if err := in.srv.WatchEvent(wctx, &api.WatchEventRequest{Peer: &api.WatchEventRequest_Peer{}}, s.event); err != nil {
		return fail("watch peer events", err)
	}
	if err := in.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: apiPeer(cfg)}); err != nil {
		return fail("add peer", err)
	}
	s.release = func() { r.put(in) }
	return s, nil
}

// rejectLearnedRoutes installs the global import policy: paths from peers (internal or
// external route type) are rejected; our own (local) ones pass. A plain default REJECT would
// also reject the paths we add, which go through the same import policy.
func rejectLearnedRoutes(ctx context.Context, srv *server.BgpServer) error {
	p := &api.Policy{Name: rejectLearned, Statements: []*api.Statement{
		{Name: rejectLearned + "-internal", Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_INTERNAL},
			Actions: &api.Actions{RouteAction: api.RouteAction_REJECT}},
		{Name: rejectLearned + "-external", Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_EXTERNAL},
			Actions: &api.Actions{RouteAction: api.RouteAction_REJECT}},
	}}
	if err := srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: p}); err != nil {
		return err
	}
	return srv.AddPolicyAssignment(ctx, &api.AddPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name: "global", Direction: api.PolicyDirection_IMPORT,
		Policies: []*api.Policy{{Name: rejectLearned}}, DefaultAction: api.RouteAction_ACCEPT,
	}})
}

func seconds(d, def time.Duration) uint64 {
	if d <= 0 {
		d = def
	}
	return uint64(max(d.Round(time.Second)/time.Second, 1))
}

// apiPeer converts cfg. Both unicast families run on every session (MP-BGP), whatever the
// peer address's family: the router's activation decides what is exchanged.
func apiPeer(cfg bgp.PeerConfig) *api.Peer {
	peerASN := cfg.PeerASN
	switch cfg.DynamicASN {
	case bgp.DynamicASNInternal:
		peerASN = cfg.MyASN
	case bgp.DynamicASNExternal:
		peerASN = 0 // GoBGP takes the AS from the peer's OPEN; see session.event for the check
	}
	hold := seconds(cfg.HoldTime, DefaultHoldTime)
	keepalive := seconds(cfg.KeepaliveTime, time.Duration(hold)*time.Second/3)
	p := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: cfg.Addr.String(),
			PeerAsn:         peerASN,
			LocalAsn:        cfg.MyASN,
			AuthPassword:    cfg.Password,
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			ConnectRetry:      seconds(cfg.ConnectTime, DefaultConnectRetry),
			HoldTime:          hold,
			KeepaliveInterval: keepalive,
		}},
		Transport: &api.Transport{RemotePort: uint32(cmp.Or(cfg.Port, 179))},
	}
	if cfg.SourceAddr.IsValid() {
		p.Transport.LocalAddress = cfg.SourceAddr.String()
	}
	if cfg.EBGPMultiHop {
		p.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: 255}
	}
	for _, f := range []*api.Family{familyV4, familyV6} {
		af := &api.AfiSafi{Config: &api.AfiSafiConfig{Family: f, Enabled: true}}
		if cfg.GracefulRestart {
			af.MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
		}
		p.AfiSafis = append(p.AfiSafis, af)
	}
	if cfg.GracefulRestart {
		p.GracefulRestart = &api.GracefulRestart{Enabled: true, RestartTime: gracefulRestartTime}
	}
	return p
}

// session is one peer on one GoBGP server.
type session struct {
	cfg     bgp.PeerConfig
	in      *instance
	addr    string // the neighbor address as GoBGP keys it
	cancel  context.CancelFunc
	release func()

	mu     sync.Mutex // orders status reports
	notify func(bgp.Status)
	status bgp.Status
	closed bool
	// While disabled, or after refusing the peer's AS, that is the reason of every state but
	// Established, whatever GoBGP logs meanwhile (the CEASE we send, the broken connection).
	disabled string
	refused  string
}

var _ bgp.Session = (*session)(nil)

// report applies change to the status and tells the Manager if anything changed.
func (s *session) report(change func(*bgp.Status)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	st := s.status
	change(&st)
	switch {
	case st.State == bgp.StateEstablished:
	case s.disabled != "":
		st.Reason, st.Detail = bgp.ReasonAdminDown, s.disabled
	case s.refused != "":
		st.Reason, st.Detail = bgp.ReasonNotificationSent, s.refused
	}
	if st == s.status {
		return
	}
	s.status = st
	s.notify(st)
}

// event handles GoBGP's peer state events.
func (s *session) event(r *api.WatchEventResponse) {
	pe := r.GetPeer()
	if pe == nil || pe.GetType() != api.WatchEventResponse_PeerEvent_STATE || pe.GetPeer().GetState() == nil {
		return
	}
	ps := pe.GetPeer().GetState()
	if ps.GetNeighborAddress() != s.addr {
		return
	}
	state := convertState(ps.GetSessionState())
	local, _ := netip.ParseAddr(pe.GetPeer().GetTransport().GetLocalAddress())
	s.report(func(st *bgp.Status) {
		st.State = state
		if state == bgp.StateEstablished {
			st.Reason, st.Detail = bgp.ReasonNone, ""
			st.LocalAddr = local.Unmap()
			st.PeerASN = ps.GetPeerAsn()
		} else if st.State != bgp.StateOpenSent && st.State != bgp.StateOpenConfirm {
			st.LocalAddr = netip.Addr{}
		}
	})
	opened := state == bgp.StateOpenConfirm || state == bgp.StateEstablished
	if opened && s.cfg.DynamicASN == bgp.DynamicASNExternal && ps.GetPeerAsn() == s.cfg.MyASN {
		// GoBGP accepts any AS when it is told none; dynamicASN external means "not ours",
		// as FRR's remote-as external enforces. Refuse the session, and say why — already in
		// OpenConfirm, where the peer's OPEN is known, so that no route is exchanged (GoBGP
		// sends its paths as soon as the session is Established, and retries the connection
		// after a shutdown, so acting on Established let every retry through for a moment).
		detail := fmt.Sprintf("the peer announced AS %d, our own, but dynamicASN is external", ps.GetPeerAsn())
		s.mu.Lock()
		s.refused = detail
		s.mu.Unlock()
		// Not from this callback: GoBGP's management loop may be busy delivering it.
		go func() {
			_ = s.in.srv.ShutdownPeer(context.Background(), &api.ShutdownPeerRequest{Address: s.addr, Communication: detail})
		}()
	} else if state == bgp.StateEstablished {
		s.mu.Lock()
		s.refused = ""
		s.mu.Unlock()
	}
}

func convertState(s api.PeerState_SessionState) bgp.State {
	switch s {
	case api.PeerState_IDLE:
		return bgp.StateIdle
	case api.PeerState_CONNECT:
		return bgp.StateConnect
	case api.PeerState_ACTIVE:
		return bgp.StateActive
	case api.PeerState_OPENSENT:
		return bgp.StateOpenSent
	case api.PeerState_OPENCONFIRM:
		return bgp.StateOpenConfirm
	case api.PeerState_ESTABLISHED:
		return bgp.StateEstablished
	}
	return bgp.StateUnknown
}

// Advertise adds p to the server's RIB; a path for the same prefix is replaced.
func (s *session) Advertise(ctx context.Context, p bgp.Path) error {
	ap, err := apiPath(p)
	if err != nil {
		return err
	}
	_, err = s.in.srv.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: ap})
	return err
}

// Withdraw deletes the path of prefix.
func (s *session) Withdraw(ctx context.Context, prefix netip.Prefix) error {
	ap, err := apiPath(bgp.Path{Prefix: prefix})
	if err != nil {
		return err
	}
	return s.in.srv.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_GLOBAL, Family: ap.Family, Path: ap})
}

// SetEnabled disables (sending a CEASE with the reason, if the connection still works) or
// enables the peer.
func (s *session) SetEnabled(ctx context.Context, enabled bool, reason string) error {
	s.mu.Lock()
	s.disabled = ""
	if !enabled {
		s.disabled = cmp.Or(reason, "disabled")
	}
	s.mu.Unlock()
	if enabled {
		return s.in.srv.EnablePeer(ctx, &api.EnablePeerRequest{Address: s.addr})
	}
	return s.in.srv.DisablePeer(ctx, &api.DisablePeerRequest{Address: s.addr, Communication: truncate(reason, 128)})
}

// Close stops the server (a CEASE to the peer, which withdraws our routes) and keeps it for
// reuse.
func (s *session) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	err := s.in.srv.StopBgp(ctx, &api.StopBgpRequest{})
	s.cancel()
	if err != nil {
		// A server that failed to stop may still hold the peer: do not reuse it.
		return fmt.Errorf("stop GoBGP: %w", err)
	}
	s.release()
	return nil
}

// apiPath converts p: origin IGP, the next hop (0.0.0.0 or :: let GoBGP put the session's
// local address), local preference and communities.
func apiPath(p bgp.Path) (*api.Path, error) {
	pfx := p.Prefix.Masked()
	nlri, err := anypb.New(&api.IPAddressPrefix{Prefix: pfx.Addr().String(), PrefixLen: uint32(pfx.Bits())})
	if err != nil {
		return nil, err
	}
	attrs := []proto.Message{&api.OriginAttribute{Origin: 0}}
	family := familyV4
	if pfx.Addr().Is4() {
		nh := "0.0.0.0"
		if p.NextHop.IsValid() {
			nh = p.NextHop.String()
		}
		if p.NextHop.Is6() {
			// An IPv6 next hop for an IPv4 prefix (RFC 8950) goes in MP_REACH_NLRI.
			attrs = append(attrs, &api.MpReachNLRIAttribute{Family: familyV4, NextHops: []string{nh}, Nlris: []*anypb.Any{nlri}})
		} else {
			attrs = append(attrs, &api.NextHopAttribute{NextHop: nh})
		}
	} else {
		family = familyV6
		nh := "::"
		if p.NextHop.IsValid() {
			nh = p.NextHop.String()
		}
		attrs = append(attrs, &api.MpReachNLRIAttribute{Family: familyV6, NextHops: []string{nh}, Nlris: []*anypb.Any{nlri}})
	}
	if p.LocalPref != 0 {
		attrs = append(attrs, &api.LocalPrefAttribute{LocalPref: p.LocalPref})
	}
	if len(p.Communities) > 0 {
		attrs = append(attrs, &api.CommunitiesAttribute{Communities: p.Communities})
	}
	if len(p.LargeCommunities) > 0 {
		lc := make([]*api.LargeCommunity, 0, len(p.LargeCommunities))
		for _, c := range p.LargeCommunities {
			lc = append(lc, &api.LargeCommunity{GlobalAdmin: c.GlobalAdmin, LocalData1: c.LocalData1, LocalData2: c.LocalData2})
		}
		attrs = append(attrs, &api.LargeCommunitiesAttribute{Communities: lc})
	}
	pattrs := make([]*anypb.Any, 0, len(attrs))
	for _, a := range attrs {
		an, err := anypb.New(a)
		if err != nil {
			return nil, err
		}
		pattrs = append(pattrs, an)
	}
	return &api.Path{Family: family, Nlri: nlri, Pattrs: pattrs}, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// logger is the GoBGP logger of one server. GoBGP reports why connecting failed and why a
// session went down only in log messages, so they are read here and turned into the session's
// Reason; everything is also forwarded to slog.
type logger struct {
	mu  sync.Mutex
	cur *sessionLog
}

type sessionLog struct {
	s   *session
	log *slog.Logger
	// sent is set when we sent a NOTIFICATION since the last connection was made.
	sent atomic.Bool
}

func (l *logger) set(s *sessionLog) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cur = s
}

func (l *logger) get() *sessionLog {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur
}

func attrs(f gobgplog.Fields) []any {
	out := make([]any, 0, 2*len(f))
	for k, v := range f {
		out = append(out, "gobgp"+k, v)
	}
	return out
}

func (l *logger) emit(level slog.Level, msg string, f gobgplog.Fields) {
	sl := l.get()
	if sl == nil {
		return
	}
	sl.capture(msg, f)
	if sl.log.Enabled(context.Background(), level) {
		sl.log.Log(context.Background(), level, "GoBGP: "+msg, attrs(f)...)
	}
}

func (l *logger) Panic(msg string, f gobgplog.Fields) {
	l.emit(slog.LevelError, msg, f)
	panic(msg)
}

func (l *logger) Fatal(msg string, f gobgplog.Fields) {
	l.emit(slog.LevelError, msg, f)
	os.Exit(1)
}

func (l *logger) Error(msg string, f gobgplog.Fields) { l.emit(slog.LevelError, msg, f) }
func (l *logger) Warn(msg string, f gobgplog.Fields)  { l.emit(slog.LevelDebug, msg, f) }
func (l *logger) Info(msg string, f gobgplog.Fields)  { l.emit(slog.LevelDebug, msg, f) }

// Debug messages are mostly dropped, but "failed to connect" is only logged at debug level.
func (l *logger) Debug(msg string, f gobgplog.Fields) { l.emit(slog.LevelDebug-4, msg, f) }

func (l *logger) SetLevel(gobgplog.LogLevel) {}

// GetLevel claims debug so GoBGP logs its connection failures; emit filters.
func (l *logger) GetLevel() gobgplog.LogLevel { return gobgplog.DebugLevel }

// capture turns GoBGP's failure messages into the session's Reason. A NOTIFICATION is logged
// with its code before the state change it causes, whose own reason is vaguer ("invalid-msg"
// when it arrives in OpenSent), so a later vague reason does not replace a precise one.
func (sl *sessionLog) capture(msg string, f gobgplog.Fields) {
	if key, _ := f["Key"].(string); key != sl.s.addr {
		return
	}
	switch msg {
	case "failed to connect":
		err, _ := f["Error"].(error)
		reason := connectReason(err)
		detail := fmt.Sprint(f["Error"])
		sl.s.report(func(st *bgp.Status) { st.Reason, st.Detail = reason, detail })
	case "sent notification", "received notification":
		reason := bgp.ReasonNotificationSent
		if msg == "received notification" {
			reason = bgp.ReasonNotificationReceived
		}
		if reason == bgp.ReasonNotificationSent {
			sl.sent.Store(true)
		}
		detail := notificationText(f)
		sl.s.report(func(st *bgp.Status) { st.Reason, st.Detail = reason, detail })
	case "Peer Down":
		text := fmt.Sprint(f["Reason"])
		r := downReason(text)
		sl.s.report(func(st *bgp.Status) {
			if notification(st.Reason) && notification(r) {
				return // the notification's own log said more
			}
			st.Reason, st.Detail = r, text
		})
	case "state changed":
		// A session failing before Established has no "Peer Down"; the reason of the change
		// to idle tells.
		text := fmt.Sprint(f["reason"])
		if text == "new-connection" {
			sl.sent.Store(false)
		}
		if f["new"] != "BGP_FSM_IDLE" || f["old"] == "BGP_FSM_ESTABLISHED" {
			return
		}
		if text == "invalid-msg" && !sl.sent.Load() {
			// Before Established, GoBGP drops a NOTIFICATION from the peer unlogged and calls
			// it an invalid message: the peer rejected our OPEN.
			sl.s.report(func(st *bgp.Status) {
				st.Reason = bgp.ReasonNotificationReceived
				st.Detail = "the peer answered our OPEN with a NOTIFICATION (GoBGP does not report its code before Established; the router's log names it)"
			})
			return
		}
		r := downReason(text)
		if r == bgp.ReasonOther || r == bgp.ReasonAdminDown || notification(r) {
			return
		}
		sl.s.report(func(st *bgp.Status) { st.Reason, st.Detail = r, text })
	}
}

func notification(r bgp.Reason) bool {
	return r == bgp.ReasonNotificationReceived || r == bgp.ReasonNotificationSent
}

// notificationText describes a NOTIFICATION logged by GoBGP: its code in words, the
// administrative reason or GoBGP's message.
func notificationText(f gobgplog.Fields) string {
	var parts []string
	code, _ := f["Code"].(uint8)
	sub, _ := f["Subcode"].(uint8)
	if me, ok := f["Data"].(*bgppacket.MessageError); ok {
		code, sub = me.TypeCode, me.SubTypeCode
	}
	if code != 0 {
		parts = append(parts, bgppacket.NewNotificationErrorCode(code, sub).String())
	}
	if c, _ := f["Communicated-Reason"].(string); c != "" {
		parts = append(parts, fmt.Sprintf("%q", c))
	}
	if me, ok := f["Data"].(*bgppacket.MessageError); ok && me.Message != "" {
		parts = append(parts, me.Message)
	}
	return strings.Join(parts, ": ")
}

func connectReason(err error) bgp.Reason {
	var ne net.Error
	switch {
	case err == nil:
		return bgp.ReasonOther
	case errors.Is(err, syscall.ECONNREFUSED):
		return bgp.ReasonConnectRefused
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return bgp.ReasonUnreachable
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded), errors.Is(err, syscall.ETIMEDOUT),
		errors.As(err, &ne) && ne.Timeout():
		return bgp.ReasonConnectTimeout
	}
	return bgp.ReasonOther
}

// downReason maps GoBGP's fsmStateReason text.
func downReason(text string) bgp.Reason {
	switch {
	case strings.HasPrefix(text, "notification-received"):
		return bgp.ReasonNotificationReceived
	case strings.HasPrefix(text, "notification-sent"), text == "invalid-msg":
		return bgp.ReasonNotificationSent
	case text == "hold-timer-expired":
		return bgp.ReasonHoldTimerExpired
	case text == "read-failed", text == "write-failed":
		return bgp.ReasonConnectionLost
	case text == "admin-down", text == "dying":
		return bgp.ReasonAdminDown
	}
	return bgp.ReasonOther
}
