package healthcheck_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/ironlb/ironlb/speaker/proxy/healthcheck"
)

// ports gives each health-check node port a listener on 127.0.0.1 with a free port, and
// remembers where, so tests need no root and no fixed port.
type ports struct {
	mu    sync.Mutex
	addrs map[uint16]string
	busy  map[uint16]bool
}

func (p *ports) listen(port uint16) (net.Listener, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.busy[port] {
		return nil, errors.New("address already in use")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p.addrs[port] = ln.Addr().String()
	return ln, nil
}

func (p *ports) url(port uint16) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return "http://" + p.addrs[port] + "/healthz"
}

type answer struct {
	code   int
	weight string
	body   map[string]any
	err    error
}

func get(url string) answer {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return answer{err: err}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{code: resp.StatusCode, weight: resp.Header.Get("X-Load-Balancing-Endpoint-Weight")}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		a.err = fmt.Errorf("content type %q", ct)
	}
	if err := json.Unmarshal(raw, &a.body); err != nil {
		a.err = fmt.Errorf("body %q: %w", raw, err)
	}
	return a
}

func TestServer(t *testing.T) {
	p := &ports{addrs: map[uint16]string{}, busy: map[uint16]bool{}}
	s := &healthcheck.Server{Listen: p.listen}
	t.Cleanup(func() { _ = s.Close() })
	web := types.NamespacedName{Namespace: "shop", Name: "web"}
	api := types.NamespacedName{Namespace: "shop", Name: "api"}

	if err := s.Sync(map[uint16]healthcheck.Status{
		32000: {Service: web, LocalEndpoints: 2},
		32001: {Service: api, LocalEndpoints: 0},
	}, true); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		port   uint16
		code   int
		weight string
		count  float64
		svc    string
	}{
		{"local endpoints: 200 with the count", 32000, 200, "2", 2, "web"},
		{"no local endpoint: 503", 32001, 503, "0", 0, "api"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := get(p.url(tc.port))
			if a.err != nil {
				t.Fatal(a.err)
			}
			svc, _ := a.body["service"].(map[string]any)
			if a.code != tc.code || a.weight != tc.weight || a.body["localEndpoints"] != tc.count ||
				svc["name"] != tc.svc || svc["namespace"] != "shop" || a.body["serviceProxyHealthy"] != true {
				t.Errorf("got %d weight %q %v, want %d weight %s, %v local endpoints of shop/%s",
					a.code, a.weight, a.body, tc.code, tc.weight, tc.count, tc.svc)
			}
		})
	}

	t.Run("counts follow the next sync", func(t *testing.T) {
		oldAPI := p.url(32001)
		if err := s.Sync(map[uint16]healthcheck.Status{32000: {Service: web, LocalEndpoints: 0}}, true); err != nil {
			t.Fatal(err)
		}
		if a := get(p.url(32000)); a.code != 503 || a.body["localEndpoints"] != 0.0 {
			t.Errorf("web with no local endpoint left: %d %v", a.code, a.body)
		}
		if a := get(oldAPI); a.err == nil || !strings.Contains(a.err.Error(), "refused") {
			t.Errorf("the removed Service's port still answers: %+v", a)
		}
	})

	t.Run("a failing proxy answers 503 everywhere", func(t *testing.T) {
		if err := s.Sync(map[uint16]healthcheck.Status{32000: {Service: web, LocalEndpoints: 3}}, false); err != nil {
			t.Fatal(err)
		}
		if a := get(p.url(32000)); a.code != 503 || a.body["serviceProxyHealthy"] != false {
			t.Errorf("got %d %v, want 503 with serviceProxyHealthy false", a.code, a.body)
		}
	})

	t.Run("a port in use is an error and is retried", func(t *testing.T) {
		p.mu.Lock()
		p.busy[32002] = true
		p.mu.Unlock()
		want := map[uint16]healthcheck.Status{32000: {Service: web, LocalEndpoints: 1}, 32002: {Service: api, LocalEndpoints: 1}}
		err := s.Sync(want, true)
		if err == nil || !strings.Contains(err.Error(), "port 32002 of Service shop/api") {
			t.Fatalf("err = %v, want one naming port 32002 and shop/api", err)
		}
		if a := get(p.url(32000)); a.code != 200 {
			t.Errorf("the other port stopped answering: %+v", a)
		}
		p.mu.Lock()
		p.busy[32002] = false
		p.mu.Unlock()
		if err := s.Sync(want, true); err != nil {
			t.Fatalf("retry: %v", err)
		}
		if a := get(p.url(32002)); a.code != 200 {
			t.Errorf("after the retry: %+v", a)
		}
	})

	t.Run("close stops every port", func(t *testing.T) {
		url := p.url(32000)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if a := get(url); a.err == nil {
			t.Errorf("port still answers after Close: %+v", a)
		}
	})
}
