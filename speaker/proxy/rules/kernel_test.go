package rules_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestGoldenRulesetsLoadInKernel feeds every golden ruleset to the real nft, inside a network
// namespace of its own (never the root namespace's firewall): the fake accepts any text, the
// kernel only valid rules.
func TestGoldenRulesetsLoadInKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft not installed (Debian package nftables)")
	}
	files, err := filepath.Glob(filepath.Join("testdata", "*.golden"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden rulesets: %v", err)
	}
	const ns = "ilbt-nft-golden"
	_ = exec.Command("ip", "netns", "del", ns).Run() // a killed run's leftover
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
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
