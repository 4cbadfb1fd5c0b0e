package doctor

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestSystem reads a made-up /sys and /proc: flags, bridges and their ports, sysctls of an
// interface whose name holds a dot. The interfaces carry indexes no kernel has, so they have no
// addresses.
func TestSystem(t *testing.T) {
	root := t.TempDir()
	sys, proc := filepath.Join(root, "sys"), filepath.Join(root, "proc")
	write := func(path, content string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mkdir := func(path string) {
		t.Helper()
		if err := os.MkdirAll(path, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	classNet := filepath.Join(sys, "class", "net")
	write(filepath.Join(classNet, "eth0.100", "flags"), "0x1003\n")
	write(filepath.Join(classNet, "kube-ipvs0", "flags"), "0x82\n") // IFF_NOARP, down
	write(filepath.Join(classNet, "cni0", "flags"), "0x1003\n")
	mkdir(filepath.Join(classNet, "cni0", "bridge"))
	mkdir(filepath.Join(classNet, "cni0", "brif", "veth1a2b"))
	mkdir(filepath.Join(classNet, "cni0", "brif", "veth3c4d"))
	write(filepath.Join(classNet, "docker0", "flags"), "0x1003\n")
	mkdir(filepath.Join(classNet, "docker0", "bridge"))
	mkdir(filepath.Join(classNet, "docker0", "brif"))
	// "gone" is listed but deleted before its sysfs directory is read: left out.
	write(filepath.Join(proc, "sys", "net", "ipv4", "ip_forward"), "1\n")
	write(filepath.Join(proc, "sys", "net", "ipv4", "conf", "all", "arp_ignore"), "1\n")
	write(filepath.Join(proc, "sys", "net", "ipv4", "conf", "eth0.100", "arp_ignore"), "2\n")
	// No /proc/sys/net/bridge: br_netfilter is not loaded.

	s := &system{sys: sys, proc: proc, interfaces: func() ([]net.Interface, error) {
		return []net.Interface{
			{Index: 100001, Name: "eth0.100", Flags: net.FlagUp},
			{Index: 100002, Name: "kube-ipvs0"},
			{Index: 100003, Name: "cni0", Flags: net.FlagUp},
			{Index: 100004, Name: "docker0", Flags: net.FlagUp},
			{Index: 100005, Name: "gone", Flags: net.FlagUp},
		}, nil
	}}
	nf, err := s.ReadNode()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	byName := map[string]Link{}
	for _, l := range nf.Links {
		names = append(names, l.Name)
		byName[l.Name] = l
	}
	if want := []string{"eth0.100", "kube-ipvs0", "cni0", "docker0"}; !slices.Equal(names, want) {
		t.Fatalf("links %v, want %v", names, want)
	}
	if l := byName["kube-ipvs0"]; !l.NoARP || l.Up || l.Bridge {
		t.Errorf("kube-ipvs0: %+v, want NOARP, down, no bridge", l)
	}
	if l := byName["cni0"]; !l.Bridge || !slices.Equal(l.BridgePorts, []string{"veth1a2b", "veth3c4d"}) || l.NoARP {
		t.Errorf("cni0: %+v, want a bridge with ports veth1a2b, veth3c4d", l)
	}
	if l := byName["docker0"]; !l.Bridge || len(l.BridgePorts) != 0 {
		t.Errorf("docker0: %+v, want a bridge without ports", l)
	}
	for name, want := range map[string]string{
		sysctlIPForward:         "1",
		sysctlARPIgnoreAll:      "1",
		arpIgnoreOf("eth0.100"): "2",
	} {
		if got := nf.Sysctls[name]; got != want {
			t.Errorf("sysctl %s = %q, want %q", name, got, want)
		}
	}
	if v, ok := nf.Sysctls[sysctlBridgeNF]; ok {
		t.Errorf("sysctl %s = %q, want absent", sysctlBridgeNF, v)
	}
	if r := checkBridgeNF(nf); len(r) != 1 || r[0].Severity != Error || r[0].Subject != "bridge cni0" {
		t.Errorf("bridge check on these facts: %+v, want an error naming cni0 only", r)
	}
}
