package ifaces

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Fake sysfs layout written by sysfs.add (root is a t.TempDir()):
//
//	<root>/class/net/<name>/flags            "0x1003\n" style
//	<root>/class/net/<name>/bonding_slave/   on bond members (bond="slave")
//	<root>/class/net/<name>/master -> ../<m> on enslaved ports (bond="master:<m>")
//	<root>/class/net/<bond>/bonding/         on bond masters
//
// As in the real /sys/class/net, master is a relative symlink to the master's directory.

type sysfs struct {
	t    *testing.T
	root string
	ifs  []net.Interface
}

func newSysfs(t *testing.T) *sysfs {
	t.Helper()
	return &sysfs{t: t, root: t.TempDir()}
}

func (s *sysfs) dir(name string) string {
	return filepath.Join(s.root, "class", "net", name)
}

// add registers an interface with net.Interfaces-style flags and writes its sysfs flags.
func (s *sysfs) add(name string, up bool, flags string) {
	s.t.Helper()
	f := net.Flags(0)
	if up {
		f |= net.FlagUp
	}
	s.ifs = append(s.ifs, net.Interface{Name: name, Index: len(s.ifs) + 1, Flags: f})
	s.mkdir(s.dir(name))
	if err := os.WriteFile(filepath.Join(s.dir(name), "flags"), []byte(flags), 0o644); err != nil {
		s.t.Fatal(err)
	}
}

func (s *sysfs) mkdir(p string) {
	s.t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		s.t.Fatal(err)
	}
}

func (s *sysfs) lister() *system {
	return newSystem(s.root, func() ([]net.Interface, error) { return s.ifs, nil })
}

func TestSystemLinks(t *testing.T) {
	s := newSysfs(t)
	s.add("lo", true, "0x9\n")
	s.add("eth0", true, "0x1803\n") // IFF_UP|IFF_BROADCAST|IFF_SLAVE|IFF_MULTICAST
	s.mkdir(filepath.Join(s.dir("eth0"), "bonding_slave"))
	s.add("eth1", true, "0x1803\n")
	if err := os.Symlink("../bond0", filepath.Join(s.dir("eth1"), "master")); err != nil {
		t.Fatal(err)
	}
	s.add("bond0", true, "0x1403\n")
	s.mkdir(filepath.Join(s.dir("bond0"), "bonding"))
	s.add("br0", true, "0x1003\n")
	s.add("ens5", true, "0x1003\n")
	if err := os.Symlink("../br0", filepath.Join(s.dir("ens5"), "master")); err != nil { // bridge port
		t.Fatal(err)
	}
	s.add("wg0", true, "0x91\n") // IFF_UP|IFF_POINTOPOINT|IFF_NOARP, as an up WireGuard link shows it
	s.add("ens6", false, "0x1002\n")
	s.add("gone0", true, "0x1003\n")
	if err := os.RemoveAll(s.dir("gone0")); err != nil { // deleted after net.Interfaces
		t.Fatal(err)
	}
	s.add("ens7", true, "  0x1003  \n") // surrounding whitespace tolerated

	got, err := s.lister().Links()
	if err != nil {
		t.Fatalf("Links: %v", err)
	}
	want := []Link{
		{Name: "lo", Index: 1, Up: true},
		{Name: "eth0", Index: 2, Up: true, BondMember: true},
		{Name: "eth1", Index: 3, Up: true, BondMember: true},
		{Name: "bond0", Index: 4, Up: true},
		{Name: "br0", Index: 5, Up: true},
		{Name: "ens5", Index: 6, Up: true},
		{Name: "wg0", Index: 7, Up: true, NoARP: true},
		{Name: "ens6", Index: 8},
		{Name: "ens7", Index: 10, Up: true},
	}
	if len(got) != len(want) {
		t.Fatalf("Links() = %+v\nwant %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("link %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestSystemErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(s *sysfs)
		want  []string // substrings of the error
	}{
		{
			name:  "malformed flags",
			setup: func(s *sysfs) { s.add("eth0", true, "zz\n") },
			want:  []string{`interface "eth0"`, filepath.Join("class", "net", "eth0", "flags"), "not 0x-prefixed hex"},
		},
		{
			name:  "bad hex digits",
			setup: func(s *sysfs) { s.add("eth0", true, "0xzz\n") },
			want:  []string{`interface "eth0"`, filepath.Join("class", "net", "eth0", "flags"), "invalid syntax"},
		},
		{
			name:  "empty flags file",
			setup: func(s *sysfs) { s.add("eth0", true, "") },
			want:  []string{`interface "eth0"`, filepath.Join("class", "net", "eth0", "flags")},
		},
		{
			name: "unreadable flags",
			setup: func(s *sysfs) {
				s.add("eth0", true, "0x1003\n")
				// A directory in place of the file: read fails with EISDIR, even as root.
				p := filepath.Join(s.dir("eth0"), "flags")
				if err := os.Remove(p); err != nil {
					s.t.Fatal(err)
				}
				s.mkdir(p)
			},
			want: []string{`read flags of interface "eth0"`, filepath.Join("class", "net", "eth0", "flags")},
		},
		{
			name: "bond check fails",
			setup: func(s *sysfs) {
				s.add("eth0", true, "0x1003\n")
				// A symlink loop: stat fails with ELOOP, which is not "does not exist".
				if err := os.Symlink("bonding_slave", filepath.Join(s.dir("eth0"), "bonding_slave")); err != nil {
					s.t.Fatal(err)
				}
			},
			want: []string{`check bond membership of interface "eth0"`, "bonding_slave"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSysfs(t)
			s.add("lo", true, "0x9\n") // a good link first: one bad link fails the listing
			tt.setup(s)
			links, err := s.lister().Links()
			if err == nil {
				t.Fatalf("Links() = %+v, want error", links)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestSystemListError(t *testing.T) {
	boom := errors.New("netlink: boom")
	l := newSystem(t.TempDir(), func() ([]net.Interface, error) { return nil, boom })
	_, err := l.Links()
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "list network interfaces") {
		t.Errorf("Links() error = %v, want wrapped %v", err, boom)
	}
}

func TestReadFlags(t *testing.T) {
	tests := []struct {
		content string
		want    uint64
		wantErr bool
	}{
		{"0x1003\n", 0x1003, false},
		{"0x80", 0x80, false},
		{"0X80\n", 0, true}, // the kernel writes lowercase 0x
		{"1003\n", 0, true}, // a bare number is ambiguous
		{"0x\n", 0, true},
		{"0x100000000\n", 0, true}, // flags are 32 bits
		{"", 0, true},
	}
	for _, tt := range tests {
		p := filepath.Join(t.TempDir(), "flags")
		if err := os.WriteFile(p, []byte(tt.content), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := readFlags(p)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("readFlags(%q) = %#x, %v; want %#x, err=%v", tt.content, got, err, tt.want, tt.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), p) {
			t.Errorf("readFlags(%q) error %q does not name %s", tt.content, err, p)
		}
	}
}
