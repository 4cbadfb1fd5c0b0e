package lbstatus

import (
	"cmp"
	"regexp"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ironlb/ironlb/api/v1beta1"
	"github.com/ironlb/ironlb/internal/config"
)

// AnnotationPool is where the controller records the pool a Service's IPs come from.
const AnnotationPool = "metallb.io/ip-allocated-from-pool"

// ReasonAnnouncing is the reason of the speaker's Event when a node starts announcing a Service
// (speaker/l2announce.ReasonAnnouncing).
const ReasonAnnouncing = "Announcing"

// announcingNote matches the speaker's note, "announcing <IPs> from <node> on <interfaces>"
// (speaker/l2announce.AnnouncingFormat; a test keeps the two in step).
var announcingNote = regexp.MustCompile(`^announcing (\S+) from (\S+) on `)

// Snapshot is what Build reads.
type Snapshot struct {
	// Services are the Services to show; only the LoadBalancer ones of LBClass are.
	Services []corev1.Service
	// LBClass is the spec.loadBalancerClass ironlb serves (its --lb-class); "" serves Services
	// without one. Services of another class belong to another load balancer and are left out.
	LBClass     string
	L2Statuses  []v1beta1.ServiceL2Status
	BGPStatuses []v1beta1.ServiceBGPStatus
	// Events are the Announcing Events of the Services' namespaces (others are ignored).
	Events []corev1.Event
	// Config tells the pools' modes for Services nobody announces; nil when it could not be
	// read or compiled.
	Config *config.Config
}

// Mode is how a Service is announced.
type Mode string

// Modes.
const (
	ModeL2  Mode = "L2"
	ModeBGP Mode = "BGP"
)

// Entry is one Service's status.
type Entry struct {
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	IPs       []string `json:"ips"`
	Pool      string   `json:"pool,omitempty"`
	// Modes are the modes the Service is announced in now, or, when nobody announces it, the
	// modes its pool is configured for (Announced false).
	Modes     []Mode `json:"modes"`
	Announced bool   `json:"announced"`
	L2        []L2   `json:"l2,omitempty"`
	BGP       []BGP  `json:"bgp,omitempty"`
	// Since is when the current announcement began (the earliest of the status objects).
	Since *time.Time `json:"since,omitempty"`
	// LastFailover is the latest change of announcing node seen; nil when none is recorded.
	LastFailover *Failover `json:"lastFailover,omitempty"`
}

// L2 is a node answering ARP/NDP for the Service.
type L2 struct {
	Node       string    `json:"node"`
	Interfaces []string  `json:"interfaces"`
	Since      time.Time `json:"since"`
	Object     string    `json:"object"`
}

// BGP is a node advertising the Service's routes.
type BGP struct {
	Node   string    `json:"node"`
	Peers  []string  `json:"peers"`
	Since  time.Time `json:"since"`
	Object string    `json:"object"`
}

// Failover is a change of the announcing node.
type Failover struct {
	From string    `json:"from"`
	To   string    `json:"to"`
	At   time.Time `json:"at"`
}

// Build turns the snapshot into one Entry per LoadBalancer Service, sorted by namespace and name.
func Build(s Snapshot) []Entry {
	key := func(ns, name string) types.NamespacedName { return types.NamespacedName{Namespace: ns, Name: name} }
	l2 := map[types.NamespacedName][]L2{}
	for _, st := range s.L2Statuses {
		k := key(st.Status.ServiceNamespace, st.Status.ServiceName)
		var ifs []string
		for _, i := range st.Status.Interfaces {
			ifs = append(ifs, i.Name)
		}
		l2[k] = append(l2[k], L2{Node: st.Status.Node, Interfaces: ifs, Since: st.CreationTimestamp.Time, Object: "ServiceL2Status " + st.Name})
	}
	bgp := map[types.NamespacedName][]BGP{}
	for _, st := range s.BGPStatuses {
		k := key(st.Status.ServiceNamespace, st.Status.ServiceName)
		bgp[k] = append(bgp[k], BGP{Node: st.Status.Node, Peers: slices.Sorted(slices.Values(st.Status.Peers)), Since: st.CreationTimestamp.Time, Object: "ServiceBGPStatus " + st.Name})
	}
	obs := observations(s.Events)

	var out []Entry
	for i := range s.Services {
		svc := &s.Services[i]
		if !Served(svc, s.LBClass) {
			continue
		}
		k := key(svc.Namespace, svc.Name)
		e := Entry{Namespace: svc.Namespace, Name: svc.Name, IPs: []string{}, Pool: svc.Annotations[AnnotationPool], Modes: []Mode{}}
		for _, in := range svc.Status.LoadBalancer.Ingress {
			e.IPs = append(e.IPs, cmp.Or(in.IP, in.Hostname))
		}
		e.L2 = l2[k]
		slices.SortFunc(e.L2, func(a, b L2) int { return cmp.Or(a.Since.Compare(b.Since), strings.Compare(a.Node, b.Node)) })
		e.BGP = bgp[k]
		slices.SortFunc(e.BGP, func(a, b BGP) int { return strings.Compare(a.Node, b.Node) })
		if len(e.L2) > 0 {
			e.Modes = append(e.Modes, ModeL2)
		}
		if len(e.BGP) > 0 {
			e.Modes = append(e.Modes, ModeBGP)
		}
		e.Announced = len(e.Modes) > 0
		if !e.Announced && s.Config != nil && e.Pool != "" {
			if p := s.Config.Pool(e.Pool); p != nil {
				if len(p.L2Advertisements) > 0 {
					e.Modes = append(e.Modes, ModeL2)
				}
				if len(p.BGPAdvertisements) > 0 {
					e.Modes = append(e.Modes, ModeBGP)
				}
			}
		}
		for _, a := range e.L2 {
			if e.Since == nil || a.Since.Before(*e.Since) {
				e.Since = &a.Since
			}
		}
		for _, b := range e.BGP {
			if e.Since == nil || b.Since.Before(*e.Since) {
				e.Since = &b.Since
			}
		}
		e.LastFailover = lastFailover(obs[svc.UID], obs[uidless(k)], e.L2)
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b Entry) int {
		return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
	})
	return out
}

