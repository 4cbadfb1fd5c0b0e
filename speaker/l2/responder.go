package l2

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// DefaultAnnounceSchedule is when Announce sends, counted from the call: at once and then
// repeated, because a single gratuitous packet is easily lost while switches relearn.
var DefaultAnnounceSchedule = []time.Duration{0, 500 * time.Millisecond, time.Second, 2 * time.Second}

// Option configures a Responder.
type Option func(*options)

type options struct {
	logger   *slog.Logger
	metrics  *Metrics
	schedule []time.Duration
	refresh  time.Duration
	limit    int
}

// WithLogger sets the logger. Default: discard.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithMetrics sets the counters to update. Default: none.
func WithMetrics(m *Metrics) Option { return func(o *options) { o.metrics = m } }

// WithAnnounceSchedule sets the offsets from an Announce call at which the announcement is
// sent; they must be ascending. Default DefaultAnnounceSchedule. An empty schedule sends once.
func WithAnnounceSchedule(offsets ...time.Duration) Option {
	return func(o *options) { o.schedule = append([]time.Duration(nil), offsets...) }
}

// WithAnswerLimit sets how many requests of one requester (by MAC) for one VIP are answered per
// second; the rest are counted in the limited metric and left unanswered, and an ARP requester
// over it is dropped by the kernel filter for a second. 0 or less: no limit. Default
// DefaultAnswersPerRequester.
func WithAnswerLimit(perSecond int) Option { return func(o *options) { o.limit = perSecond } }

// WithRefresh makes every announced VIP be announced again every d after its schedule ends,
// for as long as it stays owned. Default 0: no refresh.
func WithRefresh(d time.Duration) Option { return func(o *options) { o.refresh = d } }

// Responder answers ARP and NDP for the owned VIPs on one interface.
type Responder struct {
	ifi   *net.Interface
	opts  options
	owned atomic.Pointer[ownedSet]

	mu         sync.Mutex
	run        *running // nil unless Start is running
	groups     map[netip.Addr]struct{}
	announcing map[netip.Addr]context.CancelFunc
	announceWG sync.WaitGroup
	// pending holds VIPs announced before Start opened the sockets; Start announces them.
	pending map[netip.Addr]struct{}
}

// running holds the sockets of a Start call.
type running struct {
	ctx     context.Context
	arp     *arp.Client
	arpConn *packet.Conn // arp's socket, for its filter
	ns      *packet.Conn // neighbour solicitations are read, and advertisements written, here
	ndp     *ndp.Conn    // holds the solicited-node multicast memberships

	// blocked are the ARP requesters whose requests the filter drops, until when; unblock
	// lifts the next expired block. Both guarded by Responder.mu.
	blocked map[[6]byte]time.Time
	unblock *time.Timer
}

// blockedList returns the blocked requesters.
func (run *running) blockedList() [][6]byte {
	var l [][6]byte
	for mac := range run.blocked {
		l = append(l, mac)
	}
	return l
}

// sendNA writes an advertisement as an IPv6 packet straight onto the link, to dstMAC, from
// the VIP itself — as a host that holds the address answers (tools such as ndisc6 accept only
// that).
// Going through the packet socket rather than an ICMPv6 socket means no zone lookup for a
// link-local destination (which resolves the interface name in whatever network namespace the
// sending thread is in) and no wait for the kernel to resolve the solicitor's address: the
// solicitation's own source MAC is where the answer goes.
func (run *running) sendNA(na *ndp.NeighborAdvertisement, dst netip.Addr, dstMAC net.HardwareAddr) error {
	body, err := ndp.MarshalMessageChecksum(na, na.TargetAddress, dst)
	if err != nil {
		return fmt.Errorf("marshal neighbour advertisement: %w", err)
	}
	_, err = run.ns.WriteTo(ipv6Packet(na.TargetAddress, dst, body), &packet.Addr{HardwareAddr: dstMAC})
	return err
}

