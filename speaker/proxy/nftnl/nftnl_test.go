package nftnl

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"sigs.k8s.io/knftables"

	"github.com/ironlb/ironlb/speaker/proxy/internal/kerneltest"
	"github.com/ironlb/ironlb/speaker/proxy/rules"
)

// TestWriter, in a network namespace of its own with a small table made by nft: Objects
// lists it (chains with their rule counts); Replace refills a set and a verdict map in one
// batch; a batch with a refused part (a set that does not exist) changes nothing, and one
// refused in thousands of messages reports the kernel's cause.
func TestWriter(t *testing.T) {
	h := kerneltest.NS(t, "ilbt-nftnl")
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
add rule ip demo target counter
add rule ip demo target accept
add chain ip demo empty
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
	if !objs.Exists || strings.Join(objs.Chains, ",") != "target,empty" || objs.Rules["target"] != 2 || objs.Rules["empty"] != 0 || strings.Join(objs.Sets, ",") != "ports" || strings.Join(objs.Maps, ",") != "dispatch" {
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

	// Refused in every one of its messages (a set gone, as after an external nft flush
	// ruleset): the error still names the kernel's cause, not a full receive buffer.
	var many []rules.Element
	for i := range 20000 {
		many = append(many, port(uint16(i)))
	}
	err := h.Do(func() error { return w.Replace([]rules.SetElements{{Name: "no-such-set", Elements: many}}) })
	if !errors.Is(err, unix.ENOENT) {
		t.Errorf("Replace of 20000 elements into a missing set: %v, want ENOENT", err)
	}
}
