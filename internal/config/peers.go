package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/api/v1beta2"
)

// maxPeerPort is the CRD's upper bound for spec.peerPort (MetalLB's).
const maxPeerPort = 16384

func (c *compiler) bfdProfiles() {
	raw := byName(&c.ps, KindBFDProfile, c.snap.BFDProfiles, func(b *v1beta1.BFDProfile) string { return b.Name })
	for _, b := range raw {
		at := ref(KindBFDProfile, b.Name, "")
		ms := func(field string, v *uint32, def time.Duration) time.Duration {
			if v == nil {
				return def
			}
			if *v < 10 || *v > 60000 {
				c.ps.invalid(at.field(field), "%d is outside 10-60000 (milliseconds): pick a value in that range", *v)
				return def
			}
			return time.Duration(*v) * time.Millisecond
		}
		num := func(field string, v *uint32, lo, hi, def uint32) uint32 {
			if v == nil {
				return def
			}
			if *v < lo || *v > hi {
				c.ps.invalid(at.field(field), "%d is outside %d-%d: pick a value in that range", *v, lo, hi)
				return def
			}
			return *v
		}
		p := &BFDProfile{
			Name:             b.Name,
			ReceiveInterval:  ms("spec.receiveInterval", b.Spec.ReceiveInterval, DefaultBFDReceiveInterval),
			TransmitInterval: ms("spec.transmitInterval", b.Spec.TransmitInterval, DefaultBFDTransmitInterval),
			DetectMultiplier: num("spec.detectMultiplier", b.Spec.DetectMultiplier, 2, 255, DefaultBFDDetectMultiplier),
			EchoInterval:     ms("spec.echoInterval", b.Spec.EchoInterval, DefaultBFDEchoInterval),
			EchoMode:         b.Spec.EchoMode != nil && *b.Spec.EchoMode,
			PassiveMode:      b.Spec.PassiveMode != nil && *b.Spec.PassiveMode,
			MinimumTTL:       num("spec.minimumTtl", b.Spec.MinimumTTL, 1, 254, DefaultBFDMinimumTTL),
		}
		c.cfg.BFDProfiles = append(c.cfg.BFDProfiles, p)
	}
}

// communities collects the aliases of every Community object. Alias names must be unique
// within an object and across objects; on a duplicate, the object later by name (or the later
// entry) is reported and the first definition kept.
func (c *compiler) communities() {
	raw := byName(&c.ps, KindCommunity, c.snap.Communities, func(o *v1beta1.Community) string { return o.Name })
	defined := map[string]ObjectRef{}
	for _, o := range raw {
		for i, a := range o.Spec.Communities {
			at := ref(KindCommunity, o.Name, "spec.communities[%d]", i)
			if prev, dup := defined[a.Name]; dup {
				at = at.field("%s.name", at.Field)
				if prev.Name == o.Name {
					c.ps.add(ProblemConflict, at, nil, "alias %q is already defined in %s: alias names must be unique; rename or remove one of them", a.Name, prev.Field)
				} else {
					c.ps.add(ProblemConflict, at, []ObjectRef{prev}, "alias %q is already defined in %s: alias names must be unique across Community objects; rename or remove one of them", a.Name, prev)
				}
				continue
			}
			defined[a.Name] = at.field("%s.name", at.Field)
			v, err := ParseCommunity(string(a.Value))
			if err != nil {
				c.ps.invalid(at.field("%s.value", at.Field), "%v", err)
				c.badAliases[a.Name] = true
				continue
			}
			c.aliases[a.Name] = v
		}
	}
}

func (c *compiler) peers() {
	raw := byName(&c.ps, KindBGPPeer, c.snap.Peers, func(p *v1beta2.BGPPeer) string { return p.Name })
	for _, p := range raw {
		c.cfg.Peers = append(c.cfg.Peers, c.peer(p))
	}
}

