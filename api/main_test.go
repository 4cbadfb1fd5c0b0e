// Package api_test checks the metallb.io CRDs against the real API server: that they install,
// that users' manifests apply, and that invalid objects are rejected with the field named.
package api_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/ironlb/ironlb/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	var err error
	if env, err = testenv.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop test control plane:", err)
	}
	os.Exit(code)
}
