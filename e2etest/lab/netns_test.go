package lab_test

// IP plan: the package doc's, with prefixes "ilbt-do" and "ilbt-fwd", one or two nodes and no
// pods. The servers behind Forward listen on 127.0.0.1:<free port> of the root namespace; the
// forwarded port is 127.0.0.1:<free port> of node1, and the same port number must stay closed
// in node2.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/ironlb/ironlb/e2etest/lab"
)

func TestDo(t *testing.T) {
	needRoot(t)
	guardRoot(t)
	l := startLab(t, lab.Config{Prefix: "ilbt-do", Nodes: 1, PodsPerNode: -1})
	node := &l.Nodes[0].Host
	rootNS, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("inside: eth0 with the node's MAC", func(t *testing.T) {
		var got string
		if err := node.Do(func() error {
			ifi, err := net.InterfaceByName(node.Iface)
			if err != nil {
				return err
			}
			got = ifi.HardwareAddr.String()
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if got != node.MAC.String() {
			t.Errorf("%s in %s has MAC %s, want %s", node.Iface, node.Name, got, node.MAC)
		}
	})

	t.Run("never on the main thread", func(t *testing.T) {
		// Lab.Close kills processes whose main thread is in a lab namespace.
		for range 100 {
			var tid int
			if err := node.Do(func() error { tid = syscall.Gettid(); return nil }); err != nil {
				t.Fatal(err)
			}
			if tid == os.Getpid() {
				t.Fatal("fn ran on the main thread")
			}
		}
	})

	t.Run("outside: no interface with the node's MAC", func(t *testing.T) {
		ifs, err := net.Interfaces()
		if err != nil {
			t.Fatal(err)
		}
		for _, ifi := range ifs {
			if ifi.HardwareAddr.String() == node.MAC.String() {
				t.Errorf("root namespace has %s with the node's MAC %s", ifi.Name, node.MAC)
			}
		}
	})

	t.Run("returns fn's error", func(t *testing.T) {
		sentinel := errors.New("sentinel")
		if err := node.Do(func() error { return sentinel }); !errors.Is(err, sentinel) {
			t.Errorf("Do = %v, want %v", err, sentinel)
		}
	})

	t.Run("raises fn's panic in the caller", func(t *testing.T) {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v, want boom", r)
			}
		}()
		_ = node.Do(func() error { panic("boom") })
		t.Error("Do returned after fn panicked")
	})

	t.Run("runtime.Goexit in fn (t.FailNow) ends the caller", func(t *testing.T) {
		reached := false
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = node.Do(func() error { runtime.Goexit(); return nil })
			reached = true
		}()
		<-done
		if reached {
			t.Error("the caller of Do went on after fn called runtime.Goexit")
		}
	})

	t.Run("every thread is back in the root namespace", func(t *testing.T) {
		// Do reports only after switching back, also after a panic or Goexit, so this holds
		// without polling.
		tasks, err := filepath.Glob("/proc/self/task/*/ns/net")
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range tasks {
			ns, err := os.Readlink(p)
			if err != nil && !errors.Is(err, os.ErrNotExist) { // the thread may just have exited
				t.Fatal(err)
			}
			if err == nil && ns != rootNS {
				t.Errorf("%s is %s, want the root namespace %s", p, ns, rootNS)
			}
		}
	})

	t.Run("missing namespace", func(t *testing.T) {
		missing := &lab.Host{Name: "ilbt-do-missing"}
		if err := missing.Do(func() error { return nil }); err == nil {
			t.Error("Do in a namespace that does not exist succeeded")
		}
	})
}