// ipv6Packet prepends an IPv6 header (next header ICMPv6, hop limit 255, as NDP requires) to
// an ICMPv6 message whose checksum already covers src and dst.
func ipv6Packet(src, dst netip.Addr, icmp []byte) []byte {
	pkt := make([]byte, ipv6HeaderLen, ipv6HeaderLen+len(icmp))
	pkt[0] = 6 << 4
	binary.BigEndian.PutUint16(pkt[4:6], uint16(len(icmp)))
	pkt[6] = protoICMPv6
	pkt[7] = ndp.HopLimit
	s, d := src.As16(), dst.As16()
	copy(pkt[8:24], s[:])
	copy(pkt[24:40], d[:])
	return append(pkt, icmp...)
}

// macFor is the Ethernet destination for an IPv6 destination: the multicast MAC (33:33 and
// the address's last four bytes) for a multicast address, else the solicitor's MAC.
func macFor(dst netip.Addr, solicitor net.HardwareAddr) net.HardwareAddr {
	if !dst.IsMulticast() {
		return solicitor
	}
	b := dst.As16()
	return net.HardwareAddr{0x33, 0x33, b[12], b[13], b[14], b[15]}
}

// NewResponder returns a Responder for ifi that owns nothing yet. It opens no sockets and
// starts nothing; Start does.
func NewResponder(ifi *net.Interface, opts ...Option) *Responder {
	o := options{schedule: DefaultAnnounceSchedule, limit: DefaultAnswersPerRequester}
	for _, f := range opts {
		f(&o)
	}
	if o.logger == nil {
		o.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	o.logger = o.logger.With("interface", ifi.Name)
	r := &Responder{
		ifi:        ifi,
		opts:       o,
		groups:     map[netip.Addr]struct{}{},
		announcing: map[netip.Addr]context.CancelFunc{},
		pending:    map[netip.Addr]struct{}{},
	}
	empty := ownedSet{}
	r.owned.Store(&empty)
	return r
}

// SetOwned replaces the set of VIPs answered for on this interface. It takes effect for the
// next request read, so a removed VIP is not answered from then on, and its pending
// announcements stop. While running, the solicited-node groups follow the IPv6 VIPs; a failed
// join is logged and retried on the next call.
func (r *Responder) SetOwned(ips []netip.Addr) {
	s := newOwnedSet(ips)
	// Stored under the lock so that concurrent calls install their filters and groups in the
	// order their sets were stored: the last set stored is the one the kernel filters for.
	r.mu.Lock()
	defer r.mu.Unlock()
	r.owned.Store(&s)
	for ip, cancel := range r.announcing {
		if !s.has(ip) {
			cancel()
			delete(r.announcing, ip)
		}
	}
	for ip := range r.pending {
		if !s.has(ip) {
			delete(r.pending, ip)
		}
	}
	if r.run != nil {
		r.syncGroupsLocked(s)
		r.syncFiltersLocked(s)
	}
}

// syncFiltersLocked makes the sockets' kernel filters pass the requests for the VIPs in s.
// Requests already queued were passed by the old filter; decideARP and decideNS still judge
// them against s, so a VIP given up is never answered. One taken over may miss the requests of
// the few microseconds before its filter is in: its announcement follows anyway.
func (r *Responder) syncFiltersLocked(s ownedSet) {
	set := func(c *packet.Conn, what string, prog, fallback []bpf.Instruction) {
		if c == nil {
			return
		}
		err := setFilter(c, prog)
		if err == nil {
			return
		}
		// Never keep a filter that may lack a VIP now owned: pass everything of the kind
		// rather than go silent for it.
		r.opts.logger.Error("set socket filter; passing every request instead", "socket", what, "err", err)
		if err := setFilter(c, fallback); err != nil {
			r.opts.logger.Error("set fallback socket filter", "socket", what, "err", err)
		}
	}
	set(r.run.arpConn, "arp", arpFilter(targetWords(s, IPv4), r.run.blockedList()), arpFilter(nil, nil))
	set(r.run.ns, "neighbour solicitation", solicitationFilter(targetWords(s, IPv6)), solicitationFilter(nil))
}

// blockFor is how long the ARP filter drops the requests of a requester that went over the
// answer limit. Then it is counted again; one that keeps flooding is blocked again after its
// next DefaultAnswersPerRequester answers.
const blockFor = time.Second

// block makes the kernel drop the ARP requests of mac for blockFor: the answer limit alone
// still reads every request of a flood (tens of thousands a second for an owned VIP, which
// the target filter passes), and those reads crowd out other hosts' requests. Up to
// maxBlocked requesters are blocked at a time; past that the limit works in user space alone.
func (r *Responder) block(run *running, mac net.HardwareAddr, now time.Time) {
	if len(mac) != 6 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	key := [6]byte(mac)
	if r.run != run || len(run.blocked) >= maxBlocked {
		return
	}
	if _, ok := run.blocked[key]; ok {
		return // requests read before the filter went in
	}
	if run.blocked == nil {
		run.blocked = map[[6]byte]time.Time{}
	}
	run.blocked[key] = now.Add(blockFor)
	r.opts.metrics.blocked(IPv4)
	r.opts.logger.Warn("requester over the answer limit; dropping its ARP requests for a while", "mac", mac.String(), "for", blockFor)
	r.syncFiltersLocked(*r.owned.Load())
	if run.unblock == nil {
		run.unblock = time.AfterFunc(blockFor, func() { r.unblockExpired(run) })
	}
}

// unblockExpired lifts the blocks whose time is up and waits for the next.
func (r *Responder) unblockExpired(run *running) {
	r.mu.Lock()
	defer r.mu.Unlock()
	run.unblock = nil
	if r.run != run {
		return
	}
	now := time.Now()
	var next time.Time
	for mac, until := range run.blocked {
		if !now.Before(until) {
			delete(run.blocked, mac)
		} else if next.IsZero() || until.Before(next) {
			next = until
		}
	}
	r.syncFiltersLocked(*r.owned.Load())
	if !next.IsZero() {
		run.unblock = time.AfterFunc(next.Sub(now), func() { r.unblockExpired(run) })
	}
}

func setFilter(c *packet.Conn, prog []bpf.Instruction) error {
	raw, err := assembleFilter(prog)
	if err != nil {
		return err
	}
	if err := c.SetBPF(raw); err != nil {
		return fmt.Errorf("attach socket filter: %w", err)
	}
	return nil
}

// syncGroupsLocked joins the solicited-node group of every owned IPv6 VIP and leaves the
// others. Joining matters on real NICs: their multicast filter drops frames for groups nobody
// joined, and the packet socket would never see the solicitation.
func (r *Responder) syncGroupsLocked(s ownedSet) {
	if r.run.ndp == nil {
		return // no IPv6 link-local address: not answering NDP here
	}
	want := map[netip.Addr]struct{}{}
	for ip := range s {
		if ip.Is6() {
			g, err := ndp.SolicitedNodeMulticast(ip)
			if err == nil {
				want[g] = struct{}{}
			}
		}
	}
	for g := range r.groups {
		if _, ok := want[g]; ok {
			continue
		}
		if err := r.run.ndp.LeaveGroup(g); err != nil {
			r.opts.logger.Warn("leave solicited-node group", "group", g, "err", err)
			continue
		}
		delete(r.groups, g)
	}
	for g := range want {
		if _, ok := r.groups[g]; ok {
			continue
		}
		if err := r.run.ndp.JoinGroup(g); err != nil {
			r.opts.logger.Warn("join solicited-node group", "group", g, "err", err)
			continue
		}
		r.groups[g] = struct{}{}
	}
}

// Start opens the sockets on the interface and answers requests until ctx ends. The sockets
// are opened synchronously on the calling goroutine, so they live in the network namespace of
// the calling OS thread. Start returns nil when ctx ends and an error if a socket cannot be
// opened or read. The interface needs an IPv4 address (mdlayher/arp requires one) and an IPv6
// link-local address (the source of advertisements).
func (r *Responder) Start(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	run, err := r.open(ctx)
	if err != nil {
		return err
	}
	r.mu.Lock()
	if r.run != nil {
		r.mu.Unlock()
		run.close()
		return fmt.Errorf("start l2 responder on %s: already running", r.ifi.Name)
	}
	r.run = run
	// The filters open put in were made for the set of that moment; SetOwned may have
	// changed it since.
	r.syncGroupsLocked(*r.owned.Load())
	r.syncFiltersLocked(*r.owned.Load())
	for ip := range r.pending {
		// Owned: SetOwned drops pending VIPs it no longer holds.
		if err := r.announceLocked(run, ip); err != nil {
			r.opts.logger.Warn("announce after start", "ip", ip, "error", err)
		}
		delete(r.pending, ip)
	}
	r.mu.Unlock()

	errc := make(chan error, 2)
	serving := 0
	if run.arp != nil {
		serving++
		go func() { errc <- r.serveARP(run) }()
	}
	if run.ns != nil {
		serving++
		go func() { errc <- r.serveNS(run) }()
	}
	var errs []error
	select {
	case err := <-errc:
		errs = append(errs, err)
	case <-ctx.Done():
	}
	cancel()

	r.mu.Lock()
	r.run = nil
	if run.unblock != nil {
		run.unblock.Stop()
	}
	for ip, stop := range r.announcing {
		stop()
		delete(r.announcing, ip)
	}
	clear(r.groups) // memberships go with the socket
	r.mu.Unlock()
	r.announceWG.Wait()
	run.close() // unblocks the readers
	for range serving - len(errs) {
		errs = append(errs, <-errc)
	}
	return errors.Join(errs...)
}

// open opens what the interface's addresses allow: ARP needs an IPv4 address on it
// (mdlayher/arp answers from it), NDP an IPv6 link-local address (the advertisements' hop
// source). An interface with only one of them is answered on for that family alone, as on
// nodes booted with IPv6 disabled; one with neither is an error.
func (r *Responder) open(ctx context.Context) (*running, error) {
	run := &running{ctx: ctx}
	v4, ll, err := addressFamilies(r.ifi)
	if err != nil {
		return nil, err
	}
	if !v4 && !ll {
		return nil, fmt.Errorf("interface %s has neither an IPv4 address (for ARP) nor an IPv6 link-local address (for NDP)", r.ifi.Name)
	}
	// The filters go in before the sockets are bound, so no request slips past them.
	owned := *r.owned.Load()
	if v4 {
		filter, err := assembleFilter(arpFilter(targetWords(owned, IPv4), nil))
		if err != nil {
			return nil, fmt.Errorf("assemble ARP filter: %w", err)
		}
		// Not arp.Dial: it leaks its socket when the address check fails.
		conn, err := packet.Listen(r.ifi, packet.Raw, etherTypeARP, &packet.Config{Filter: filter})
		if err != nil {
			return nil, fmt.Errorf("open ARP socket on %s: %w", r.ifi.Name, err)
		}
		if run.arp, err = arp.New(r.ifi, conn); err != nil {
			_ = conn.Close()
			return nil, fmt.Errorf("open ARP client on %s: %w", r.ifi.Name, err)
		}
		run.arpConn = conn
		r.growReceiveBuffer(conn, "arp")
	}
	if !ll {
		return run, nil
	}
	filter, err := assembleFilter(solicitationFilter(targetWords(owned, IPv6)))
	if err != nil {
		run.close()
		return nil, fmt.Errorf("assemble neighbour solicitation filter: %w", err)
	}
	if run.ns, err = packet.Listen(r.ifi, packet.Datagram, etherTypeIPv6, &packet.Config{Filter: filter}); err != nil {
		run.close()
		return nil, fmt.Errorf("open IPv6 packet socket on %s: %w", r.ifi.Name, err)
	}
	r.growReceiveBuffer(run.ns, "neighbour solicitation")
	if run.ndp, _, err = ndp.Listen(r.ifi, ndp.LinkLocal); err != nil {
		run.close()
		return nil, fmt.Errorf("open NDP socket on %s: %w", r.ifi.Name, err)
	}
	// Solicitations are read from, and advertisements written to, the packet socket; this one
	// only holds group memberships, so it accepts nothing and its receive queue never fills.
	var none ipv6.ICMPFilter
	none.SetAll(true)
	if err := run.ndp.SetICMPFilter(&none); err != nil {
		run.close()
		return nil, fmt.Errorf("set ICMPv6 filter on %s: %w", r.ifi.Name, err)
	}
	return run, nil
}

// receiveBuffer is the receive buffer asked for on the request sockets. The default (about
// 200 KiB, a few hundred requests) overflows when the speaker is not scheduled for a few
// milliseconds while requests for an owned VIP pour in, and the kernel then drops the
// legitimate ones with the rest; 4 MiB holds about 100 ms of 50,000 requests/s. It is only
// used while requests wait.
const receiveBuffer = 4 << 20

// growReceiveBuffer sets the socket's receive buffer to receiveBuffer: SO_RCVBUFFORCE (the
// speaker has CAP_NET_ADMIN) is not capped by net.core.rmem_max, SO_RCVBUF is. A failure
// keeps the default and is logged: answering works, only less well under a flood.
func (r *Responder) growReceiveBuffer(c *packet.Conn, what string) {
	rc, err := c.SyscallConn()
	if err == nil {
		cerr := rc.Control(func(fd uintptr) {
			err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, receiveBuffer)
			if err != nil {
				err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, receiveBuffer)
			}
		})
		err = errors.Join(err, cerr)
	}
	if err != nil {
		r.opts.logger.Warn("grow socket receive buffer", "socket", what, "err", err)
	}
}

