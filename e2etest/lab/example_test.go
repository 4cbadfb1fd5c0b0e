package lab_test

import (
	"context"
	"fmt"
	"log"

	"github.com/ironlb/ironlb/e2etest/lab"
)

// A data-path test starts a lab, runs a program on a node and checks what the client sees.
// Without an Output comment the example is compiled but not run: it needs root.
func Example() {
	ctx := context.Background()
	l, err := lab.Start(ctx, lab.Config{Prefix: "ilb-demo", Nodes: 2})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()

	// Background processes die with the lab.
	if _, err := l.Nodes[0].Start(ctx, "sleep", "60"); err != nil {
		log.Fatal(err)
	}
	out, err := l.Client.Exec(ctx, "ping", "-c1", "-W1", l.Nodes[0].IPv4.String())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(out)

	// Pull node1's cable; the client loses it until the link is restored.
	if err := l.CutLink(l.Nodes[0]); err != nil {
		log.Fatal(err)
	}
	if err := l.RestoreLink(l.Nodes[0]); err != nil {
		log.Fatal(err)
	}
}
