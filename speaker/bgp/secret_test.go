package bgp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus"
)

// md5Password is the TCP MD5 password of the tests below: distinctive, so any occurrence in
// output is a leak.
const md5Password = "pw-7c1e0d5b-must-not-leak"

// TestPasswordNeverPrinted: a PeerConfig with a password, alone or inside a Transition or
// PeerStatus, printed by fmt, encoding/json, slog's handlers or logr, never shows the password,
// only that one is set.
func TestPasswordNeverPrinted(t *testing.T) {
	cfg := peerCfg("router", func(c *PeerConfig) { c.Password = md5Password })
	tr := Transition{Config: cfg, From: Status{State: StateActive}, To: Status{State: StateEstablished}}
	ps := PeerStatus{Config: cfg}
	var out []string
	for _, v := range []any{cfg, &cfg, tr, &tr, ps} {
		for _, verb := range []string{"%v", "%+v", "%s"} {
			out = append(out, fmt.Sprintf(verb, v))
		}
		js, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(js))
		var text, jsonOut bytes.Buffer
		slog.New(slog.NewTextHandler(&text, nil)).Info("msg", "config", v)
		slog.New(slog.NewJSONHandler(&jsonOut, nil)).Info("msg", "config", v)
		out = append(out, text.String(), jsonOut.String())
		funcr.New(func(prefix, args string) { out = append(out, args) }, funcr.Options{}).Info("msg", "config", v)
	}
	if got := cfg.String(); got != "router 192.168.50.1:179 AS 64512 -> 64513 router ID 192.168.50.11 md5 set" {
		t.Errorf("String() = %q", got)
	}
	for _, s := range out {
		if strings.Contains(s, md5Password) {
			t.Errorf("password printed: %s", s)
		}
	}
}

// TestManagerNeverLogsPassword: everything the Manager says about a session with a password
// (debug logs, metrics, observed transitions rendered as Events render them, Explain for every
// reason) leaves the password out.
func TestManagerNeverLogsPassword(t *testing.T) {
	ctx := context.Background()
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug - 8}))
	reg := prometheus.NewRegistry()
	met, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	var observed []string
	f := NewFake()
	m := NewManager(Options{Router: f, Log: log, Metrics: met, Observer: func(tr Transition) {
		observed = append(observed, fmt.Sprintf("%+v", tr), Explain(tr.Config, tr.To))
	}})
	cfg := peerCfg("router", func(c *PeerConfig) { c.Password = md5Password })
	if err := m.Apply(ctx, map[string]Desired{"router": {Config: cfg, Paths: []Path{path("192.168.50.50/32")}}}); err != nil {
		t.Fatal(err)
	}
	s := f.Session("router")
	for r := ReasonNone; r <= ReasonOther; r++ {
		s.SetStatus(Status{State: StateActive, Reason: r, Detail: "detail " + r.String()})
		s.SetStatus(Status{State: StateEstablished, LocalAddr: netip.MustParseAddr("192.168.50.11"), PeerASN: 64513})
	}
	if err := m.Hold(ctx, "router", "BFD down"); err != nil {
		t.Fatal(err)
	}
	// A new password reopens the session: the old and the new one stay unsaid.
	cfg2 := cfg
	cfg2.Password = md5Password + "-rotated"
	if err := m.Apply(ctx, map[string]Desired{"router": {Config: cfg2}}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Close(ctx, nil); err != nil {
		t.Fatal(err)
	}
	var metrics strings.Builder
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			for _, l := range mt.GetLabel() {
				fmt.Fprintf(&metrics, "%s{%s=%q}\n", mf.GetName(), l.GetName(), l.GetValue())
			}
		}
	}
	if !strings.Contains(logs.String(), `"md5":true`) || len(observed) == 0 {
		t.Fatalf("the test saw nothing: logs %s observed %v", logs.String(), observed)
	}
	for what, s := range map[string]string{"logs": logs.String(), "metrics": metrics.String(), "observed": strings.Join(observed, "\n")} {
		if strings.Contains(s, md5Password) {
			t.Errorf("password in %s:\n%s", what, s)
		}
	}
}

var _ logr.Marshaler = PeerConfig{}
