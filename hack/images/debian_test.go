package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestParseLdd(t *testing.T) {
	for _, tc := range []struct {
		name    string
		out     string
		want    []string
		wantErr string
	}{
		{
			name: "nft on Debian 12",
			out: "\tlinux-vdso.so.1 (0x00007ffd5e9f2000)\n" +
				"\tlibnftables.so.1 => /lib/x86_64-linux-gnu/libnftables.so.1 (0x00007f70366e3000)\n" +
				"\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f70364c7000)\n" +
				"\t/lib64/ld-linux-x86-64.so.2 (0x00007f70367d8000)\n",
			want: []string{"/lib/x86_64-linux-gnu/libnftables.so.1", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"},
		},
		{
			name: "a library listed twice",
			out:  "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x1)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x1)\n",
			want: []string{"/lib/x86_64-linux-gnu/libc.so.6"},
		},
		{
			name: "arm64 without vDSO address",
			out:  "\tlinux-vdso.so.1 (0x0000ffff9e6e5000)\n\tlibc.so.6 => /lib/aarch64-linux-gnu/libc.so.6 (0x0000ffff9e4f0000)\n\t/lib/ld-linux-aarch64.so.1 (0x0000ffff9e6a8000)\n",
			want: []string{"/lib/aarch64-linux-gnu/libc.so.6", "/lib/ld-linux-aarch64.so.1"},
		},
		{name: "static binary", out: "\tstatically linked\n"},
		{name: "not dynamic", out: "\tnot a dynamic executable\n"},
		{
			name:    "missing library",
			out:     "\tlibnftables.so.1 => not found\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x1)\n",
			wantErr: "finds no libnftables.so.1",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseLdd([]byte(tc.out))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("parseLdd = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestParseSearch(t *testing.T) {
	out := "libc6:amd64: /lib/x86_64-linux-gnu/libc.so.6\n" +
		"libc6-i386: /lib32/libc.so.6\n" +
		"libnftables1:amd64: /usr/lib/x86_64-linux-gnu/libnftables.so.1\n" +
		"diversion by dash from: /bin/sh\n" +
		"diversion by dash to: /bin/sh.distrib\n" +
		"libc6:amd64, libc6:i386: /usr/share/doc/libc6/copyright\n" +
		"dpkg-query: no path found matching pattern */nope\n"
	got := parseSearch([]byte(out))
	want := map[string][]owned{
		"libc.so.6":        {{"libc6:amd64", "/lib/x86_64-linux-gnu/libc.so.6"}, {"libc6-i386", "/lib32/libc.so.6"}},
		"libnftables.so.1": {{"libnftables1:amd64", "/usr/lib/x86_64-linux-gnu/libnftables.so.1"}},
		"copyright":        {{"libc6:amd64", "/usr/share/doc/libc6/copyright"}},
	}
	if len(got) != len(want) {
		t.Errorf("parseSearch = %v, want %v", got, want)
	}
	for base, w := range want {
		if !slices.Equal(got[base], w) {
			t.Errorf("%s: %v, want %v", base, got[base], w)
		}
	}
}

func TestFindProgram(t *testing.T) {
	list := "/.\n/etc\n/etc/nftables.conf\n/usr/sbin\n/usr/sbin/nft\n/usr/share/man/man8/nft.8.gz\n/usr/share/doc/nftables/examples/nft\n"
	if got, err := findProgram([]byte(list), "nft"); err != nil || got != "/usr/sbin/nft" {
		t.Errorf("findProgram = %q, %v; want /usr/sbin/nft", got, err)
	}
	if got, err := findProgram([]byte("/usr/share/doc/x/nft\n"), "nft"); err == nil {
		t.Errorf("findProgram = %q, want an error for a package without the program in a bin directory", got)
	}
}

func TestResolveLink(t *testing.T) {
	for _, tc := range []struct{ p, target, want string }{
		{"/usr/lib/x86_64-linux-gnu/libnftables.so.1", "libnftables.so.1.1.0", "/usr/lib/x86_64-linux-gnu/libnftables.so.1.1.0"},
		{"/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"},
		{"/etc/os-release", "../usr/lib/os-release", "/usr/lib/os-release"},
		{"/usr/sbin/nft", "", "/usr/sbin/nft"},
	} {
		if got := resolveLink(tc.p, tc.target); got != tc.want {
			t.Errorf("resolveLink(%q, %q) = %q, want %q", tc.p, tc.target, got, tc.want)
		}
	}
}

func TestEntriesTar(t *testing.T) {
	mtime := time.Unix(1700000000, 0).UTC()
	entries := []layerEntry{
		{name: "usr/sbin/nft", content: []byte("nft"), mode: 0o755},
		{name: "etc/protocols", content: []byte("tcp 6"), mode: 0o644},
		{name: "usr/lib/x86_64-linux-gnu/libnftables.so.1", link: "libnftables.so.1.1.0"},
		{name: "usr/lib-other", content: []byte("x"), mode: 0o644},
		{name: "speaker", content: []byte("s"), mode: 0o755},
	}
	b, err := entriesTar(entries, mtime)
	if err != nil {
		t.Fatal(err)
	}
	type got struct {
		name string
		typ  byte
		mode int64
		link string
	}
	var gots []got
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 || !h.ModTime.Equal(mtime) {
			t.Errorf("%s: owner %d:%d mtime %s; want 0:0 and %s", h.Name, h.Uid, h.Gid, h.ModTime, mtime)
		}
		gots = append(gots, got{h.Name, h.Typeflag, h.Mode, h.Linkname})
	}
	want := []got{
		{"etc/", tar.TypeDir, 0o755, ""},
		{"etc/protocols", tar.TypeReg, 0o644, ""},
		{"speaker", tar.TypeReg, 0o755, ""},
		{"usr/", tar.TypeDir, 0o755, ""},
		{"usr/lib-other", tar.TypeReg, 0o644, ""},
		{"usr/lib/", tar.TypeDir, 0o755, ""},
		{"usr/lib/x86_64-linux-gnu/", tar.TypeDir, 0o755, ""},
		{"usr/lib/x86_64-linux-gnu/libnftables.so.1", tar.TypeSymlink, 0o777, "libnftables.so.1.1.0"},
		{"usr/sbin/", tar.TypeDir, 0o755, ""},
		{"usr/sbin/nft", tar.TypeReg, 0o755, ""},
	}
	if !slices.Equal(gots, want) {
		t.Errorf("tar holds\n%v\nwant\n%v", gots, want)
	}
	// Input order must not matter.
	slices.Reverse(entries)
	if b2, err := entriesTar(entries, mtime); err != nil || !bytes.Equal(b, b2) {
		t.Errorf("reordered entries give other bytes (err %v)", err)
	}
	if _, err := entriesTar(append(entries, layerEntry{name: "speaker", mode: 0o755}), mtime); err == nil {
		t.Error("a path twice was accepted")
	}
}

// fakeRunner answers dpkg-query -W for checkInstalled.
func fakeRunner(out string, err error) runner {
	return func(string, ...string) ([]byte, error) { return []byte(out), err }
}

func TestCheckInstalled(t *testing.T) {
	exitErr := exec.Command("false").Run()
	for _, tc := range []struct {
		name    string
		run     runner
		wantErr []string
	}{
		{"installed", fakeRunner("ii ", nil), nil},
		{"no dpkg on the build machine", fakeRunner("", fmt.Errorf("dpkg-query: %w", exec.ErrNotFound)),
			[]string{"dpkg-query not found", "Debian or Ubuntu", "apt-get install nftables"}},
		{"never installed", fakeRunner("", exitErr), []string{"package nftables is not installed", "apt-get install nftables"}},
		{"removed, config files left", fakeRunner("rc ", nil), []string{"apt-get install nftables"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkInstalled(tc.run, "nftables", "nft")
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("checkInstalled: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("checkInstalled succeeded, want an error")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// needHostNft skips when the build machine cannot give nft (CI installs nftables, see .ci/run).
func needHostNft(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("dpkg-query"); err != nil {
		t.Skip("no dpkg-query: not a Debian-based machine, so no nft to put into the image")
	}
	if err := checkInstalled(runHost, "nftables", "nft"); err != nil {
		t.Skipf("skipped: %v", err)
	}
}

func TestCollectRejectsOnTheRealHost(t *testing.T) {
	if _, err := exec.LookPath("dpkg-query"); err != nil {
		t.Skip("no dpkg-query: not a Debian-based machine")
	}
	_, err := collectProgram(runHost, "ironlb-no-such-package", "nft", "amd64", nil)
	if err == nil || !strings.Contains(err.Error(), "apt-get install ironlb-no-such-package") {
		t.Errorf("missing package: err = %v, want the apt-get command to run", err)
	}
	needHostNft(t)
	arch := otherArch()
	_, err = collectProgram(runHost, "nftables", "nft", arch, nil)
	if err == nil || !strings.Contains(err.Error(), "linux/"+arch) {
		t.Errorf("foreign architecture: err = %v, want one naming linux/%s", err, arch)
	}
}

// nftConfig is a speaker-like Config with stand-in binaries and the build machine's nft.
func nftConfig(t *testing.T) Config {
	t.Helper()
	cfg := testConfig(t)
	cfg.Entrypoint, cfg.Ref, cfg.User, cfg.Arch, cfg.Nft = "/speaker", "ghcr.io/ironlb/speaker:v0.1.0", "0:0", runtime.GOARCH, true
	cli := path.Join(t.TempDir(), "ironlb")
	if err := os.WriteFile(cli, []byte("#!fake ironlb\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Extras = []Extra{{Path: "/ironlb", Binary: cli}}
	return cfg
}

// loadTarball reads an image back from a docker-save tarball: the one tagged ref, or with ref
// "" the only one in it.
func loadTarball(t *testing.T, file, ref string) v1.Image {
	t.Helper()
	var tag *name.Tag
	if ref != "" {
		tg, err := name.NewTag(ref)
		if err != nil {
			t.Fatal(err)
		}
		tag = &tg
	}
	img, err := tarball.ImageFromPath(file, tag)
	if err != nil {
		t.Fatalf("load %s: %v", file, err)
	}
	return img
}

// TestNftImageContent: the Debian layer holds nft, the loader it names and the netbase files,
// the binaries' layer is unchanged, PATH finds nft, the labels carry the installed versions,
// and two builds are byte-identical.
func TestNftImageContent(t *testing.T) {
	needHostNft(t)
	cfg := nftConfig(t)
	file1, d1 := buildTarball(t, cfg)
	file2, d2 := buildTarball(t, cfg)
	b1, _ := os.ReadFile(file1)
	b2, _ := os.ReadFile(file2)
	if d1 != d2 || !bytes.Equal(b1, b2) {
		t.Errorf("two builds differ: digests %s and %s, %d and %d bytes", d1, d2, len(b1), len(b2))
	}
	img := loadTarball(t, file1, cfg.Ref)
	checkSpeakerConfig(t, img, cfg.User)

	layers, err := img.Layers()
	if err != nil || len(layers) != 2 {
		t.Fatalf("%d layers, %v; want the Debian layer and the binaries' layer", len(layers), err)
	}
	speaker, _ := os.ReadFile(cfg.Binary)
	bins := layerFiles(t, layers[1])
	if len(bins) != 2 || bins["speaker"] != string(speaker) || bins["ironlb"] != "#!fake ironlb\n" {
		t.Errorf("binaries' layer holds %q, want only speaker and ironlb", slices.Sorted(mapKeys(bins)))
	}

	fs := flatten(t, img)
	nft := lookPath(t, fs, img, "nft")
	out, err := exec.Command("dpkg-query", "-L", "nftables").Output()
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := findProgram(out, "nft"); nft != want {
		t.Errorf("PATH finds nft at %q, want the package's %q", nft, want)
	}
	interp, err := checkELF(nft, cfg.Arch) // the host's file: the image's is a copy
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := fs.resolve(interp); !ok {
		t.Errorf("nft's loader %s is not in the image", interp)
	}
	for _, f := range slices.Concat(nftRuntimeFiles, osIdentityFiles, []string{statusDir + "/nftables", "/usr/share/doc/nftables/copyright"}) {
		if _, ok := fs.resolve(f); !ok {
			t.Errorf("%s is not in the image", f)
		}
	}
	host, _ := os.ReadFile(nft)
	if e, _ := fs.resolve(nft); !bytes.Equal(e.body, host) || e.hdr.Mode != 0o755 {
		t.Errorf("%s in the image: %d bytes mode %o, want the host's %d bytes, 0755", nft, len(e.body), e.hdr.Mode, len(host))
	}
}

// checkSpeakerConfig checks what must not change for the speaker: the entrypoint, the user and
// the OCI labels; and what nft adds: PATH, and the nftables version label.
func checkSpeakerConfig(t *testing.T, img v1.Image, user string) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := cf.Config.Entrypoint; !slices.Equal(got, []string{"/speaker"}) || cf.Config.Cmd != nil {
		t.Errorf("Entrypoint = %q Cmd = %q, want [/speaker] and none", got, cf.Config.Cmd)
	}
	if cf.Config.User != user {
		t.Errorf("User = %q, want %q", cf.Config.User, user)
	}
	if !slices.Equal(cf.Config.Env, []string{imagePath}) {
		t.Errorf("Env = %q, want [%q]", cf.Config.Env, imagePath)
	}
	if cf.Config.Labels[labelSource] != sourceURL || cf.Config.Labels[labelVersion] == "" {
		t.Errorf("labels = %v, want %s and %s", cf.Config.Labels, labelSource, labelVersion)
	}
	want, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", "nftables").Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := cf.Config.Labels[labelDebPrefix+"nftables"]; got != string(want) {
		t.Errorf("label %snftables = %q, want the installed %q", labelDebPrefix, got, want)
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// fsEntry is one path of an image's flattened file system.
type fsEntry struct {
	hdr  *tar.Header
	body []byte
}

// imageFS is an image's flattened file system by absolute path.
type imageFS map[string]fsEntry

// flatten reads the file system the layers make, as a runtime unpacks it.
func flatten(t *testing.T, img v1.Image) imageFS {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	fs := imageFS{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return fs
		}
		if err != nil {
			t.Fatalf("flatten image: %v", err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		fs[path.Clean("/"+h.Name)] = fsEntry{h, b}
	}
}

// resolve follows symlinks inside the image to a regular file.
func (fs imageFS) resolve(p string) (fsEntry, bool) {
	for range 16 {
		e, ok := fs[p]
		if !ok {
			return fsEntry{}, false
		}
		if e.hdr.Typeflag != tar.TypeSymlink {
			return e, e.hdr.Typeflag == tar.TypeReg
		}
		p = resolveLink(p, e.hdr.Linkname)
	}
	return fsEntry{}, false
}

// lookPath finds prog the way knftables does (exec.LookPath), with the image's PATH.
func lookPath(t *testing.T, fs imageFS, img v1.Image, prog string) string {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	var pathEnv string
	for _, e := range cf.Config.Env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			pathEnv = v
		}
	}
	for dir := range strings.SplitSeq(pathEnv, ":") {
		p := path.Join(dir, prog)
		if e, ok := fs.resolve(p); ok && e.hdr.Mode&0o111 != 0 {
			return p
		}
	}
	t.Fatalf("no executable %s in the image's PATH %q", prog, pathEnv)
	return ""
}
