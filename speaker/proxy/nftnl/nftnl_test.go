package nftnl

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"sigs.k8s.io/knftables"

	"github.com/ironlb/ironlb/e2etest/lab"
	"github.com/ironlb/ironlb/speaker/proxy/rules"
)

// TestWriter, in a network namespace of its own with a small table made by nft: Objects
// lists it; Replace refills a set and a verdict map in one batch; a batch with a refused part
// (a set that does not exist) changes nothing.
func TestWriter(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a network namespace")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft not installed (Debian package nftables)")
	}
	const ns = "ilbt-nftnl"
	_ = exec.Command("ip", "netns", "del", ns).Run() // a killed run's leftover
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	h := &lab.Host{Name: ns}
	nft := func(args ...string) string {
		t.Helper()
		var out []byte
		err := h.Do(func() error {
			var err error
			out, err = exec.Command("nft", args...).CombinedOutput()
			return err
		})
		if err != nil {
			t.Fatalf("nft %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	script := `add table ip demo
add chain ip demo target
add set ip demo ports { type inet_service ; }
add map ip demo dispatch { type ipv4_addr : verdict ; }
add element ip demo ports { 1 }
`
	if err := h.Do(func() error {
		cmd := exec.Command("nft", "-f", "-")
		cmd.Stdin = strings.NewReader(script)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Logf("%s", out)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	w := &Writer{Family: knftables.IPv4Family, Table: "demo"}

	var objs rules.KernelObjects
	if err := h.Do(func() (err error) { objs, err = w.Objects(); return err }); err != nil {
		t.Fatal(err)
	}
	if !objs.Exists || strings.Join(objs.Chains, ",") != "target" || strings.Join(objs.Sets, ",") != "ports" || strings.Join(objs.Maps, ",") != "dispatch" {
		t.Errorf("Objects = %+v", objs)
	}
	missing := &Writer{Family: knftables.IPv4Family, Table: "nothing"}
	if err := h.Do(func() (err error) { objs, err = missing.Objects(); return err }); err != nil || objs.Exists {
		t.Errorf("Objects of a missing table = %+v, %v", objs, err)
	}

	port := func(p uint16) rules.Element { return rules.Element{Key: []byte{byte(p >> 8), byte(p)}} }
	good := []rules.SetElements{
		{Name: "ports", Elements: []rules.Element{port(80), port(443)}},
		{Name: "dispatch", Verdicts: true, Elements: []rules.Element{
			{Key: []byte{10, 96, 0, 1}, Verdict: rules.Verdict{Kind: rules.VerdictGoto, Chain: "target"}},
			{Key: []byte{10, 96, 0, 2}, Verdict: rules.Verdict{Kind: rules.VerdictDrop}},
		}},
	}
	if err := h.Do(func() error { return w.Replace(good) }); err != nil {
		t.Fatal(err)
	}
	got := nft("list", "table", "ip", "demo")
	for _, want := range []string{"elements = { 80, 443 }", "10.96.0.1 : goto target", "10.96.0.2 : drop"} {
		if !strings.Contains(got, want) {
			t.Errorf("after Replace, table lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "elements = { 1,") || strings.Contains(got, "{ 1 }") {
		t.Errorf("Replace kept the old element:\n%s", got)
	}

	bad := []rules.SetElements{{Name: "ports", Elements: []rules.Element{port(8080)}}, {Name: "no-such-set", Elements: []rules.Element{port(1)}}}
	if err := h.Do(func() error { return w.Replace(bad) }); err == nil {
		t.Fatal("Replace into a missing set succeeded")
	}
	if after := nft("list", "table", "ip", "demo"); after != got {
		t.Errorf("a refused batch changed the table:\n%s\nwant\n%s", after, got)
	}
}
