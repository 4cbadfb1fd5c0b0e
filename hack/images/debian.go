package main

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"slices"
	"strings"
)

// This file copies a program from the build machine's Debian packages into an image: the
// speaker's proxy core runs nft (through knftables), which is dynamically linked. Everything is
// found through dpkg's file lists and the loader (ldd), never from a list of paths kept here,
// so a point release of the libraries or another Debian version needs no change. Only files of
// installed packages are read, so the result is a pure function of the installed versions.

// nftRuntimeFiles are what nft opens besides its libraries, found with strace in a chroot
// holding only nft, its libraries and the loader: a service name in a rule ("udp dport domain")
// is resolved through /etc/services, a protocol name through /etc/protocols. Both come from
// netbase. nft also tries /etc/iproute2/{rt_marks,rt_realms,group} and /etc/connlabel.conf
// and goes on without them: the proxy's rules use none of those names.
var nftRuntimeFiles = []string{"/etc/protocols", "/etc/services"}

// osIdentityFiles name the Debian release, so image scanners (trivy, grype) know which security
// tracker to match the packages recorded in /var/lib/dpkg/status.d against.
var osIdentityFiles = []string{"/etc/debian_version", "/etc/os-release"}

// statusDir holds one dpkg status stanza per package, as in Google's distroless images: the
// place image scanners look for packages in an image without a dpkg database.
const statusDir = "/var/lib/dpkg/status.d"

// debBundle is what collectProgram took from the build machine.
type debBundle struct {
	// program is the program's path in the image, e.g. /usr/sbin/nft.
	program string
	// entries are the files and symlinks for the image, keyed by their absolute path there.
	entries map[string]layerEntry
	// versions maps each package the entries came from (without an architecture
	// qualifier, e.g. "libc6") to its installed version.
	versions map[string]string
}

// runner runs a command and returns its standard output; tests replace it.
type runner func(name string, args ...string) ([]byte, error)

// runHost runs a host command with a fixed environment: no LD_LIBRARY_PATH or LD_PRELOAD of the
// caller may change what ldd reports, and messages stay untranslated.
func runHost(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(name, args...)
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return out, fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, msg)
		}
		return out, fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return out, nil
}

// collectNft takes nft from the build machine's nftables package for a linux/arch image.
func collectNft(arch string) (debBundle, error) {
	b, err := collectProgram(runHost, "nftables", "nft", arch, nftRuntimeFiles)
	if err != nil {
		return debBundle{}, fmt.Errorf("add nft to the image: %w", err)
	}
	return b, nil
}

