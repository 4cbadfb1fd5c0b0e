package ifaces

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// iffNoARP is IFF_NOARP from <linux/if.h>; the net package does not expose it.
const iffNoARP = 0x80

// Lister lists the links of the current network namespace.
type Lister interface {
	Links() ([]Link, error)
}

// System returns a Lister that uses net.Interfaces() for name, index and IFF_UP, and reads
// sysfs under root (normally "/sys") for IFF_NOARP and bond membership.
//
// /sys/class/net lists the interfaces of the network namespace sysfs was mounted in, not the
// namespace of the reading process. `ip netns exec` remounts /sys for the namespace it enters,
// and a hostNetwork pod runs in the host namespace and sees the host's /sys, so both agree with
// net.Interfaces. A pod that is not hostNetwork but mounts the host's /sys would not: every
// name would be missing from sysfs and be skipped as vanished, leaving no links.
func System(root string) Lister {
	return newSystem(root, net.Interfaces)
}

func newSystem(root string, interfaces func() ([]net.Interface, error)) *system {
	return &system{root: root, interfaces: interfaces}
}

type system struct {
	root       string
	interfaces func() ([]net.Interface, error)
}

var _ Lister = (*system)(nil)

// Links returns the links in the order net.Interfaces reports them (by index). An interface
// whose sysfs directory is gone by the time it is read was deleted after the listing and is
// skipped; the next listing will not show it either.
func (s *system) Links() ([]Link, error) {
	ifs, err := s.interfaces()
	if err != nil {
		return nil, fmt.Errorf("list network interfaces: %w", err)
	}
	links := make([]Link, 0, len(ifs))
	for _, ifi := range ifs {
		l, ok, err := s.link(ifi)
		if err != nil {
			return nil, err
		}
		if ok {
			links = append(links, l)
		}
	}
	return links, nil
}

// link completes ifi from sysfs. ok is false when the interface has vanished.
func (s *system) link(ifi net.Interface) (l Link, ok bool, err error) {
	dir := filepath.Join(s.root, "class", "net", ifi.Name)
	flags, err := readFlags(filepath.Join(dir, "flags"))
	if errors.Is(err, fs.ErrNotExist) {
		return Link{}, false, nil
	}
	if err != nil {
		return Link{}, false, fmt.Errorf("read flags of interface %q: %w", ifi.Name, err)
	}
	bond, err := isBondMember(dir)
	if err != nil {
		return Link{}, false, fmt.Errorf("check bond membership of interface %q: %w", ifi.Name, err)
	}
	return Link{
		Name:       ifi.Name,
		Index:      ifi.Index,
		Up:         ifi.Flags&net.FlagUp != 0,
		NoARP:      flags&iffNoARP != 0,
		BondMember: bond,
	}, true, nil
}

// readFlags parses a sysfs flags file. The kernel writes it as "0x%x\n"; the 0x prefix is
// required so that a bare number is rejected rather than silently read in the wrong base.
func readFlags(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err // *fs.PathError names the file
	}
	s := strings.TrimSpace(string(b))
	hex, ok := strings.CutPrefix(s, "0x")
	if !ok {
		return 0, fmt.Errorf("parse %s: %q is not 0x-prefixed hex", path, s)
	}
	v, err := strconv.ParseUint(hex, 16, 32)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", path, err)
	}
	return v, nil
}

// isBondMember reports whether the interface whose sysfs directory is dir is enslaved to a
// bond. The bonding driver creates bonding_slave/ on each member; master is a symlink present
// on any enslaved port (bridge, team, VRF too), and master/bonding exists only when that
// master is a bond. Either one is enough, so a kernel lacking one of them is still covered.
// Ports of a bridge, team or VRF are not bond members and are decided like any other link.
func isBondMember(dir string) (bool, error) {
	for _, p := range []string{
		filepath.Join(dir, "bonding_slave"),
		filepath.Join(dir, "master", "bonding"),
	} {
		_, err := os.Stat(p)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return false, err // *fs.PathError names the file
		}
	}
	return false, nil
}
