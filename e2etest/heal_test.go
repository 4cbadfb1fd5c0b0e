package e2etest

// Partitions that heal, with three VIPs so that every node is the home of one: within 2 s of
// the cut node's link returning, each VIP is answered by one MAC, its home's, and by no other
// for the rest of the window; after those 2 s no node other than the VIP's owner before the
// heal and its owner after announces it (within them such a stranger is reported, and fails the
// test with IRONLB_HEAL_STRICT=1); and each Service's ServiceL2Status names the owner by the end
// of the window. Two ways of cutting: the node's LAN link only (its speaker keeps the API
// server, so both sides write statuses), and the link and the API.
//
// IP plan: seed 000's pool 192.168.50.50-52 on the lab LAN; Services heal-a, heal-b, heal-c.

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ironlb/ironlb/controller/app/apptest"
	"github.com/ironlb/ironlb/e2etest/cluster"
	"github.com/ironlb/ironlb/internal/testenv"
)

// healRuns is how many partitions TestL2Heal makes for each way of cutting: IRONLB_HEAL_RUNS,
// default 1.
func healRuns() int {
	n := 1
	if v := os.Getenv("IRONLB_HEAL_RUNS"); v != "" {
		if _, err := fmt.Sscan(v, &n); err != nil || n < 1 {
			n = 1
		}
	}
	return n
}

// healWindow is how long after each heal TestL2Heal watches: IRONLB_HEAL_WINDOW, default 10s
// (the reliability issue's 30 s with IRONLB_HEAL_WINDOW=30s).
func healWindow() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("IRONLB_HEAL_WINDOW")); err == nil && d > 0 {
		return d
	}
	return 10 * time.Second
}

type healVIP struct {
	svc   string
	ip    string
	home  string // node name
	watch *cluster.ARPWatch
}

func TestL2Heal(t *testing.T) {
	l := startL2Lab(t, "ilbheal")
	ctx := context.Background()
	if err := env.EnsureNamespace(ctx, configNS); err != nil {
		t.Fatal(err)
	}
	createNodes(t, l)
	apptest.Start(t, env.Config, configNS)
	apply(t, seedFile(t, "000-first-pool.yaml"))
	apply(t, "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l2, namespace: metallb-system}\n")
	ns, err := env.Namespace(ctx, "heal")
	if err != nil {
		t.Fatal(err)
	}
	var vips []*healVIP
	for _, name := range []string{"heal-a", "heal-b", "heal-c"} {
		apply(t, fmt.Sprintf("apiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: %s}\nspec: {type: LoadBalancer, ports: [{port: 80}]}\n", name, ns))
		endpointsOn(t, ns, name, "node1", "node2", "node3")
		vips = append(vips, &healVIP{svc: name, ip: waitIPs(t, ns, name, 1)[0]})
	}
	homes := map[string]bool{}
	for _, v := range vips {
		v.home = l.soleAnswerer(t, v.ip, 30*time.Second)
		homes[v.home] = true
		w, err := cluster.WatchARP(l.Client, netip.MustParseAddr(v.ip), 20*time.Millisecond)
		if err != nil {
			t.Fatalf("watch ARP from the client: %v", err)
		}
		t.Cleanup(w.Close)
		v.watch = w
	}
	if len(homes) != 3 {
		t.Fatalf("homes %v: want every node home of one VIP", homes)
	}

	for _, apiToo := range []bool{false, true} {
		name := "link cut, API kept"
		if apiToo {
			name = "link and API cut"
		}
		t.Run(name, func(t *testing.T) {
			for run := range healRuns() {
				healOnce(t, l, ns, vips, vips[run%len(vips)].home, apiToo)
			}
		})
	}
}

