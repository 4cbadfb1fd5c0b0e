package main

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// imagesDirEnv names the directory `make images` wrote; `make check-images` sets it so the
// speaker image under test is the one that ships, not one built from stand-ins.
const imagesDirEnv = "IRONLB_IMAGES_DIR"

// speakerArgsEnv holds the builder arguments `make images` gives for the speaker (`make
// test-images` sets it): the test builds with exactly those, stand-in binaries swapped in, so
// `make test` checks the Makefile's flags without compiling the speaker.
const speakerArgsEnv = "IRONLB_SPEAKER_IMAGE_ARGS"

// goldenDir holds the proxy core's golden rulesets: whole knftables transactions, the text the
// speaker feeds to nft.
const goldenDir = "../../speaker/proxy/rules/testdata"

// servicesRuleset needs the image's /etc/services ("domain") and /etc/protocols-backed names;
// the table name keeps it apart from the proxy's.
const servicesRuleset = `table inet ironlb-image-test {
	comment "hack/images chroot test"
	set svc {
		type ipv4_addr . inet_proto . inet_service
		elements = { 10.96.0.10 . udp . domain, 10.96.0.1 . tcp . https }
	}
	chain c {
		type filter hook prerouting priority 0;
		ip daddr . meta l4proto . th dport @svc counter accept
		udp dport domain accept
	}
}
`

// TestSpeakerImageRunsNft unpacks the speaker image into a directory and, inside a network
// namespace of its own, loads the proxy's golden rulesets with the image's nft (chroot, with
// only the image's PATH, the DaemonSet's capabilities and a read-only root) and lists them back
// as knftables does. With IRONLB_IMAGES_DIR (make test-images) it checks the image `make images`
// wrote, and runs its /speaker and /ironlb too.
func TestSpeakerImageRunsNft(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: chroot and a network namespace")
	}
	// The host's tools by absolute path: the commands run with the image's PATH only.
	tools := map[string]string{}
	for _, tool := range []string{"chroot", "unshare", "setpriv", "mount", "sh"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Skipf("no %s on this machine (coreutils, util-linux, mount, dash)", tool)
		}
		tools[tool] = p
	}
	needHostNft(t)

	img, bins, real := speakerImage(t)
	checkSpeakerConfig(t, img, "0:0")
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	env := cf.Config.Env // the container's environment: the image's PATH only
	root := t.TempDir()
	unpack(t, img, root)
	run := func(args ...string) (string, error) {
		cmd := exec.Command(tools["chroot"], append([]string{root}, args...)...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	for imagePath, file := range bins {
		want, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(filepath.Join(root, imagePath)); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s in the image is not %s (%v)", imagePath, file, err)
		}
	}
	if real {
		// Static binaries run beside the Debian files: the layers did not shadow them.
		if out, err := run("/speaker", "--help"); err != nil || !strings.Contains(out, "-proxy") {
			t.Errorf("/speaker --help: %v\n%s", err, out)
		}
		if out, err := run("/ironlb", "help"); err != nil || !strings.Contains(out, "doctor") {
			t.Errorf("/ironlb help: %v\n%s", err, out)
		}
	}

	goldens, err := filepath.Glob(filepath.Join(goldenDir, "*.golden"))
	if err != nil || len(goldens) == 0 {
		t.Fatalf("no golden rulesets in %s: %v", goldenDir, err)
	}
	type ruleset struct {
		name, text, family, table string
		want                      []string // in `nft list ruleset`
	}
	sets := []ruleset{{name: "services", text: servicesRuleset, family: "inet", table: "ironlb-image-test",
		want: []string{"10.96.0.10 . udp . 53", "udp dport 53 accept"}}}
	for _, g := range goldens {
		b, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		// "add table ip ironlb { ... }": the family and table the proxy writes.
		f := strings.Fields(string(b))
		if len(f) < 4 || f[0] != "add" || f[1] != "table" {
			t.Fatalf("%s does not start with add table", g)
		}
		sets = append(sets, ruleset{name: filepath.Base(g), text: string(b), family: f[2], table: f[3],
			want: []string{"table " + f[2] + " " + f[3]}})
	}
	for _, rs := range sets {
		t.Run(rs.name, func(t *testing.T) {
			if err := os.WriteFile(filepath.Join(root, "ruleset.nft"), []byte(rs.text), 0o644); err != nil {
				t.Fatal(err)
			}
			// One shell in a fresh network and mount namespace (both gone when it exits,
			// also after a killed run), set up like the speaker's DaemonSet: a read-only
			// root, no_new_privs and only NET_ADMIN and NET_RAW (plus SYS_CHROOT for
			// chroot itself). It checks as knftables does, loads, lists as knftables
			// does and as a user would. chroot finds "nft" through the image's PATH.
			script := `set -e
chroot=$1 root=$2 setpriv=$3 mount=$4
"$mount" --bind "$root" "$root"
"$mount" -o remount,bind,ro "$root"
nft() { "$setpriv" --no-new-privs --bounding-set=-all,+net_admin,+net_raw,+sys_chroot -- "$chroot" "$root" nft "$@"; }
nft --check -f /ruleset.nft
nft -f /ruleset.nft
nft --json --terse list table "$5" "$6"
echo '---'
nft list ruleset`
			cmd := exec.Command(tools["unshare"], "--net", "--mount", "--", tools["sh"], "-c", script, "sh",
				tools["chroot"], root, tools["setpriv"], tools["mount"], rs.family, rs.table)
			cmd.Env = env
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("nft in the image: %v\n%s", err, out)
			}
			js, text, _ := strings.Cut(string(out), "---\n")
			if err := checkListed(js, rs.family, rs.table); err != nil {
				t.Errorf("nft --json list table: %v\n%s", err, js)
			}
			for _, w := range rs.want {
				if !strings.Contains(text, w) {
					t.Errorf("nft list ruleset lacks %q:\n%s", w, text)
				}
			}
		})
	}
}

