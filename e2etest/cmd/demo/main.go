// Command demo is `make demo`: the seeds' story on one machine (see package demo).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"go.uber.org/zap/zapcore"

	"github.com/ironlb/ironlb/e2etest/demo"
)

func main() {
	var opts demo.Options
	flag.BoolVar(&opts.Keep, "keep", false, "leave everything running until Ctrl-C, and print how to look around")
	down := flag.Bool("down", false, "remove what a killed demo left behind, and exit")
	flag.Parse()
	// The story is the output; the components log only errors.
	ctrl.SetLogger(zap.New(zap.Level(zapcore.ErrorLevel)))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	if *down {
		err = demo.Down(ctx)
	} else {
		err = demo.Run(ctx, opts, os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}
