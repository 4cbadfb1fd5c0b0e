package l2announce

import (
	"maps"
	"slices"
	"testing"
	"time"
)

func TestAdmit(t *testing.T) {
	const settle = time.Second
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	up := map[string]bool{"node1": true, "node2": true}
	for _, tc := range []struct {
		name     string
		now      time.Duration // after t0
		won      map[string]string
		up       map[string]bool
		pending  map[string]takeover
		take     []string
		next     time.Duration
		stillFor []string // keys pending afterwards
	}{
		{name: "nothing won", won: map[string]string{}, up: up},
		{name: "nobody answered: at once", won: map[string]string{"ns/a": ""}, up: up, take: []string{"ns/a"}},
		{name: "owner dead (not live): at once", won: map[string]string{"ns/a": "node3"}, up: up, take: []string{"ns/a"}},
		{name: "owner live: waits the settle", won: map[string]string{"ns/a": "node2"}, up: up, next: settle, stillFor: []string{"ns/a"}},
		{name: "owner live, halfway", now: 400 * time.Millisecond, won: map[string]string{"ns/a": ""}, up: up,
			pending: map[string]takeover{"ns/a": {since: t0, from: "node2"}}, next: 600 * time.Millisecond, stillFor: []string{"ns/a"}},
		{name: "owner live, settle over: taken", now: settle, won: map[string]string{"ns/a": ""}, up: up,
			pending: map[string]takeover{"ns/a": {since: t0, from: "node2"}}, take: []string{"ns/a"}},
		{name: "owner died while waiting: at once", now: 100 * time.Millisecond, won: map[string]string{"ns/a": ""}, up: map[string]bool{"node1": true},
			pending: map[string]takeover{"ns/a": {since: t0, from: "node2"}}, take: []string{"ns/a"}},
		{name: "the owner it is won from is the one remembered, not the later view", now: 100 * time.Millisecond, won: map[string]string{"ns/a": "node9"}, up: up,
			pending: map[string]takeover{"ns/a": {since: t0, from: "node2"}}, next: 900 * time.Millisecond, stillFor: []string{"ns/a"}},
		{name: "lost again while waiting: forgotten", now: 100 * time.Millisecond, won: map[string]string{}, up: up,
			pending: map[string]takeover{"ns/a": {since: t0, from: "node2"}}},
		{name: "mixed: earliest due first", now: 300 * time.Millisecond,
			won: map[string]string{"ns/a": "", "ns/b": "node1", "ns/c": "node3", "ns/d": ""}, up: up,
			pending: map[string]takeover{"ns/a": {since: t0, from: "node2"}, "ns/gone": {since: t0, from: "node2"}},
			take:    []string{"ns/c", "ns/d"}, next: 700 * time.Millisecond, stillFor: []string{"ns/a", "ns/b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pending := maps.Clone(tc.pending)
			if pending == nil {
				pending = map[string]takeover{}
			}
			take, next := admit(t0.Add(tc.now), tc.won, tc.up, pending, settle)
			slices.Sort(take)
			if !slices.Equal(take, tc.take) {
				t.Errorf("take %v, want %v", take, tc.take)
			}
			if next != tc.next {
				t.Errorf("next %v, want %v", next, tc.next)
			}
			if got := slices.Sorted(maps.Keys(pending)); !slices.Equal(got, tc.stillFor) {
				t.Errorf("pending %v, want %v", got, tc.stillFor)
			}
		})
	}
}

