// Package e2etest holds the end-to-end tests and the network-namespace lab they run in.
package e2etest

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestSeedManifestsVerbatim keeps testdata/seeds honest: each manifest must still appear byte
// for byte in the seed tutorial it was copied from, so "applies unchanged" means what it says.
func TestSeedManifestsVerbatim(t *testing.T) {
	seedDir := filepath.Join("..", "..", "shared", "seeds")
	if _, err := os.Stat(seedDir); err != nil {
		t.Skip("seed tutorials not beside the repository (../shared/seeds); nothing to compare with")
	}
	for file, seed := range map[string]string{
		"000-first-pool.yaml": "000_b7f10605986e791a.txt",
		"000-testsvc.yaml":    "000_b7f10605986e791a.txt",
		"001-cheap.yaml":      "001_21746fedaa0f1065.txt",
		"002-first-pool.yaml": "002_27f18afdd52fbc73.txt",
	} {
		manifest, err := os.ReadFile(filepath.Join("testdata", "seeds", file))
		if err != nil {
			t.Fatal(err)
		}
		text, err := os.ReadFile(filepath.Join(seedDir, seed))
		if err != nil {
			t.Fatal(err)
		}
		if len(manifest) == 0 || !bytes.Contains(text, manifest) {
			t.Errorf("testdata/seeds/%s no longer appears verbatim in %s", file, seed)
		}
	}
}
