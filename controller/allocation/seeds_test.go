package allocation_test

import (
	"os"
	"path/filepath"
)

func readSeed(name string) ([]byte, error) {
	return os.ReadFile(filepath.Join(env.Root, "e2etest", "testdata", "seeds", name))
}
