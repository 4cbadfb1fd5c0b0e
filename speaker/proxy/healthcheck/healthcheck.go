// Package healthcheck serves the health-check node ports of Services with
// externalTrafficPolicy Local (spec.healthCheckNodePort), as kube-proxy does: an external load
// balancer or router probes every node on that port and sends the Service's traffic only to
// the nodes answering 200, the ones with a local ready endpoint. Without it a node with no
// endpoint keeps receiving traffic that its rules then drop.
//
// Data flow: each proxy sync computes the Services' statuses (svcports.HealthChecks) and hands
// them to Server.Sync, which opens a listener for each new port, closes the ports that went,
// and updates what the open ones answer. Any path, any method: 200 with the local endpoint
// count as JSON when the node has local ready endpoints and the proxy's last sync succeeded,
// 503 otherwise.
package healthcheck

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
)

// Status is what one health-check node port reports.
type Status struct {
	// Service owns the port.
	Service types.NamespacedName
	// LocalEndpoints counts the Service's ready endpoints on this node.
	LocalEndpoints int
}

// Server serves the health-check node ports. Set the fields, then call Sync after each proxy
// sync and Close when done.
type Server struct {
	// Listen opens the listener of a port. Default: TCP on every address of the node, both
	// families (":port"), as kube-proxy without --nodeport-addresses.
	Listen func(port uint16) (net.Listener, error)
	// Log is the logger. Default: discard.
	Log logr.Logger

	mu       sync.Mutex
	status   map[uint16]Status
	healthy  bool
	servers  map[uint16]*http.Server
	failures map[uint16]string // the last listen error per port, to log each once
}

// Sync serves exactly the ports of status from now on. proxyHealthy is whether the proxy's last
// sync succeeded: if not, every port answers 503 (the node's rules may be stale). A port that
// cannot be opened (in use) is an error naming it; the next Sync tries again.
func (s *Server) Sync(status map[uint16]Status, proxyHealthy bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.servers == nil {
		s.servers, s.failures = map[uint16]*http.Server{}, map[uint16]string{}
	}
	s.status, s.healthy = status, proxyHealthy
	for port, srv := range s.servers {
		if _, ok := status[port]; !ok {
			_ = srv.Close()
			delete(s.servers, port)
			s.Log.V(1).Info("Health-check node port closed", "port", port)
		}
	}
	var errs []error
	for port, st := range status {
		if s.servers[port] != nil {
			continue
		}
		if err := s.open(port); err != nil {
			err = fmt.Errorf("serve health-check node port %d of Service %s: %w", port, st.Service, err)
			errs = append(errs, err)
			if s.failures[port] != err.Error() {
				s.failures[port] = err.Error()
				s.Log.Error(err, "Health-check node port not served; retrying at the next sync", "port", port, "service", st.Service)
			}
			continue
		}
		delete(s.failures, port)
		s.Log.V(1).Info("Health-check node port open", "port", port, "service", st.Service)
	}
	return errors.Join(errs...)
}

func (s *Server) open(port uint16) error {
	listen := s.Listen
	if listen == nil {
		listen = func(port uint16) (net.Listener, error) {
			return net.Listen("tcp", ":"+strconv.Itoa(int(port)))
		}
	}
	ln, err := listen(port)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { s.answer(w, port) }),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       5 * time.Second,
		WriteTimeout:      5 * time.Second,
		IdleTimeout:       30 * time.Second,
	}
	s.servers[port] = srv
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.Log.Error(err, "Health-check node port stopped serving", "port", port)
		}
	}()
	return nil
}

// Close stops serving every port, letting answers in progress finish (a few seconds at most).
func (s *Server) Close() error {
	s.mu.Lock()
	servers := s.servers
	s.servers = nil
	s.mu.Unlock()
	// Outside the lock: a handler in progress takes it.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var errs []error
	for _, srv := range servers {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// body is kube-proxy's answer, field for field, so probes written for it keep working.
type body struct {
	Service struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"service"`
	LocalEndpoints      int  `json:"localEndpoints"`
	ServiceProxyHealthy bool `json:"serviceProxyHealthy"`
}

func (s *Server) answer(w http.ResponseWriter, port uint16) {
	s.mu.Lock()
	st, healthy := s.status[port], s.healthy
	s.mu.Unlock()
	var b body
	b.Service.Namespace, b.Service.Name = st.Service.Namespace, st.Service.Name
	b.LocalEndpoints, b.ServiceProxyHealthy = st.LocalEndpoints, healthy
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Load-Balancing-Endpoint-Weight", strconv.Itoa(st.LocalEndpoints))
	if st.LocalEndpoints > 0 && healthy {
		w.WriteHeader(http.StatusOK)
	} else {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(b)
}
