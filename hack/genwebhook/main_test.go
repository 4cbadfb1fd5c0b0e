package main

import (
	"os"
	"path/filepath"
	"testing"
)

// The committed manifest is what the generator writes now: a change to the webhooks in
// controller/webhook shows up here (and in `make verify-generated`) until `make bundle` runs.
func TestManifestIsCurrent(t *testing.T) {
	want, err := render()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join("..", "..", "config", "webhook", "validating_webhook.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("config/webhook/validating_webhook.yaml is stale: run `make bundle`")
	}
}