// collectProgram takes program prog of Debian package pkg from the build machine, with every
// shared library the loader resolves for it, the loader itself, the extra files (each with its
// package), the OS identity files, and per package its copyright file and dpkg status stanza.
func collectProgram(run runner, pkg, prog, arch string, extra []string) (debBundle, error) {
	if err := checkInstalled(run, pkg, prog); err != nil {
		return debBundle{}, err
	}
	out, err := run("dpkg-query", "-L", pkg)
	if err != nil {
		return debBundle{}, fmt.Errorf("list the files of package %s: %w", pkg, err)
	}
	progPath, err := findProgram(out, prog)
	if err != nil {
		return debBundle{}, fmt.Errorf("package %s: %w", pkg, err)
	}
	interp, err := checkELF(progPath, arch)
	if err != nil {
		return debBundle{}, fmt.Errorf("%s of package %s: %w", progPath, pkg, err)
	}
	out, err = run("ldd", progPath)
	if err != nil {
		return debBundle{}, fmt.Errorf("list the shared libraries of %s: %w", progPath, err)
	}
	libs, err := parseLdd(out)
	if err != nil {
		return debBundle{}, fmt.Errorf("list the shared libraries of %s: %w", progPath, err)
	}

	// Every path to copy, with the path it gets in the image. The program keeps the path
	// dpkg lists; libraries get the path dpkg lists for them (ldd may print another name
	// of the same file on a merged-/usr system), which is in the loader's default search
	// path; the loader gets exactly the program's PT_INTERP path, which the kernel opens.
	type want struct{ host, image string }
	var wants []want
	for _, l := range libs {
		if l != interp {
			wants = append(wants, want{l, ""})
		}
	}
	if interp != "" {
		wants = append(wants, want{interp, interp})
	}
	for _, f := range slices.Concat(extra, osIdentityFiles) {
		wants = append(wants, want{f, f})
	}

	// Follow the symlink chains on the host first, so one dpkg-query call finds the owner of
	// every file (each call reads all of dpkg's file lists, about a second).
	chains := make([][]hop, len(wants))
	var all []string
	for i, w := range wants {
		if chains[i], err = symlinkChain(w.host); err != nil {
			return debBundle{}, err
		}
		for _, h := range chains[i] {
			all = append(all, h.host)
		}
	}
	owners, err := findOwners(run, append(all, progPath))
	if err != nil {
		return debBundle{}, err
	}

	b := debBundle{program: owners[progPath].path, entries: map[string]layerEntry{}}
	pkgs := map[string]bool{}
	add := func(e layerEntry, host string) error {
		if old, ok := b.entries[e.name]; ok && (old.link != e.link || !bytes.Equal(old.content, e.content)) {
			return fmt.Errorf("%s: two different files for the same path in the image", "/"+e.name)
		}
		b.entries[e.name] = e
		pkgs[owners[host].pkg] = true
		return nil
	}
	progEntry, err := regularEntry(progPath, b.program)
	if err != nil {
		return debBundle{}, err
	}
	if err := add(progEntry, progPath); err != nil {
		return debBundle{}, err
	}
	for i, w := range wants {
		image := w.image
		if image == "" {
			image = owners[chains[i][0].host].path
		}
		for _, h := range chains[i] {
			var e layerEntry
			if h.link != "" {
				e = layerEntry{name: strings.TrimPrefix(image, "/"), link: h.link}
			} else if e, err = regularEntry(h.host, image); err != nil {
				return debBundle{}, err
			}
			if err := add(e, h.host); err != nil {
				return debBundle{}, err
			}
			// The next hop lives where the link points inside the image, which on a
			// merged-/usr build machine may differ from the host path of the file.
			image = resolveLink(image, h.link)
		}
	}

	names := slices.Sorted(func(yield func(string) bool) {
		for p := range pkgs {
			if !yield(p) {
				return
			}
		}
	})
	b.versions, err = packageRecords(run, names, b.entries)
	if err != nil {
		return debBundle{}, err
	}
	return b, nil
}

// hop is one step of a symlink chain on the build machine.
type hop struct {
	host string // path on the build machine
	link string // the symlink's target as written, "" for the regular file at the end
}

// symlinkChain follows p through its symlinks to a regular file.
func symlinkChain(p string) ([]hop, error) {
	var chain []hop
	for range 16 {
		fi, err := os.Lstat(p)
		if err != nil {
			return nil, fmt.Errorf("read %s for the image: %w", p, err)
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			if !fi.Mode().IsRegular() {
				return nil, fmt.Errorf("%s: not a regular file", p)
			}
			return append(chain, hop{host: p}), nil
		}
		t, err := os.Readlink(p)
		if err != nil {
			return nil, fmt.Errorf("read symlink %s: %w", p, err)
		}
		chain = append(chain, hop{host: p, link: t})
		p = resolveLink(p, t)
	}
	return nil, fmt.Errorf("%s: too many levels of symlinks", chain[0].host)
}

// checkInstalled fails with the apt-get command to run when pkg is not installed, or when the
// build machine is no Debian-based system.
func checkInstalled(run runner, pkg, prog string) error {
	out, err := run("dpkg-query", "-W", "-f", "${db:Status-Abbrev}", pkg)
	if errors.Is(err, exec.ErrNotFound) {
		return fmt.Errorf("dpkg-query not found: the image takes %s from the build machine's Debian package %s, so build it on Debian or Ubuntu after `apt-get install %s`", prog, pkg, pkg)
	}
	if err != nil || !strings.HasPrefix(string(out), "ii") {
		return fmt.Errorf("package %s is not installed on this build machine, and the image takes %s from it: run `apt-get install %s`", pkg, prog, pkg)
	}
	return nil
}

