// Package demo tells the seeds' story on one machine, for `make demo`: a real control plane,
// the controller, three nodes with speakers (L2, BGP and the nftables proxy core) on a LAN of
// network namespaces, an HTTP pod behind each node, a client and an FRR router. Seed 000's
// manifests are applied unchanged, and the demo shows what a user then checks: the Service's
// EXTERNAL-IP, the pod's page through the VIP, which node answers ARP, how fast another node
// takes over when that one is cut off (and that curl still works), a second pool routed over
// BGP with the router's ECMP routes, `kubectl ironlb status`, and `ironlb doctor` finding the
// seed's ARP pain. It removes everything it made, or with Options.Keep leaves it running until
// told to stop.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Prefix names the demo's network namespaces (ilbdemo-lan, ilbdemo-node1, ...).
const Prefix = "ilbdemo"

// Options change what Run does.
type Options struct {
	// Keep leaves everything running after the story, having printed how to look around,
	// until ctx ends (`make demo-down` sends SIGTERM); then Run cleans up as without Keep.
	Keep bool
	// Told, when set, is called with Keep once the story and the instructions are printed and
	// the lab is ready: `make demo ARGS=--keep` returns the terminal to the user there.
	Told func()
}

// Run tells the story on out, then removes what it made and checks that nothing is left. It
// needs root (network namespaces), the binaries of `make test-assets`, and Debian's iproute2,
// arping, curl and frr.
func Run(ctx context.Context, opts Options, out io.Writer) error {
	if os.Geteuid() != 0 {
		return errors.New("the demo builds network namespaces: run it as root (sudo make demo)")
	}
	p := &printer{out: out, start: time.Now()}
	st, err := begin(ctx)
	if err != nil {
		return err
	}
	err = tell(ctx, opts, p, &st)
	// The story's deferred calls stopped everything; what remains are the files.
	err = errors.Join(err, os.RemoveAll(WorkDir()))
	left, lerr := Leftovers(context.Background(), st.Dirs)
	switch {
	case lerr != nil:
		err = errors.Join(err, lerr)
	case len(left) > 0:
		err = errors.Join(err, fmt.Errorf("left behind: %s", strings.Join(left, "; ")))
	default:
		p.detail("nothing left behind: no %s-* network namespace, no demo process, no %s (%.1fs in all)",
			Prefix, WorkDir(), time.Since(p.start).Seconds())
	}
	return err
}

// printer writes the story: numbered steps with the time since start, details indented,
// command output and files behind a bar.
type printer struct {
	out   io.Writer
	start time.Time
	n     int
}

func (p *printer) step(format string, args ...any) {
	p.n++
	fmt.Fprintf(p.out, "\n[%2d] %s  (%.1fs)\n", p.n, fmt.Sprintf(format, args...), time.Since(p.start).Seconds())
}

func (p *printer) detail(format string, args ...any) {
	fmt.Fprintf(p.out, "     %s\n", fmt.Sprintf(format, args...))
}

func (p *printer) block(s string) {
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		fmt.Fprintf(p.out, "     | %s\n", l)
	}
}

// blockCut is block with lines longer than width cut, for output meant for a wide terminal.
func (p *printer) blockCut(s string, width int) {
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if r := []rune(l); len(r) > width {
			l = string(r[:width-1]) + "…"
		}
		lines = append(lines, l)
	}
	p.block(strings.Join(lines, "\n"))
}

func (p *printer) file(name, content string) {
	fmt.Fprintf(p.out, "     --- %s\n", name)
	p.block(content)
}

// logTail prints the end of the components' log, which shows why a step failed.
func (p *printer) logTail(path string, n int) {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	fmt.Fprintf(p.out, "\nThe last lines of the speakers' and the router's log (%s):\n", path)
	p.block(strings.Join(lines, "\n"))
}
