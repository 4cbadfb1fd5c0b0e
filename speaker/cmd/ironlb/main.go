// Command ironlb is ironlb's command line: `ironlb doctor` checks a node and the cluster for the
// problems that break LoadBalancer IPs on bare metal, `ironlb status` shows which node announces
// each LoadBalancer Service. Installed as kubectl-ironlb it is the kubectl plugin (`kubectl
// ironlb status`); the speaker image carries it as /ironlb, for `kubectl -n metallb-system exec
// ds/ironlb-speaker -- /ironlb doctor` on a node. See docs/cli.md.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes.
const (
	exitOK       = 0
	exitProblems = 1 // doctor found problems; status failed
	exitUsage    = 2
)

// run dispatches the subcommand and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	prog := "ironlb"
	if strings.HasPrefix(filepath.Base(args[0]), "kubectl-") {
		prog = "kubectl ironlb"
	}
	if len(args) < 2 {
		usage(stderr, prog)
		return exitUsage
	}
	switch args[1] {
	case "doctor":
		return doctorCmd(ctx, prog, args[2:], stdout, stderr)
	case "status":
		return statusCmd(ctx, prog, args[2:], stdout, stderr)
	case "help", "-h", "--help":
		usage(stdout, prog)
		return exitOK
	default:
		fmt.Fprintf(stderr, "%s: unknown command %q\n", prog, args[1])
		usage(stderr, prog)
		return exitUsage
	}
}

// lbClassUsage documents --lb-class, which both commands take.
const lbClassUsage = "the spec.loadBalancerClass ironlb serves (its controller's and speakers' --lb-class); empty: Services without a class. Services of another class belong to another load balancer and are left out"

func usage(w io.Writer, prog string) {
	fmt.Fprintf(w, `Usage:
  %[1]s doctor [flags]            check this node and the cluster for what breaks LoadBalancer IPs
  %[1]s status [service] [flags]  show each LoadBalancer Service's IPs, pool, mode, announcing nodes, since, last failover

'%[1]s <command> --help' lists a command's flags. docs/cli.md explains every check.
`, prog)
}