func (c *compiler) peer(p *v1beta2.BGPPeer) *Peer {
	at := ref(KindBGPPeer, p.Name, "")
	sp := &p.Spec
	out := &Peer{
		Name:                   p.Name,
		MyASN:                  sp.MyASN,
		ASN:                    sp.ASN,
		Interface:              sp.Interface,
		Port:                   sp.Port,
		EBGPMultiHop:           sp.EBGPMultiHop,
		VRF:                    sp.VRFName,
		EnableGracefulRestart:  sp.EnableGracefulRestart,
		DisableMP:              sp.DisableMP,
		DualStackAddressFamily: sp.DualStackAddressFamily,
	}

	if sp.MyASN == 0 {
		c.ps.invalid(at.field("spec.myASN"), "is missing: set the local AS number")
	}
	switch sp.DynamicASN {
	case "":
	case v1beta2.InternalASNMode:
		out.DynamicASN = DynamicASNInternal
	case v1beta2.ExternalASNMode:
		out.DynamicASN = DynamicASNExternal
	default:
		c.ps.invalid(at.field("spec.dynamicASN"), "%q is not a dynamicASN mode: use internal or external", sp.DynamicASN)
	}
	switch {
	case sp.ASN != 0 && sp.DynamicASN != "":
		c.ps.invalid(at.field("spec.dynamicASN"), "is set together with peerASN: set only one of them")
	case sp.ASN == 0 && sp.DynamicASN == "":
		c.ps.invalid(at.field("spec.peerASN"), "is missing: set peerASN, or dynamicASN (internal or external)")
	}
	if sp.EBGPMultiHop && sp.ASN != 0 && sp.ASN == sp.MyASN {
		c.ps.invalid(at.field("spec.ebgpMultiHop"), "is set for an iBGP peer (peerASN equals myASN %d): remove ebgpMultiHop", sp.MyASN)
	}

	switch {
	case sp.Address != "" && sp.Interface != "":
		c.ps.invalid(at.field("spec.peerAddress"), "is set together with interface: set peerAddress, or interface for BGP unnumbered, not both")
	case sp.Address == "" && sp.Interface == "":
		c.ps.invalid(at.field("spec.peerAddress"), "is missing: set peerAddress, or interface for BGP unnumbered")
	case sp.Address != "":
		out.Addr = c.peerIP(at.field("spec.peerAddress"), sp.Address)
	case strings.ContainsAny(sp.Interface, "\n\r"):
		c.ps.invalid(at.field("spec.interface"), "%q contains a line break: write the interface name alone", sp.Interface)
	}
	if sp.SrcAddress != "" {
		out.SrcAddr = c.peerIP(at.field("spec.sourceAddress"), sp.SrcAddress)
	}
	if sp.RouterID != "" {
		if id := c.peerIP(at.field("spec.routerID"), sp.RouterID); id.IsValid() {
			if id.Is4() {
				out.RouterID = id
			} else {
				c.ps.invalid(at.field("spec.routerID"), "%s is not an IPv4 address: BGP router IDs are 32 bits; write an IPv4 address", sp.RouterID)
			}
		}
	}
	switch {
	case sp.Port == 0:
		out.Port = DefaultPeerPort
	case sp.Port > maxPeerPort:
		c.ps.invalid(at.field("spec.peerPort"), "%d is above %d: use a port from 1 to %d (default 179)", sp.Port, maxPeerPort, maxPeerPort)
	}

	out.HoldTime, out.KeepaliveTime = c.peerTimers(at, sp.HoldTime, sp.KeepaliveTime)
	if d := sp.ConnectTime; d != nil {
		if d.Duration < time.Second || d.Duration > 65535*time.Second {
			c.ps.invalid(at.field("spec.connectTime"), "%s is outside 1s-65535s: pick a duration in that range", d.Duration)
		} else {
			out.ConnectTime = d.Duration
		}
	}
	out.NodeSelectors = parseSelectors(&c.ps, at.field("spec.nodeSelectors"), sp.NodeSelectors)
	out.Password = c.peerPassword(at, p)
	if strings.ContainsAny(sp.VRFName, "\n\r") {
		c.ps.invalid(at.field("spec.vrf"), "%q contains a line break: write the VRF name alone", sp.VRFName)
	}
	if sp.BFDProfile != "" {
		out.BFDProfile = c.cfg.BFDProfile(sp.BFDProfile)
		if out.BFDProfile == nil {
			c.ps.add(ProblemMissingReference, at.field("spec.bfdProfile"), []ObjectRef{ref(KindBFDProfile, sp.BFDProfile, "")},
				"names BFDProfile %q, which does not exist: create the profile or remove bfdProfile", sp.BFDProfile)
		}
	}
	return out
}

