package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/ironlb/ironlb/e2etest/lab"
)

// PodName is the Kubernetes-style name of a lab pod: its namespace name without the lab
// prefix ("n1-pod1"), the name it answers with.
func PodName(c *Cluster, pod *lab.Host) string {
	return strings.TrimPrefix(pod.Name, c.cfg.Prefix+"-")
}

// RoutePods gives every node a route to every other node's pod subnets (IPv4 and IPv6)
// through that node, as a CNI's host routes would, so a node can forward a Service's
// connection to a pod anywhere; and default routes through the lab's router, as real nodes
// have (without one, a packet to a Service address the proxy does not rewrite fails routing
// before the proxy's filter rules can reject it). Routes go into the node namespaces only.
func (c *Cluster) RoutePods(ctx context.Context) error {
	for _, n := range c.Nodes {
		for _, gw := range []netip.Addr{c.Router.IPv4, c.Router.IPv6} {
			if _, err := n.Exec(ctx, "ip", "route", "replace", "default", "via", gw.String()); err != nil {
				return fmt.Errorf("default route of %s: %w", n.Name, err)
			}
		}
		for _, o := range c.Nodes {
			if o == n {
				continue
			}
			for _, r := range []struct {
				to  netip.Prefix
				via netip.Addr
			}{{o.PodCIDR, o.IPv4}, {o.PodCIDRv6, o.IPv6}} {
				if _, err := n.Exec(ctx, "ip", "route", "replace", r.to.String(), "via", r.via.String()); err != nil {
					return fmt.Errorf("route %s to %s's pods: %w", n.Name, o.Name, err)
				}
			}
		}
	}
	return nil
}

// PodServer is an HTTP server in every lab pod, as the pods of a Deployment: each answers any
// request with Page, then "pod <name>" and "client <address:port it saw>" on lines of their
// own, so a test sees which endpoint it reached and whose source address arrived.
type PodServer struct {
	servers []*http.Server
}

// ServePods starts a PodServer on port in every pod of the cluster.
func (c *Cluster) ServePods(port int, page string) (*PodServer, error) {
	ps := &PodServer{}
	for _, n := range c.Nodes {
		for _, pod := range n.Pods {
			var ln net.Listener
			if err := pod.Do(func() (err error) {
				ln, err = net.Listen("tcp", ":"+strconv.Itoa(port))
				return err
			}); err != nil {
				_ = ps.Close()
				return nil, fmt.Errorf("listen in %s: %w", pod.Name, err)
			}
			name := PodName(c, pod)
			srv := &http.Server{ReadHeaderTimeout: 5 * time.Second,
				Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "text/plain")
					fmt.Fprintf(w, "%s\npod %s\nclient %s\n", page, name, r.RemoteAddr)
				})}
			ps.servers = append(ps.servers, srv)
			go func() { _ = srv.Serve(ln) }()
		}
	}
	return ps, nil
}

// Close stops every server; their sockets would keep the pod namespaces alive.
func (ps *PodServer) Close() error {
	var errs []error
	for _, s := range ps.servers {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// Answer is what a PodServer answered.
type Answer struct {
	// Pod is the name of the pod that answered.
	Pod string
	// Client is the source address the pod saw.
	Client string
	// Body is the whole answer.
	Body string
}

// ParseAnswer reads a PodServer's answer; ok is false for anything else.
func ParseAnswer(body string) (Answer, bool) {
	a := Answer{Body: body}
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, "pod "); ok {
			a.Pod = v
		}
		if v, ok := strings.CutPrefix(line, "client "); ok {
			if host, _, err := net.SplitHostPort(v); err == nil {
				a.Client = host
			}
		}
	}
	return a, a.Pod != "" && a.Client != ""
}

// CurlResult is one curl run: its answer, or how it failed.
type CurlResult struct {
	Answer Answer
	// ExitCode is curl's: 0 success, 7 could not connect (refused), 28 timed out.
	ExitCode int
	// Err is curl's error message.
	Err string
}

// Curl fetches url with Debian's curl from inside h, giving up after timeout.
func Curl(ctx context.Context, h *lab.Host, url string, timeout time.Duration) CurlResult {
	secs := strconv.FormatFloat(timeout.Seconds(), 'f', 1, 64)
	out, err := h.Exec(ctx, "curl", "--silent", "--show-error", "--max-time", secs, url)
	if err == nil {
		a, _ := ParseAnswer(out)
		return CurlResult{Answer: a}
	}
	r := CurlResult{ExitCode: -1, Err: err.Error()}
	var ee interface{ ExitCode() int }
	if errors.As(err, &ee) {
		r.ExitCode = ee.ExitCode()
	}
	return r
}
