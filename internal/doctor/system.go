package doctor

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// iffNoARP is IFF_NOARP from <linux/if.h>; the net package does not expose it.
const iffNoARP = 0x80

// System reads this machine: links and addresses from the kernel (net.Interfaces), bridges
// and IFF_NOARP from sysfs under sysRoot ("/sys"), sysctls from procRoot ("/proc").
//
// Both follow the network namespace of the process, as the doctor needs: /proc/sys/net is
// resolved per reading process, `ip netns exec` remounts /sys for the namespace it enters, and a
// hostNetwork pod (the speaker) sees the host's.
func System(sysRoot, procRoot string) NodeReader {
	return &system{sys: sysRoot, proc: procRoot, interfaces: net.Interfaces}
}

type system struct {
	sys, proc  string
	interfaces func() ([]net.Interface, error) // net.Interfaces; tests list their own
}

func (s *system) ReadNode() (*NodeFacts, error) {
	ifs, err := s.interfaces()
	if err != nil {
		return nil, fmt.Errorf("list network interfaces: %w", err)
	}
	nf := &NodeFacts{Sysctls: map[string]string{}}
	for _, ifi := range ifs {
		l := Link{Name: ifi.Name, Index: ifi.Index, MAC: ifi.HardwareAddr,
			Up: ifi.Flags&net.FlagUp != 0, Loopback: ifi.Flags&net.FlagLoopback != 0}
		dir := filepath.Join(s.sys, "class", "net", ifi.Name)
		if b, err := os.ReadFile(filepath.Join(dir, "flags")); err == nil {
			if v, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(string(b)), "0x"), 16, 32); err == nil {
				l.NoARP = v&iffNoARP != 0
			}
		} else if errors.Is(err, fs.ErrNotExist) {
			continue // deleted since the listing
		}
		if _, err := os.Stat(filepath.Join(dir, "bridge")); err == nil {
			l.Bridge = true
			// Best effort: an unreadable brif directory leaves the bridge without ports,
			// which the check then reports as bridging nothing.
			if ents, err := os.ReadDir(filepath.Join(dir, "brif")); err == nil {
				for _, e := range ents {
					l.BridgePorts = append(l.BridgePorts, e.Name())
				}
			}
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			return nil, fmt.Errorf("list addresses of %s: %w", ifi.Name, err)
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(ipn.IP)
			if !ok {
				continue
			}
			ones, _ := ipn.Mask.Size()
			if ip.Is4In6() {
				ip = ip.Unmap()
			}
			l.Addrs = append(l.Addrs, netip.PrefixFrom(ip, ones))
		}
		nf.Links = append(nf.Links, l)
	}
	for _, name := range SysctlNames(nf.Links) {
		b, err := os.ReadFile(filepath.Join(s.proc, "sys", sysctlPath(name)))
		if err != nil {
			continue // absent: the check says what that means
		}
		nf.Sysctls[name] = strings.TrimSpace(string(b))
	}
	return nf, nil
}

// sysctlPath turns a dotted sysctl name into its path under /proc/sys. Interface names may
// hold dots (eth0.100), so the per-interface keys net.ipv4.conf.<iface>.<key> keep them.
func sysctlPath(name string) string {
	if rest, ok := strings.CutPrefix(name, "net.ipv4.conf."); ok {
		if i := strings.LastIndex(rest, "."); i > 0 {
			return filepath.Join("net", "ipv4", "conf", rest[:i], rest[i+1:])
		}
	}
	return strings.ReplaceAll(name, ".", "/")
}