// peerIP parses an address field of a BGPPeer. An IPv4-mapped IPv6 address is taken as the IPv4
// address, as MetalLB's net.ParseIP does; zones are refused.
func (c *compiler) peerIP(at ObjectRef, s string) netip.Addr {
	a, err := netip.ParseAddr(s)
	if err != nil {
		c.ps.invalid(at, "%q is not an IP address: write an address such as 192.168.1.1 or fc00::1", s)
		return netip.Addr{}
	}
	if a.Zone() != "" {
		c.ps.invalid(at, "%q has an IPv6 zone: remove the %%zone (use interface for BGP unnumbered over a link-local address)", s)
		return netip.Addr{}
	}
	return a.Unmap()
}

// peerTimers applies MetalLB's timer rules: hold time 90s by default; with only one of the two
// set, the other is derived with factor 3; the hold time is 0 (keepalives off) or at least 3s;
// the keepalive time is not above the hold time.
func (c *compiler) peerTimers(at ObjectRef, hold, keepalive *metav1.Duration) (time.Duration, time.Duration) {
	var h, k time.Duration
	switch {
	case hold == nil && keepalive == nil:
		return DefaultHoldTime, DefaultHoldTime / 3
	case keepalive == nil:
		h = hold.Duration
		k = h / 3
	case hold == nil:
		k = keepalive.Duration
		h = 3 * k
	default:
		h, k = hold.Duration, keepalive.Duration
	}
	ok := true
	if keepalive != nil && k < 0 {
		c.ps.invalid(at.field("spec.keepaliveTime"), "%s is negative: use 0s (keepalives off) or a positive duration", k)
		ok = false
	}
	if h < 0 || (h != 0 && h < 3*time.Second) {
		if hold != nil {
			c.ps.invalid(at.field("spec.holdTime"), "%s must be 0s (keepalives off) or at least 3s", h)
		} else if ok {
			c.ps.invalid(at.field("spec.keepaliveTime"), "%s alone makes holdTime 3 x %s = %s, which must be 0s or at least 3s: set keepaliveTime to 0s or at least 1s, or set holdTime too", k, k, h)
		}
		ok = false
	}
	if ok && hold != nil && keepalive != nil && k > h {
		c.ps.invalid(at.field("spec.keepaliveTime"), "%s is greater than holdTime %s: set keepaliveTime to at most holdTime (a third of it is usual)", k, h)
		ok = false
	}
	if !ok {
		return DefaultHoldTime, DefaultHoldTime / 3
	}
	return h, k
}