// addressFamilies reports whether ifi has an IPv4 address and an IPv6 link-local address.
func addressFamilies(ifi *net.Interface) (v4, ll bool, err error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return false, false, fmt.Errorf("list addresses of %s: %w", ifi.Name, err)
	}
	for _, a := range addrs {
		p, perr := netip.ParsePrefix(a.String())
		if perr != nil {
			continue
		}
		ip := p.Addr()
		v4 = v4 || ip.Unmap().Is4()
		ll = ll || (ip.Is6() && !ip.Is4In6() && ip.IsLinkLocalUnicast())
	}
	return v4, ll, nil
}

func (run *running) close() {
	if run.arp != nil {
		_ = run.arp.Close()
	}
	if run.ns != nil {
		_ = run.ns.Close()
	}
	if run.ndp != nil {
		_ = run.ndp.Close()
	}
}

func (r *Responder) serveARP(run *running) error {
	limit := newAnswerLimiter(r.opts.limit)
	for {
		req, _, err := run.arp.Read()
		if err != nil {
			if run.ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read ARP on %s: %w", r.ifi.Name, err)
		}
		reply, ok := decideARP(req, r.ifi.HardwareAddr, *r.owned.Load())
		if !ok {
			continue
		}
		if now := time.Now(); !limit.allow(now, req.SenderHardwareAddr, reply.SenderIP) {
			r.opts.metrics.limit(IPv4)
			r.block(run, req.SenderHardwareAddr, now)
			continue
		}
		if err := run.arp.WriteTo(reply, req.SenderHardwareAddr); err != nil {
			r.opts.logger.Warn("send ARP reply", "ip", reply.SenderIP, "err", err)
			continue
		}
		r.opts.metrics.answer(IPv4)
	}
}