// Served reports whether ironlb, serving lbClass, handles svc: type LoadBalancer and the same
// spec.loadBalancerClass ("" for none), the test the controller and the speakers make. Services
// of another class belong to another load balancer (kube-vip, a cloud's): they are neither shown
// nor checked as ironlb's.
func Served(svc *corev1.Service, lbClass string) bool {
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return false
	}
	if svc.Spec.LoadBalancerClass == nil {
		return lbClass == ""
	}
	return *svc.Spec.LoadBalancerClass == lbClass
}

// observation is one moment a node was seen announcing a Service.
type observation struct {
	at   time.Time
	node string
}

// uidless keys Events whose regarding object carries no UID.
func uidless(k types.NamespacedName) types.UID { return types.UID("name:" + k.String()) }

// observations collects, per Service UID, the moments of the Announcing Events: the first time
// of each Event, and the last of its series (an Event repeated within minutes is a series).
func observations(events []corev1.Event) map[types.UID][]observation {
	out := map[types.UID][]observation{}
	for _, ev := range events {
		if ev.Reason != ReasonAnnouncing || ev.InvolvedObject.Kind != "Service" {
			continue
		}
		m := announcingNote.FindStringSubmatch(ev.Message)
		if m == nil {
			continue
		}
		node := m[2]
		first := ev.EventTime.Time
		if first.IsZero() {
			first = cmp.Or(ev.FirstTimestamp.Time, ev.CreationTimestamp.Time)
		}
		last := ev.LastTimestamp.Time
		if ev.Series != nil && ev.Series.LastObservedTime.After(last) {
			last = ev.Series.LastObservedTime.Time
		}
		uid := ev.InvolvedObject.UID
		if uid == "" {
			uid = uidless(types.NamespacedName{Namespace: ev.InvolvedObject.Namespace, Name: ev.InvolvedObject.Name})
		}
		out[uid] = append(out[uid], observation{first, node})
		if last.After(first) {
			out[uid] = append(out[uid], observation{last, node})
		}
	}
	return out
}

// lastFailover finds the latest change of announcing node. The current layer 2 announcers
// count as seen when their status objects were created: Events repeated within minutes are kept
// as a series whose last time reaches the API server late, but the object is created at the
// takeover itself.
//
// Two refinements keep the order true when views converge and several nodes announce within
// one second. A creationTimestamp has whole seconds while an Event's time has microseconds, so
// the current announcer's own Announcing Event of that moment (the latest one from a second
// before to a second after the creation second; the Event is sent just before the object is
// created) gives the exact time. And a node that announced after the current announcement began
// but announces no more did so for a moment only: the change that holds is the one into the
// current announcer, from the node before it.
func lastFailover(byUID, byName []observation, current []L2) *Failover {
	obs := slices.Concat(byUID, byName)
	if len(current) > 0 {
		now := map[string]bool{}
		var began time.Time
		for _, a := range current {
			at := announcedAt(obs, a)
			obs = append(obs, observation{at, a.Node})
			now[a.Node] = true
			if at.After(began) {
				began = at
			}
		}
		obs = slices.DeleteFunc(obs, func(o observation) bool { return !now[o.node] && o.at.After(began) })
	}
	slices.SortStableFunc(obs, func(a, b observation) int { return a.at.Compare(b.at) })
	for i := len(obs) - 1; i > 0; i-- {
		if obs[i].node != obs[i-1].node {
			return &Failover{From: obs[i-1].node, To: obs[i].node, At: obs[i].at}
		}
	}
	return nil
}

// announcedAt is when the current announcer a began: its latest Announcing Event within a
// second of its status object's creation second, else that creation time.
func announcedAt(obs []observation, a L2) time.Time {
	at := a.Since
	from, to := a.Since.Add(-time.Second), a.Since.Add(time.Second)
	var best time.Time
	for _, o := range obs {
		if o.node == a.Node && !o.at.Before(from) && o.at.Before(to) && o.at.After(best) {
			best = o.at
		}
	}
	if !best.IsZero() {
		at = best
	}
	return at
}
