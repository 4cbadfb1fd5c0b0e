package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime"
	"time"

	"github.com/spf13/pflag"

	"github.com/ironlb/ironlb/internal/doctor"
)

func doctorCmd(ctx context.Context, prog string, args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet(prog+" doctor", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	kf := bindKubeFlags(fs)
	_ = fs.MarkHidden("namespace") // the doctor looks at every namespace
	output := fs.StringP("output", "o", "text", "output format: text or json")
	nodeName := fs.String("node-name", os.Getenv("NODE_NAME"), "this node's Kubernetes name (default $NODE_NAME; empty finds the Node by this machine's addresses)")
	sysNS := fs.String("system-namespace", envOr("METALLB_NAMESPACE", "metallb-system"), "namespace of the metallb.io configuration and status objects")
	lbClass := fs.String("lb-class", "", lbClassUsage)
	vipFlags := fs.StringSlice("vip", nil, "also probe these IPs for duplicate ARP answers (works without a cluster connection)")
	window := fs.Duration("arp-window", doctor.DefaultWindow, "how long the ARP probe listens for answers")
	noProbe := fs.Bool("no-probe", false, "do not send ARP requests")
	clusterOnly := fs.Bool("cluster-only", false, "skip the checks of this machine")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s doctor [flags]\n\nChecks this node (when it is one) and the cluster; exits 1 when it finds a problem.\n\nFlags:\n%s", prog, fs.FlagUsages())
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 || (*output != "text" && *output != "json") {
		fs.Usage()
		return exitUsage
	}
	var vips []netip.Addr
	for _, s := range *vipFlags {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			fmt.Fprintf(stderr, "%s doctor: --vip %q: %v\n", prog, s, err)
			return exitUsage
		}
		vips = append(vips, ip)
	}

	d := &doctor.Doctor{NodeName: *nodeName, VIPs: vips, Window: *window}
	switch {
	case *clusterOnly:
		d.NodeSkip = "--cluster-only"
	case runtime.GOOS != "linux":
		d.NodeSkip = "this machine runs " + runtime.GOOS + ", not a Linux node"
	default:
		d.Node = doctor.System("/sys", "/proc")
	}
	switch {
	case *noProbe:
		d.ProbeSkip = "--no-probe"
	case runtime.GOOS == "linux":
		d.Prober = doctor.ARPProber()
	default:
		d.ProbeSkip = "ARP probes need Linux"
	}
	c, rc, err := kf.client(10 * time.Second)
	if err != nil {
		d.ClusterSkip = err.Error()
	} else {
		d.Cluster, d.Server = doctor.Kubernetes(c, *sysNS, *lbClass), rc.Host
	}

	report := d.Run(ctx)
	if *output == "json" {
		b, err := report.JSON()
		if err != nil {
			fmt.Fprintf(stderr, "%s doctor: %v\n", prog, err)
			return exitProblems
		}
		_, _ = stdout.Write(b)
	} else if err := report.WriteText(stdout); err != nil {
		fmt.Fprintf(stderr, "%s doctor: %v\n", prog, err)
		return exitProblems
	}
	if report.Problems() > 0 {
		return exitProblems
	}
	return exitOK
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