// findProgram returns the path of prog among a package's files (dpkg-query -L): the first one
// named prog in a bin or sbin directory.
func findProgram(list []byte, prog string) (string, error) {
	for l := range strings.Lines(string(list)) {
		p := strings.TrimSpace(l)
		if path.Base(p) == prog && strings.HasSuffix(path.Dir(p), "bin") {
			return p, nil
		}
	}
	return "", fmt.Errorf("ships no program %q in a bin or sbin directory", prog)
}

// checkELF checks the program runs on linux/arch and returns its ELF interpreter ("" if static).
// Taking the build machine's program only works for the build machine's architecture: ldd
// cannot run a foreign one, and the libraries are the host's.
func checkELF(file, arch string) (string, error) {
	f, err := elf.Open(file)
	if err != nil {
		return "", fmt.Errorf("parse ELF: %w", err)
	}
	defer f.Close()
	if want, ok := elfMachine[arch]; !ok || f.Machine != want {
		return "", fmt.Errorf("built for %s, but the image platform is linux/%s: build the image on a linux/%s machine, since it takes the program and its libraries from the build machine", f.Machine, arch, arch)
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, p.Filesz)
		if _, err := p.ReadAt(b, 0); err != nil {
			return "", fmt.Errorf("read ELF interpreter: %w", err)
		}
		return string(bytes.TrimRight(b, "\x00")), nil
	}
	return "", nil
}

// parseLdd returns the absolute paths ldd printed, in order: every library with "=> /path" and
// the loader's own line ("/lib64/ld-linux-x86-64.so.2 (0x...)"). The vDSO has no file; a
// library the loader cannot find is an error, since nft would not start either.
func parseLdd(out []byte) ([]string, error) {
	var paths []string
	for l := range strings.Lines(string(out)) {
		l = strings.TrimSpace(l)
		if l == "" || strings.Contains(l, "statically linked") || strings.Contains(l, "not a dynamic executable") {
			continue
		}
		lib, p, arrow := strings.Cut(l, "=>")
		if !arrow {
			p = lib
		}
		p = strings.TrimSpace(p)
		if strings.HasPrefix(p, "not found") {
			return nil, fmt.Errorf("the loader finds no %s", strings.TrimSpace(lib))
		}
		p, _, _ = strings.Cut(p, " (")
		if path.IsAbs(p) && !slices.Contains(paths, p) {
			paths = append(paths, path.Clean(p))
		}
	}
	return paths, nil
}

// owned is a file in dpkg's lists.
type owned struct {
	pkg  string // package, with an architecture qualifier for Multi-Arch: same ones ("libc6:amd64")
	path string // path dpkg lists
}

// findOwners finds each host path's package and the path dpkg lists for it. The paths may be
// other names of the listed file (/lib/x86_64-linux-gnu/x on a merged-/usr system where dpkg
// lists /usr/lib/x86_64-linux-gnu/x), so dpkg is asked for every file of that base name and
// the one that is the same file wins.
func findOwners(run runner, paths []string) (map[string]owned, error) {
	var patterns []string
	for _, p := range paths {
		if pat := "*/" + path.Base(p); !slices.Contains(patterns, pat) {
			patterns = append(patterns, pat)
		}
	}
	// dpkg-query exits 1 when some pattern matches nothing; the paths left without an owner
	// are reported below, by name.
	out, err := run("dpkg-query", append([]string{"-S"}, patterns...)...)
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		return nil, fmt.Errorf("find the packages of the image's files: %w", err)
	}
	candidates := parseSearch(out)
	owners := map[string]owned{}
	for _, p := range paths {
		fi, err := os.Lstat(p)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		for _, c := range candidates[path.Base(p)] {
			if ci, err := os.Lstat(c.path); err == nil && os.SameFile(fi, ci) {
				owners[p] = c
				break
			}
		}
		if _, ok := owners[p]; !ok {
			return nil, fmt.Errorf("%s belongs to no installed Debian package; the image takes only packaged files, so that their versions can be recorded", p)
		}
	}
	return owners, nil
}