func (r *Responder) serveNS(run *running) error {
	limit := newAnswerLimiter(r.opts.limit)
	buf := make([]byte, r.ifi.MTU+ipv6HeaderLen)
	if r.ifi.MTU <= 0 {
		buf = make([]byte, 65536)
	}
	for {
		n, from, err := run.ns.ReadFrom(buf)
		if err != nil {
			if run.ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read neighbour solicitation on %s: %w", r.ifi.Name, err)
		}
		var srcMAC net.HardwareAddr
		if a, ok := from.(*packet.Addr); ok {
			srcMAC = a.HardwareAddr
		}
		s, ok := parseNS(buf[:n], srcMAC)
		if !ok {
			continue
		}
		adv, ok := decideNS(s, r.ifi.HardwareAddr, *r.owned.Load())
		if !ok {
			continue
		}
		if !limit.allow(time.Now(), s.srcMAC, adv.na.TargetAddress) {
			r.opts.metrics.limit(IPv6)
			continue
		}
		if err := run.sendNA(adv.na, adv.dst, macFor(adv.dst, s.srcMAC)); err != nil {
			r.opts.logger.Warn("send neighbour advertisement", "ip", adv.na.TargetAddress, "err", err)
			continue
		}
		r.opts.metrics.answer(IPv6)
	}
}