func TestForward(t *testing.T) {
	needRoot(t)
	guardRoot(t)
	l := startLab(t, lab.Config{Prefix: "ilbt-fwd", Nodes: 2, PodsPerNode: -1})
	node1, node2 := &l.Nodes[0].Host, &l.Nodes[1].Host

	const body = "hello from the root namespace"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, body)
	}))
	t.Cleanup(srv.Close)
	// counter answers, after the client has shut down its write side, with how many bytes it read.
	counter := startCounter(t)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	addr, err := node1.Forward(ctx, "127.0.0.1:0", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || !tcp.IP.Equal(net.IPv4(127, 0, 0, 1)) || tcp.Port == 0 {
		t.Fatalf("Forward returned %v, want 127.0.0.1 with a port", addr)
	}
	url := "http://" + addr.String() + "/"
	counterAddr, err := node1.Forward(ctx, "127.0.0.1:0", counter)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("HTTP from node1 reaches the root server", func(t *testing.T) {
		conn := dialIn(t, node1, addr.String())
		defer conn.Close()
		if got := get(t, conn, url); got != body {
			t.Errorf("GET %s in %s = %q, want %q", url, node1.Name, got, body)
		}
	})

	t.Run("curl in node1", func(t *testing.T) {
		if _, err := exec.LookPath("curl"); err != nil {
			t.Skip("curl not installed; the Go client above covers the same path")
		}
		out, err := node1.Exec(ctx, "curl", "-sS", "--max-time", "5", url)
		if err != nil || out != body {
			t.Errorf("curl %s in %s = %q, %v; want %q", url, node1.Name, out, err, body)
		}
	})

	t.Run("half-close reaches the server and the reply still comes back", func(t *testing.T) {
		conn := dialIn(t, node1, counterAddr.String())
		defer conn.Close()
		if _, err := io.WriteString(conn, "12345"); err != nil {
			t.Fatal(err)
		}
		if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, err := io.ReadAll(conn)
		if err != nil || string(got) != "5" {
			t.Errorf("reply after half-close = %q, %v; want \"5\" then EOF", got, err)
		}
	})

	t.Run("the port is closed in node2", func(t *testing.T) {
		if err := dialErr(node2, addr.String()); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("dial %s in %s: %v, want connection refused", addr, node2.Name, err)
		}
	})

	t.Run("ctx end closes the listener and live connections", func(t *testing.T) {
		conn := dialIn(t, node1, addr.String())
		defer conn.Close()
		// HTTP/1.1 keeps the connection open after the response.
		if got := get(t, conn, url); got != body {
			t.Fatalf("GET = %q, want %q", got, body)
		}
		cancel()
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := conn.Read(make([]byte, 1)); !isClosed(err) {
			t.Errorf("read on a forwarded connection after cancel = %d, %v; want EOF or reset", n, err)
		}
		eventually(t, 5*time.Second, "listener in "+node1.Name+" closes", func() error {
			if err := dialErr(node1, addr.String()); !errors.Is(err, syscall.ECONNREFUSED) {
				return fmt.Errorf("dial %s: %v, want connection refused", addr, err)
			}
			return nil
		})
	})

	t.Run("Lab.Close stops forwarding", func(t *testing.T) {
		addr, err := node1.Forward(t.Context(), "127.0.0.1:0", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conn := dialIn(t, node1, addr.String())
		defer conn.Close()
		if got := get(t, conn, "http://"+addr.String()+"/"); got != body {
			t.Fatalf("GET = %q, want %q", got, body)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		// Close has returned, so the proxy side is closed already.
		_ = conn.SetReadDeadline(time.Now().Add(time.Second))
		if n, err := conn.Read(make([]byte, 1)); !isClosed(err) {
			t.Errorf("read on a forwarded connection after Close = %d, %v; want EOF or reset", n, err)
		}
		if _, err := node1.Forward(t.Context(), "127.0.0.1:0", srv.Listener.Addr().String()); err == nil {
			t.Error("Forward on a closed lab succeeded")
		}
	})
}

func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

// dialIn connects to addr from inside h's namespace.
func dialIn(t *testing.T, h *lab.Host, addr string) net.Conn {
	t.Helper()
	var conn net.Conn
	if err := h.Do(func() error {
		var err error
		conn, err = net.DialTimeout("tcp", addr, 5*time.Second)
		return err
	}); err != nil {
		t.Fatalf("dial %s in %s: %v", addr, h.Name, err)
	}
	return conn
}

// dialErr is the error of dialling addr inside h's namespace; a connection is closed at once.
func dialErr(h *lab.Host, addr string) error {
	return h.Do(func() error {
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err == nil {
			conn.Close()
		}
		return err
	})
}

// get sends GET url on conn and returns the body; conn stays open (HTTP/1.1 keep-alive).
func get(t *testing.T, conn net.Conn, url string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	defer conn.SetDeadline(time.Time{})
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// startCounter listens on 127.0.0.1:0 of the root namespace; per connection it reads to EOF and
// writes back the byte count, so only a proxy that forwards the half-close gets an answer.
func startCounter(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				n, err := io.Copy(io.Discard, c)
				if err != nil {
					return
				}
				_, _ = io.WriteString(c, strconv.FormatInt(n, 10))
			}()
		}
	}()
	return ln.Addr().String()
}