func TestHealKeep(t *testing.T) {
	set := func(names ...string) map[string]bool {
		m := map[string]bool{}
		for _, n := range names {
			m[n] = true
		}
		return m
	}
	ever := set("node1", "node2", "node3")
	for _, tc := range []struct {
		name       string
		last, live map[string]bool
		ever       map[string]bool
		want       []string // nil: no heal
	}{
		{name: "start-up: members seen for the first time", last: nil, live: set("node1", "node2"), ever: set()},
		{name: "nothing changed", last: ever, live: ever, ever: ever},
		{name: "a member left", last: ever, live: set("node1", "node2"), ever: ever},
		{name: "cut off alone, one member back: every member seen", last: set("node1"), live: set("node1", "node2"), ever: ever,
			want: []string{"node1", "node2", "node3"}},
		{name: "cut off alone, all back at once", last: set("node1"), live: ever, ever: ever, want: []string{"node1", "node2", "node3"}},
		{name: "majority side: the cut node returns, and is not kept (cut again, it fails over at once)", last: set("node1", "node2"), live: ever, ever: ever, want: []string{"node1", "node2"}},
		{name: "majority side: the cut node returns as a stale rumour drops another", last: set("node1", "node2"), live: set("node2", "node3"), ever: ever,
			want: []string{"node1", "node2"}},
		{name: "majority side keeps only those it saw: a dead fourth stays dead", last: set("a", "b", "c"), live: set("a", "b", "c", "d"),
			ever: set("a", "b", "c", "d", "e"), want: []string{"a", "b", "c"}},
		{name: "half of four counts as cut off", last: set("a", "b"), live: set("a", "b", "c"), ever: set("a", "b", "c", "d"), want: []string{"a", "b", "c", "d"}},
		{name: "alone, nobody back yet", last: set("node1"), live: set("node1"), ever: ever},
		{name: "alone, a newcomer joins (never seen)", last: set("node1"), live: set("node1", "node4"), ever: ever},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := healKeep(tc.last, tc.live, tc.ever)
			if (got == nil) != (tc.want == nil) {
				t.Fatalf("healKeep = %v, want %v", got, tc.want)
			}
			if keys := slices.Sorted(maps.Keys(got)); tc.want != nil && !slices.Equal(keys, tc.want) {
				t.Errorf("healKeep = %v, want %v", keys, tc.want)
			}
		})
	}
}

func TestCutOff(t *testing.T) {
	set := func(names ...string) map[string]bool {
		m := map[string]bool{}
		for _, n := range names {
			m[n] = true
		}
		return m
	}
	three := set("node1", "node2", "node3")
	for _, tc := range []struct {
		name              string
		live, ever, nodes map[string]bool
		want              bool
	}{
		{name: "all live", live: three, ever: three, nodes: three},
		{name: "one of three lost: the majority", live: set("node1", "node2"), ever: three, nodes: three},
		{name: "alone of three: cut off", live: set("node1"), ever: three, nodes: three, want: true},
		{name: "alone of two: half is not fewer", live: set("node1"), ever: set("node1", "node2"), nodes: set("node1", "node2")},
		{name: "two of five: cut off", live: set("a", "b"), ever: set("a", "b", "c", "d", "e"), nodes: set("a", "b", "c", "d", "e"), want: true},
		{name: "scaled down: removed Nodes do not count", live: set("a", "b"), ever: set("a", "b", "c", "d", "e"), nodes: set("a", "b", "c")},
		{name: "start-up: nothing seen yet", live: set("a"), ever: set(), nodes: set("a", "b")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := cutOff(tc.live, tc.ever, tc.nodes); got != tc.want {
				t.Errorf("cutOff = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestUnconfirmedHold(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		known  int
		died   bool
		now    time.Duration // after the death
		hold   bool
		untilD time.Duration
	}{
		{name: "confirmed (or learnt from a peer): at once", known: 3, died: false},
		{name: "unconfirmed of three: waits", known: 3, died: true, now: time.Second, hold: true, untilD: cutOffHold},
		{name: "unconfirmed, hold over", known: 3, died: true, now: cutOffHold},
		{name: "two speakers: nobody could confirm, at once", known: 2, died: true, now: time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hold, until := unconfirmedHold(tc.known, t0, tc.died, t0.Add(tc.now))
			if hold != tc.hold {
				t.Fatalf("hold = %v, want %v", hold, tc.hold)
			}
			if hold && !until.Equal(t0.Add(tc.untilD)) {
				t.Errorf("until %v, want %v", until, t0.Add(tc.untilD))
			}
		})
	}
}