// Announce tells the LAN that this interface now answers for ip: gratuitous ARP in request and
// reply form (sender = target = ip) for IPv4, an unsolicited advertisement with Override to
// ff02::1 for IPv6. The first is sent before Announce returns, the rest follow the announce
// schedule (and the refresh, if set) until ip is no longer owned or Start ends. A new Announce
// for the same ip restarts its schedule. Before Start has opened the sockets the announcement
// is kept and sent when it has (if ip is still owned then). It fails if ip is not owned.
func (r *Responder) Announce(ip netip.Addr) error {
	ip = normalize(ip)
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.owned.Load().has(ip) {
		return fmt.Errorf("announce %s on %s: not owned", ip, r.ifi.Name)
	}
	if r.run == nil {
		// A responder the speaker has just started may not have opened its sockets yet;
		// the takeover must not be lost to that race, so Start sends it.
		r.pending[ip] = struct{}{}
		return nil
	}
	return r.announceLocked(r.run, ip)
}

// announceLocked sends the first announcement of ip and schedules the rest; r.mu is held.
func (r *Responder) announceLocked(run *running, ip netip.Addr) error {
	if stop, ok := r.announcing[ip]; ok {
		stop()
	}
	if err := r.sendAnnouncement(run, ip); err != nil {
		return fmt.Errorf("announce %s on %s: %w", ip, r.ifi.Name, err)
	}
	r.opts.metrics.takeover(familyOf(ip))

	ctx, cancel := context.WithCancel(run.ctx)
	r.announcing[ip] = cancel
	r.announceWG.Add(1)
	go func() {
		defer r.announceWG.Done()
		r.repeat(ctx, run, ip)
	}()
	return nil
}

