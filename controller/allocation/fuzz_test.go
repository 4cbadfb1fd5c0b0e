package allocation

import (
	"errors"
	"strings"
	"testing"
)

// Which of FuzzRequestAnnotations' values are set on the Service: a bit per value, since an
// annotation set to "" differs from no annotation.
const (
	setPool = 1 << iota
	setLegacyPool
	setShared
	setLegacyShared
	setIPs
	setLegacyIPs
	setLBIP
)

// FuzzRequestAnnotations fuzzes the values of the address-pool, allow-shared-ip and
// loadBalancerIPs annotations under both prefixes, and spec.loadBalancerIP, through Request.
// Property: Request never panics; an error is a *RequestError with a known reason whose message
// names an annotation (or spec.loadBalancerIP) the Service sets; an accepted request holds at
// most two valid, unzoned, unmapped IPs of different families, and the pool and sharing key of
// the annotation that is set (metallb.io/ first), trimmed.
func FuzzRequestAnnotations(f *testing.F) {
	all := setPool | setLegacyPool | setShared | setLegacyShared | setIPs | setLegacyIPs | setLBIP
	for _, s := range []struct {
		set                                           uint8
		pool, oldPool, shared, oldShared, ips, oldIPs string
		lbIP                                          string
	}{
		{0, "", "", "", "", "", "", ""},
		{setPool | setShared | setIPs, "first-pool", "", "key", "", "192.168.10.5,fc00::5", "", ""},
		{setLegacyPool | setLegacyShared | setLegacyIPs, "", "old-pool", "", "old-key", "", "192.168.10.5", ""},
		{setPool | setLegacyPool, " p ", "p", "", "", "", "", ""},
		{setPool | setLegacyPool, "p", "q", "", "", "", "", ""},
		{setIPs | setLegacyIPs, "", "", "", "", "10.0.0.1", "10.0.0.2", ""},
		{setIPs, "", "", "", "", "10.0.0.1,10.0.0.2", "", ""},
		{setIPs, "", "", "", "", "10.0.0.1,fc00::1,fc00::2", "", ""},
		{setIPs, "", "", "", "", "fe80::1%eth0", "", ""},
		{setIPs, "", "", "", "", "::ffff:10.0.0.1, fc00::1", "", ""},
		{setIPs, "", "", "", "", ",", "", ""},
		{setIPs, "", "", "", "", "   ", "", ""},
		{setIPs | setLBIP, "", "", "", "", "10.0.0.1", "", "10.0.0.1"},
		{setLBIP, "", "", "", "", "", "", "10.0.0.7"},
		{setLBIP, "", "", "", "", "", "", "not-an-ip"},
		{setLBIP, "", "", "", "", "", "", "::ffff:10.0.0.7"},
		{uint8(all), "p", "p", "k", "k ", "fc00::9", "fc00::9", ""},
	} {
		f.Add(s.set, s.pool, s.oldPool, s.shared, s.oldShared, s.ips, s.oldIPs, s.lbIP)
	}

	f.Fuzz(func(t *testing.T, set uint8, pool, oldPool, shared, oldShared, ips, oldIPs, lbIP string) {
		svc := baseService()
		svc.Annotations = map[string]string{}
		put := func(bit uint8, key, v string) {
			if set&bit != 0 {
				svc.Annotations[key] = v
			}
		}
		put(setPool, prefix+"address-pool", pool)
		put(setLegacyPool, legacyPrefix+"address-pool", oldPool)
		put(setShared, prefix+"allow-shared-ip", shared)
		put(setLegacyShared, legacyPrefix+"allow-shared-ip", oldShared)
		put(setIPs, prefix+"loadBalancerIPs", ips)
		put(setLegacyIPs, legacyPrefix+"loadBalancerIPs", oldIPs)
		if set&setLBIP != 0 {
			svc.Spec.LoadBalancerIP = lbIP
		}

		req, err := Request(svc, nil)
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("Request error %v (%T) is not a *RequestError", err, err)
			}
			if re.Reason != reasonConflicting && re.Reason != reasonInvalid {
				t.Fatalf("RequestError reason %q, want %s or %s", re.Reason, reasonConflicting, reasonInvalid)
			}
			if re.Msg == "" || err.Error() != re.Msg {
				t.Fatalf("RequestError message %q, Error() %q: want the same non-empty text", re.Msg, err.Error())
			}
			named := svc.Spec.LoadBalancerIP != "" && strings.Contains(re.Msg, "spec.loadBalancerIP")
			for key := range svc.Annotations {
				named = named || strings.Contains(re.Msg, key)
			}
			if !named {
				t.Fatalf("error %q names none of the annotations %v or spec.loadBalancerIP %q the Service sets", re.Msg, svc.Annotations, svc.Spec.LoadBalancerIP)
			}
			return
		}

		ipsOf := req.RequestedIPs
		if len(ipsOf) > 2 || len(ipsOf) == 2 && ipsOf[0].Is4() == ipsOf[1].Is4() {
			t.Fatalf("accepted %v: want at most one IPv4 and one IPv6 address", ipsOf)
		}
		for _, ip := range ipsOf {
			if !ip.IsValid() || ip.Zone() != "" || ip.Is4In6() {
				t.Fatalf("accepted address %v: want valid, unzoned, unmapped", ip)
			}
		}
		for _, a := range []struct {
			name, got string
		}{{"address-pool", req.RequestedPool}, {"allow-shared-ip", req.SharingKey}} {
			v, ok := svc.Annotations[prefix+a.name]
			old, oldOK := svc.Annotations[legacyPrefix+a.name]
			if ok && oldOK && strings.TrimSpace(v) != strings.TrimSpace(old) {
				t.Fatalf("accepted disagreeing %s annotations %q and %q", a.name, v, old)
			}
			if !ok {
				v = old
			}
			if want := strings.TrimSpace(v); a.got != want {
				t.Fatalf("%s gave %q, want %q", a.name, a.got, want)
			}
		}
	})
}