func healOnce(t *testing.T, l *l2Lab, ns string, vips []*healVIP, cutName string, apiToo bool) {
	t.Helper()
	n := l.Node(cutName)
	cutMAC := strings.ToLower(n.MAC.String())
	for _, v := range vips {
		if got := l.soleAnswerer(t, v.ip, 30*time.Second); got != v.home {
			t.Fatalf("before the cut %s is answered by %s, want its home %s", v.svc, got, v.home)
		}
	}
	if err := l.CutLink(n); err != nil {
		t.Fatal(err)
	}
	if apiToo {
		l.NodeAPIDown(n)
	}
	// The LAN side settles: every VIP answered by one MAC (the cut node's VIP by another node).
	pre := map[string]string{}
	testenv.Eventually(t, 20*time.Second, "one answerer per VIP on the LAN side", func() (bool, string) {
		now := time.Now()
		for _, v := range vips {
			macs := map[string]bool{}
			ans := v.watch.Answers(now.Add(-500*time.Millisecond), now)
			for _, a := range ans {
				for mac := range a {
					macs[mac] = true
				}
			}
			if len(ans) < 5 || len(macs) != 1 || macs[cutMAC] {
				return false, fmt.Sprintf("%s answered by %v", v.svc, macs)
			}
			for mac := range macs {
				pre[v.svc] = l.NodeByMAC(mac)
			}
		}
		return true, ""
	})
	for _, v := range vips {
		node, _ := statusNode(t, ns, v.svc)
		t.Logf("before the heal: %s (%s, home %s) answered by %s, status %q", v.svc, v.ip, v.home, pre[v.svc], node)
	}
	if err := l.RestoreLink(n); err != nil {
		t.Fatal(err)
	}
	if apiToo {
		if err := l.NodeAPIUp(n); err != nil {
			t.Fatal(err)
		}
	}
	healed := time.Now()
	end := healed.Add(healWindow())
	// The statuses through the window (the observation window itself, not a sync).
	type sample struct {
		at   time.Duration
		node string
	}
	statuses := map[string][]sample{}
	for time.Now().Before(end) {
		for _, v := range vips {
			node, _ := statusNode(t, ns, v.svc)
			s := statuses[v.svc]
			if len(s) == 0 || s[len(s)-1].node != node {
				statuses[v.svc] = append(s, sample{time.Since(healed).Round(time.Millisecond), node})
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, v := range vips {
		homeMAC := strings.ToLower(l.Node(v.home).MAC.String())
		st := readHeal(v.watch, healed, end, homeMAC)
		allowed := map[string]bool{v.home: true, pre[v.svc]: true}
		var seen, garps []string
		for _, a := range v.watch.Answers(healed, end) {
			for mac := range a {
				if nm := l.NodeByMAC(mac); !slices.Contains(seen, nm) {
					seen = append(seen, nm)
				}
			}
		}
		// Strangers: a node neither the owner before the heal nor after. Within the first 2s
		// they are the memberlist views still merging (see docs/reliability.md); the answers
		// then are covered by the 2s bound below, and the strangers are reported. After 2s
		// a stranger's announcement fails the test; IRONLB_HEAL_STRICT=1 fails on any.
		var strangers, late []string
		since := healed
		for {
			at, mac, ok := v.watch.First(since, true, "", "")
			if !ok || at.After(end) {
				break
			}
			nm := l.NodeByMAC(mac)
			garps = append(garps, fmt.Sprintf("%s@%v", nm, at.Sub(healed).Round(time.Millisecond)))
			if !allowed[nm] {
				what := fmt.Sprintf("announced by %s at %v", nm, at.Sub(healed).Round(time.Millisecond))
				strangers = append(strangers, what)
				if at.Sub(healed) > 2*time.Second {
					late = append(late, what)
				}
			}
			since = at.Add(time.Microsecond)
		}
		for _, nm := range seen {
			if !allowed[nm] {
				strangers = append(strangers, "answered by "+nm)
			}
		}
		t.Logf("%s (home %s, before %s): %s; answered by %v; announced %v; status %v", v.svc, v.home, pre[v.svc], st, seen, garps, statuses[v.svc])
		if st.singleAfter > 2*time.Second {
			t.Errorf("%s: more than one MAC, or not its home %s, answered until %v after the heal (want within 2s)", v.svc, v.home, st.singleAfter)
		}
		if st.unanswered > st.requests/10 {
			t.Errorf("%s: %d of %d requests unanswered", v.svc, st.unanswered, st.requests)
		}
		switch {
		case len(late) > 0:
			t.Errorf("%s: more than 2s after the heal, neither its owner before the heal (%s) nor after (%s): %v", v.svc, pre[v.svc], v.home, late)
		case len(strangers) > 0 && os.Getenv("IRONLB_HEAL_STRICT") != "":
			t.Errorf("%s: neither its owner before the heal (%s) nor after (%s): %v", v.svc, pre[v.svc], v.home, strangers)
		case len(strangers) > 0:
			t.Logf("%s: STRANGER within 2s of the heal, neither its owner before (%s) nor after (%s): %v", v.svc, pre[v.svc], v.home, strangers)
		}
		if s := statuses[v.svc]; len(s) == 0 || s[len(s)-1].node != v.home {
			t.Errorf("%s: at the end of the window its ServiceL2Status names %v, want %s", v.svc, s, v.home)
		}
	}
}
