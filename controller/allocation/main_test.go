package allocation_test

import (
	"testing"

	"github.com/ironlb/ironlb/controller/app"
	"github.com/ironlb/ironlb/controller/app/apptest"
	"github.com/ironlb/ironlb/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// startController runs a controller against the test API server (see apptest.Start).
func startController(t testing.TB, configNS string, mutate ...func(*app.Config)) (stop func()) {
	t.Helper()
	return apptest.Start(t, env.Config, configNS, mutate...)
}
