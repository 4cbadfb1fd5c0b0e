package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/pflag"

	"github.com/ironlb/ironlb/internal/lbstatus"
)

// now is this machine's clock; tests fix it.
var now = time.Now

// skewOf measures the API server's clock against now; tests replace it.
var skewOf = clockSkew

func statusCmd(ctx context.Context, prog string, args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet(prog+" status", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	kf := bindKubeFlags(fs)
	all := fs.BoolP("all-namespaces", "A", false, "show the LoadBalancer Services of every namespace")
	output := fs.StringP("output", "o", "", "output format: empty for a table (the details with a Service named), or json")
	sysNS := fs.String("system-namespace", envOr("METALLB_NAMESPACE", "metallb-system"), "namespace of the metallb.io configuration and status objects")
	lbClass := fs.String("lb-class", "", lbClassUsage)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s status [service] [flags]\n\nShows each LoadBalancer Service's IPs, pool, mode, announcing nodes, since when, and the last failover.\n\nFlags:\n%s", prog, fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 1 || (*output != "" && *output != "json") || (*all && fs.NArg() == 1) {
		fs.Usage()
		return exitUsage
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "%s status: %v\n", prog, err)
		return exitProblems
	}
	c, rc, err := kf.client(30 * time.Second)
	if err != nil {
		return fail(err)
	}
	o := lbstatus.Options{SystemNamespace: *sysNS, Service: fs.Arg(0), LBClass: *lbClass}
	if !*all {
		if o.Namespace, err = kf.namespace(); err != nil {
			return fail(err)
		}
	}
	snap, warnings, err := lbstatus.Read(ctx, c, o)
	if err != nil {
		return fail(err)
	}
	for _, w := range warnings {
		fmt.Fprintf(stderr, "%s status: warning: %s\n", prog, w)
	}
	entries := lbstatus.Build(snap)
	// Every time shown was stamped by the API server (status objects) or the speakers: ages are
	// counted on the server's clock, or a workstation whose clock runs behind prints <invalid>.
	skew, err := skewOf(ctx, rc)
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "%s status: warning: cannot read the API server's clock (%v): ages are counted on this machine's\n", prog, err)
	case skew >= time.Minute:
		fmt.Fprintf(stderr, "%s status: warning: this machine's clock is %v behind the API server's; ages are counted on the server's\n", prog, skew.Round(time.Second))
	case skew <= -time.Minute:
		fmt.Fprintf(stderr, "%s status: warning: this machine's clock is %v ahead of the API server's; ages are counted on the server's\n", prog, (-skew).Round(time.Second))
	}
	serverNow := now().Add(skew)
	switch {
	case *output == "json":
		b, err := lbstatus.JSON(entries)
		if err != nil {
			return fail(err)
		}
		_, err = stdout.Write(b)
		if err != nil {
			return fail(err)
		}
	case o.Service != "" && len(entries) == 1:
		if err := lbstatus.WriteDetail(stdout, entries[0], serverNow); err != nil {
			return fail(err)
		}
	case len(entries) == 0:
		where := "in namespace " + o.Namespace
		if *all {
			where = "in any namespace"
		}
		fmt.Fprintf(stderr, "No LoadBalancer Services %s.\n", where)
	default:
		if err := lbstatus.WriteTable(stdout, entries, serverNow, *all); err != nil {
			return fail(err)
		}
	}
	return exitOK
}
