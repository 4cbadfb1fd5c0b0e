package demo

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/ironlb/ironlb/e2etest/lab"
)

// TestDemo runs `make demo`'s story and checks it tells what it promises: the seed Service's
// EXTERNAL-IP, one node answering ARP, a takeover with its time, the VIP back home, and
// nothing left behind.
func TestDemo(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: builds network namespaces")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := Run(ctx, Options{}, &out); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		`testsvc +LoadBalancer +\S+ +192\.168\.50\.50 `,
		`node\d answers, and only it`,
		`node\d took over: its gratuitous ARP reached the client \d+ms after the cut`,
		`node\d answers again, alone`,
	} {
		if !regexp.MustCompile(want).Match(out.Bytes()) {
			t.Errorf("the story lacks %q:\n%s", want, out.String())
		}
	}
	if left, err := lab.Namespaces(context.Background(), Prefix); err != nil || len(left) > 0 {
		t.Errorf("left behind: %v (%v)", left, err)
	}
}