// peerPassword returns the TCP MD5 password from spec.password or the passwordSecret, which
// must be a Secret of type kubernetes.io/basic-auth in the BGPPeer's namespace with the password
// under the key "password".
func (c *compiler) peerPassword(at ObjectRef, p *v1beta2.BGPPeer) string {
	sp := &p.Spec
	password := sp.Password
	field := at.field("spec.password")
	if sr := sp.PasswordSecret; sr != nil && sr.Name != "" {
		if sp.Password != "" {
			c.ps.invalid(field, "is set together with passwordSecret: keep passwordSecret and remove password")
			return ""
		}
		field = at.field("spec.passwordSecret.name")
		if sr.Namespace != "" && p.Namespace != "" && sr.Namespace != p.Namespace {
			c.ps.invalid(at.field("spec.passwordSecret.namespace"), "%q is not the BGPPeer's namespace %q: the Secret must be in the BGPPeer's namespace; move it there and remove namespace",
				sr.Namespace, p.Namespace)
			return ""
		}
		var err error
		password, err = secretPassword(c.snap.Secrets, sr.Name)
		if err != nil {
			t := ProblemInvalid
			if _, found := c.snap.Secrets[sr.Name]; !found {
				t = ProblemMissingReference
			}
			c.ps.add(t, field, []ObjectRef{ref(KindSecret, sr.Name, "")}, "%v", err)
			return ""
		}
	}
	if strings.ContainsAny(password, "\n\r") {
		c.ps.invalid(field, "the password contains a line break: remove it")
		return ""
	}
	return password
}

func secretPassword(secrets map[string]corev1.Secret, name string) (string, error) {
	s, ok := secrets[name]
	if !ok {
		return "", fmt.Errorf("names Secret %q, which does not exist in the BGPPeer's namespace: create a Secret of type %s there with the password under the key \"password\"", name, corev1.SecretTypeBasicAuth)
	}
	if s.Type != corev1.SecretTypeBasicAuth {
		return "", fmt.Errorf("names Secret %q of type %q: the Secret must be of type %s with the password under the key \"password\"; recreate it with that type", name, s.Type, corev1.SecretTypeBasicAuth)
	}
	if v, ok := s.Data[corev1.BasicAuthPasswordKey]; ok {
		return string(v), nil
	}
	if v, ok := s.StringData[corev1.BasicAuthPasswordKey]; ok {
		return v, nil
	}
	return "", fmt.Errorf("names Secret %q, which has no \"password\" key: put the password under the key \"password\"", name)
}

// duplicatePeers reports peers that would open the same session: the same address (or
// interface), port and VRF on nodes their nodeSelectors may both match.
func (c *compiler) duplicatePeers() {
	type key struct {
		target string
		port   uint16
		vrf    string
	}
	groups := map[key][]*Peer{}
	for _, p := range c.cfg.Peers {
		target := p.Addr.String()
		if !p.Addr.IsValid() {
			if p.Interface == "" {
				continue // reported already
			}
			target = "interface " + p.Interface
		}
		k := key{target, p.Port, p.VRF}
		for _, prev := range groups[k] {
			if !selectorListsMayOverlap(prev.NodeSelectors, p.NodeSelectors) {
				continue
			}
			field := "spec.peerAddress"
			if !p.Addr.IsValid() {
				field = "spec.interface"
			}
			vrf := "the default VRF"
			if p.VRF != "" {
				vrf = fmt.Sprintf("VRF %q", p.VRF)
			}
			c.ps.add(ProblemConflict, ref(KindBGPPeer, p.Name, field), []ObjectRef{ref(KindBGPPeer, prev.Name, field)},
				"%s port %d in %s is also BGPPeer %q's, and their nodeSelectors may select the same node: remove one of the peers or make their nodeSelectors disjoint",
				target, p.Port, vrf, prev.Name)
			break
		}
		groups[k] = append(groups[k], p)
	}
}

// ReferencedBFDProfiles maps each BFD profile name to the sorted names of the BGPPeers using it,
// read straight from the snapshot (it works on snapshots that do not compile). A webhook refuses
// to delete a profile that is in the map.
func ReferencedBFDProfiles(s Snapshot) map[string][]string {
	out := map[string][]string{}
	for _, p := range s.Peers {
		if name := p.Spec.BFDProfile; name != "" {
			out[name] = append(out[name], p.Name)
		}
	}
	for name, peers := range out {
		slices.Sort(peers)
		out[name] = slices.Compact(peers)
	}
	return out
}