// speakerImage returns the speaker image under test, the files its binaries must hold (image
// path -> file) and whether they are the real speaker and CLI: the tarball of `make images`
// with IRONLB_IMAGES_DIR; else one built with the Makefile's arguments (IRONLB_SPEAKER_IMAGE_ARGS)
// or, run by hand, with nftConfig, both with stand-in binaries.
func speakerImage(t *testing.T) (v1.Image, map[string]string, bool) {
	t.Helper()
	if dir := os.Getenv(imagesDirEnv); dir != "" {
		img := loadTarball(t, filepath.Join(dir, "speaker.tar"), "") // whatever VERSION tagged it
		return img, map[string]string{"/speaker": filepath.Join(dir, "speaker"), "/ironlb": filepath.Join(dir, "ironlb")}, true
	}
	cfg := nftConfig(t)
	if args := os.Getenv(speakerArgsEnv); args != "" {
		var err error
		cfg, _, err = parseFlags(append(strings.Fields(args), "--out", "unused.tar"))
		if err != nil {
			t.Fatalf("parse %s=%q: %v", speakerArgsEnv, args, err)
		}
		cfg.Created = time.Unix(1700000000, 0).UTC()
		dir := t.TempDir()
		cfg.Binary = standIn(t, dir, "speaker")
		for i := range cfg.Extras {
			cfg.Extras[i].Binary = standIn(t, dir, filepath.Base(cfg.Extras[i].Path))
		}
	} else {
		t.Logf("%s and %s unset: a speaker image like nftConfig's", imagesDirEnv, speakerArgsEnv)
	}
	if !cfg.Nft {
		t.Fatalf("the speaker image is built without --nft: %s", os.Getenv(speakerArgsEnv))
	}
	file, _ := buildTarball(t, cfg)
	bins := map[string]string{cfg.Entrypoint: cfg.Binary}
	for _, x := range cfg.Extras {
		bins[x.Path] = x.Binary
	}
	if _, ok := bins["/ironlb"]; !ok {
		t.Errorf("the speaker image has no /ironlb: binaries %v", bins)
	}
	return loadTarball(t, file, ""), bins, false
}

// standIn writes a few-byte file named name into dir, in place of a real binary.
func standIn(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!stand-in "+name+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkListed checks nft's JSON listing names the table, the way knftables reads it.
func checkListed(js, family, table string) error {
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(js), &doc); err != nil {
		return err
	}
	if len(doc.Nftables) < 2 || doc.Nftables[0]["metainfo"] == nil {
		return errors.New("want metainfo, then the table")
	}
	var tb struct{ Family, Name string }
	if err := json.Unmarshal(doc.Nftables[1]["table"], &tb); err != nil {
		return fmt.Errorf("second object: %w", err)
	}
	if tb.Family != family || tb.Name != table {
		return fmt.Errorf("table %s %s, want %s %s", tb.Family, tb.Name, family, table)
	}
	return nil
}

// unpack writes the image's flattened file system into dir, as a runtime would: directories,
// regular files with their modes, symlinks as written (absolute ones resolve inside a chroot).
func unpack(t *testing.T, img v1.Image, dir string) {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("unpack image: %v", err)
		}
		p := filepath.Join(dir, filepath.Clean("/"+h.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		switch h.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(p, 0o755)
		case tar.TypeSymlink:
			err = os.Symlink(h.Linkname, p)
		case tar.TypeReg:
			var b []byte
			if b, err = io.ReadAll(tr); err == nil {
				err = os.WriteFile(p, b, os.FileMode(h.Mode)&os.ModePerm)
			}
		default:
			err = fmt.Errorf("unexpected tar entry type %c", h.Typeflag)
		}
		if err != nil {
			t.Fatalf("unpack %s: %v", h.Name, err)
		}
	}
}