// repeat sends the rest of the schedule and then the refreshes. The first offset was sent by
// Announce already.
func (r *Responder) repeat(ctx context.Context, run *running, ip netip.Addr) {
	start := time.Now()
	next := func(i int) (time.Duration, bool) {
		if i < len(r.opts.schedule) {
			return r.opts.schedule[i], true
		}
		if r.opts.refresh <= 0 {
			return 0, false
		}
		last := time.Duration(0)
		if n := len(r.opts.schedule); n > 0 {
			last = r.opts.schedule[n-1]
		}
		return last + time.Duration(i-len(r.opts.schedule)+1)*r.opts.refresh, true
	}
	for i := 1; ; i++ {
		at, ok := next(i)
		if !ok {
			return
		}
		t := time.NewTimer(time.Until(start.Add(at)))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if !r.owned.Load().has(ip) {
			return
		}
		if err := r.sendAnnouncement(run, ip); err != nil && ctx.Err() == nil {
			r.opts.logger.Warn("repeat announcement", "ip", ip, "err", err)
		}
	}
}

func (r *Responder) sendAnnouncement(run *running, ip netip.Addr) error {
	mac := r.ifi.HardwareAddr
	if ip.Is4() && run.arp == nil || !ip.Is4() && run.ns == nil {
		return fmt.Errorf("%s has no %s address to answer from", r.ifi.Name, familyOf(ip))
	}
	if ip.Is4() {
		for _, op := range []arp.Operation{arp.OperationRequest, arp.OperationReply} {
			p, err := arp.NewPacket(op, mac, ip, ethernet.Broadcast, ip)
			if err != nil {
				return fmt.Errorf("build gratuitous ARP: %w", err)
			}
			if err := run.arp.WriteTo(p, ethernet.Broadcast); err != nil {
				return fmt.Errorf("send gratuitous ARP %s: %w", op, err)
			}
		}
		return nil
	}
	na := &ndp.NeighborAdvertisement{
		Override:      true,
		TargetAddress: ip,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: mac}},
	}
	if err := run.sendNA(na, allNodes, macFor(allNodes, nil)); err != nil {
		return fmt.Errorf("send unsolicited neighbour advertisement: %w", err)
	}
	return nil
}