// parseSearch reads dpkg-query -S output ("libc6:amd64: /lib/x86_64-linux-gnu/libc.so.6",
// "pkg1, pkg2: /path" for a path shared by packages, "diversion by ..." lines) into owners by
// base name. A shared path is credited to its first package.
func parseSearch(out []byte) map[string][]owned {
	m := map[string][]owned{}
	for l := range strings.Lines(string(out)) {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "diversion by") {
			continue
		}
		pkgs, p, ok := strings.Cut(l, ": ")
		if !ok || !path.IsAbs(p) {
			continue
		}
		pkg, _, _ := strings.Cut(pkgs, ",")
		m[path.Base(p)] = append(m[path.Base(p)], owned{pkg: strings.TrimSpace(pkg), path: p})
	}
	return m
}

// regularEntry reads a host file into a layer entry at image path: 0755 if the host file is
// executable by anyone, else 0644 (the host's other mode bits and owner do not matter).
func regularEntry(host, image string) (layerEntry, error) {
	fi, err := os.Stat(host)
	if err != nil {
		return layerEntry{}, fmt.Errorf("read %s for the image: %w", host, err)
	}
	b, err := os.ReadFile(host)
	if err != nil {
		return layerEntry{}, fmt.Errorf("read %s for the image: %w", host, err)
	}
	mode := int64(0o644)
	if fi.Mode()&0o111 != 0 {
		mode = 0o755
	}
	return layerEntry{name: strings.TrimPrefix(image, "/"), content: b, mode: mode}, nil
}

// resolveLink returns where a symlink at p pointing to target leads ("" target: p itself).
func resolveLink(p, target string) string {
	switch {
	case target == "":
		return p
	case path.IsAbs(target):
		return path.Clean(target)
	default:
		return path.Join(path.Dir(p), target)
	}
}

// packageRecords adds each package's copyright file (Debian's licence terms, which travel with
// the binaries) and dpkg status stanza to entries, and returns the packages' versions keyed by
// name without the architecture qualifier.
func packageRecords(run runner, pkgs []string, entries map[string]layerEntry) (map[string]string, error) {
	out, err := run("dpkg-query", append([]string{"-W", "-f", "${binary:Package}\t${Package}\t${Version}\n"}, pkgs...)...)
	if err != nil {
		return nil, fmt.Errorf("read the versions of %s: %w", strings.Join(pkgs, ", "), err)
	}
	versions := map[string]string{}
	for l := range strings.Lines(string(out)) {
		f := strings.Split(strings.TrimRight(l, "\n"), "\t")
		if len(f) == 3 && slices.Contains(pkgs, f[0]) {
			versions[f[1]] = f[2]
		}
	}
	for _, p := range pkgs {
		name, _, _ := strings.Cut(p, ":")
		if versions[name] == "" {
			return nil, fmt.Errorf("read the version of package %s: dpkg-query printed none", p)
		}
		// Debian policy puts it here; the directory may be a symlink to a sibling
		// package's, so the file is copied as a regular file.
		cp := "/usr/share/doc/" + name + "/copyright"
		e, err := regularEntry(cp, cp)
		if err != nil {
			return nil, fmt.Errorf("package %s: its licence file: %w", p, err)
		}
		e.mode = 0o644
		entries[e.name] = e
		st, err := run("dpkg-query", "-s", p)
		if err != nil {
			return nil, fmt.Errorf("read the status of package %s: %w", p, err)
		}
		sp := path.Join(statusDir, name)
		entries[strings.TrimPrefix(sp, "/")] = layerEntry{name: strings.TrimPrefix(sp, "/"), content: st, mode: 0o644}
	}
	return versions, nil
}
