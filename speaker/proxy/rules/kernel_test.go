package rules_test

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ironlb/ironlb/speaker/proxy/internal/kerneltest"
)

// TestGoldenRulesetsLoadInKernel feeds every golden ruleset to the real nft, inside a network
// namespace of its own (never the root namespace's firewall): the fake accepts any text, the
// kernel only valid rules.
func TestGoldenRulesetsLoadInKernel(t *testing.T) {
	ns := kerneltest.NS(t, "ilbt-nft-golden").Name
	files, err := filepath.Glob(filepath.Join("testdata", "*.golden"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden rulesets: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if out, err := exec.Command("ip", "netns", "exec", ns, "nft", "-f", f).CombinedOutput(); err != nil {
				t.Errorf("nft -f %s: %v\n%s", f, err, out)
			}
			if out, err := exec.Command("ip", "netns", "exec", ns, "nft", "flush", "ruleset").CombinedOutput(); err != nil {
				t.Fatalf("nft flush ruleset: %v: %s", err, out)
			}
		})
	}
}
