// Package api_test checks the metallb.io CRDs against the real API server: that they install,
// that users' manifests apply, and that invalid objects are rejected with the field named.
package api_test

import (
	"testing"

	"github.com/ironlb/ironlb/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }
