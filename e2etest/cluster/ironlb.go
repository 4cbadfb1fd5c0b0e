package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"

	"github.com/ironlb/ironlb/e2etest/lab"
	"github.com/ironlb/ironlb/internal/doctor"
)

// BuildIronlb builds the ironlb command (speaker/cmd/ironlb) from the repository at root into dir.
func BuildIronlb(root, dir string) (string, error) {
	bin := filepath.Join(dir, "ironlb")
	cmd := exec.Command("go", "build", "-o", bin, "./speaker/cmd/ironlb")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./speaker/cmd/ironlb: %w\n%s", err, out)
	}
	return bin, nil
}

// Doctor runs `ironlb doctor -o json` inside node n's namespace, as a user would on the node,
// with the cluster's kubeconfig (the node reaches the API server through its forwarder), and
// returns the report and the exit code. args are added to the command line.
func (c *Cluster) Doctor(ctx context.Context, bin string, n *lab.Node, args ...string) (doctor.Report, int, error) {
	argv := append([]string{bin, "doctor", "-o", "json", "--kubeconfig", c.cfg.Kubeconfig,
		"--system-namespace", c.cfg.Namespace}, args...)
	out, err := n.Exec(ctx, argv...)
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return doctor.Report{}, -1, fmt.Errorf("run ironlb doctor on %s: %w", n.Name, err)
		}
		code = ee.ExitCode() // 1: problems found, the report is on stdout all the same
	}
	var r doctor.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		return r, code, fmt.Errorf("ironlb doctor on %s printed no report (%w): %s", n.Name, err, out)
	}
	return r, code, nil
}
