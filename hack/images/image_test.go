package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// testConfig returns a controller-like Config for a few-byte stand-in binary in a fresh temp dir.
func testConfig(t *testing.T) Config {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "controller")
	if err := os.WriteFile(bin, []byte("#!fake controller\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return Config{
		Binary:     bin,
		Entrypoint: "/controller",
		Ref:        "ghcr.io/ironlb/controller:v0.1.0",
		User:       "65532:65532",
		Arch:       "amd64",
		Created:    time.Unix(1700000000, 0).UTC(),
	}
}

// buildTarball builds cfg and writes it to a fresh file, returning the file and the digest.
func buildTarball(t *testing.T, cfg Config) (string, v1.Hash) {
	t.Helper()
	img, tag, err := Build(cfg)
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	file := filepath.Join(t.TempDir(), "image.tar")
	if err := WriteTarball(file, tag, img); err != nil {
		t.Fatalf("WriteTarball: %v", err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return file, d
}

func TestBuildIsReproducible(t *testing.T) {
	cfg := testConfig(t)
	file1, d1 := buildTarball(t, cfg)
	// The same bytes under another path, with other permissions and mtime on disk: none of
	// that may reach the image.
	cfg2 := cfg
	cfg2.Binary = filepath.Join(t.TempDir(), "other-name")
	content, err := os.ReadFile(cfg.Binary)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg2.Binary, content, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(cfg2.Binary, time.Now(), time.Unix(42, 0)); err != nil {
		t.Fatal(err)
	}
	file2, d2 := buildTarball(t, cfg2)

	if d1 != d2 {
		t.Errorf("digests differ: %s vs %s", d1, d2)
	}
	b1, err := os.ReadFile(file1)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := os.ReadFile(file2)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b1, b2) {
		t.Errorf("tarballs differ (%d and %d bytes)", len(b1), len(b2))
	}
}

func TestBuildInputsChangeDigest(t *testing.T) {
	base := testConfig(t)
	_, want := buildTarball(t, base)
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
	}{
		{"speaker runs as root", func(c *Config) { c.User = "0:0" }},
		{"other entrypoint", func(c *Config) { c.Entrypoint = "/speaker" }},
		{"other SOURCE_DATE_EPOCH", func(c *Config) { c.Created = time.Unix(0, 0).UTC() }},
		{"other architecture", func(c *Config) { c.Arch = "arm64" }},
		{"other version", func(c *Config) { c.Ref = "ghcr.io/ironlb/controller:v0.2.0" }},
		{"an extra binary", func(c *Config) { c.Extras = []Extra{{Path: "/ironlb", Binary: c.Binary}} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.mutate(&cfg)
			if _, got := buildTarball(t, cfg); got == want {
				t.Errorf("digest %s did not change", got)
			}
		})
	}
}

func TestImageContent(t *testing.T) {
	for _, tc := range []struct {
		name       string
		entrypoint string
		ref        string
		user       string
		version    string
		wantVer    string
	}{
		{"controller", "/controller", "ghcr.io/ironlb/controller:v0.1.0", "65532:65532", "", "v0.1.0"},
		{"speaker as root", "/speaker", "ghcr.io/ironlb/speaker:v0.1.0", "0:0", "", "v0.1.0"},
		{"explicit version label", "/controller", "ghcr.io/ironlb/controller:dev", "65532:65532", "v0.1.0-3-gabc", "v0.1.0-3-gabc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.Entrypoint, cfg.Ref, cfg.User, cfg.Version = tc.entrypoint, tc.ref, tc.user, tc.version
			file, digest := buildTarball(t, cfg)

			tag, err := name.NewTag(tc.ref)
			if err != nil {
				t.Fatal(err)
			}
			img, err := tarball.ImageFromPath(file, &tag)
			if err != nil {
				t.Fatalf("load back: %v", err)
			}
			if got, err := img.Digest(); err != nil || got != digest {
				t.Errorf("loaded digest = %s, %v; want the built %s", got, err, digest)
			}

			m, err := img.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			configName, err := img.ConfigName()
			if err != nil {
				t.Fatal(err)
			}
			if m.Config.Digest != configName {
				t.Errorf("manifest references config %s, config digest is %s", m.Config.Digest, configName)
			}

			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if got := cf.Config.Entrypoint; len(got) != 1 || got[0] != tc.entrypoint {
				t.Errorf("Entrypoint = %q, want [%q]", got, tc.entrypoint)
			}
			if cf.Config.Cmd != nil || cf.Config.Env != nil {
				t.Errorf("Cmd = %q, Env = %q; want none", cf.Config.Cmd, cf.Config.Env)
			}
			if cf.Config.User != tc.user {
				t.Errorf("User = %q, want %q", cf.Config.User, tc.user)
			}
			wantLabels := map[string]string{labelSource: sourceURL, labelVersion: tc.wantVer}
			if len(cf.Config.Labels) != len(wantLabels) {
				t.Errorf("Labels = %v, want %v", cf.Config.Labels, wantLabels)
			}
			for k, v := range wantLabels {
				if cf.Config.Labels[k] != v {
					t.Errorf("label %s = %q, want %q", k, cf.Config.Labels[k], v)
				}
			}
			if cf.OS != "linux" || cf.Architecture != "amd64" {
				t.Errorf("platform = %s/%s, want linux/amd64", cf.OS, cf.Architecture)
			}
			if !cf.Created.Time.Equal(cfg.Created) {
				t.Errorf("Created = %s, want %s", cf.Created.Time, cfg.Created)
			}

			layers, err := img.Layers()
			if err != nil {
				t.Fatal(err)
			}
			if len(layers) != 1 || len(m.Layers) != 1 || len(cf.RootFS.DiffIDs) != 1 {
				t.Fatalf("got %d layers, %d manifest layers, %d diff IDs; want exactly one each",
					len(layers), len(m.Layers), len(cf.RootFS.DiffIDs))
			}
			assertOnlyEntrypoint(t, layers[0], tc.entrypoint, cfg)
		})
	}
}

// assertOnlyEntrypoint checks the layer holds exactly the binary, executable, root-owned, with
// the fixed mtime.
func assertOnlyEntrypoint(t *testing.T, layer v1.Layer, entrypoint string, cfg Config) {
	t.Helper()
	want, err := os.ReadFile(cfg.Binary)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layer.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var names []string
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("read layer: %v", err)
		}
		names = append(names, hdr.Name)
		if "/"+hdr.Name != entrypoint {
			continue
		}
		if hdr.Typeflag != tar.TypeReg || hdr.Mode != 0o755 || hdr.Uid != 0 || hdr.Gid != 0 {
			t.Errorf("%s: type %c mode %o uid %d gid %d; want a regular file, 0755, 0:0",
				hdr.Name, hdr.Typeflag, hdr.Mode, hdr.Uid, hdr.Gid)
		}
		if !hdr.ModTime.Equal(cfg.Created) {
			t.Errorf("%s: mtime %s, want %s", hdr.Name, hdr.ModTime, cfg.Created)
		}
		got, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: content %q, want %q", hdr.Name, got, want)
		}
	}
	if len(names) != 1 || "/"+names[0] != entrypoint {
		t.Errorf("layer holds %q, want only %q", names, entrypoint)
	}
}

func TestOCILayoutHasSameImage(t *testing.T) {
	cfg := testConfig(t)
	img, tag, err := Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := WriteOCILayout(dir, tag, img, cfg.Arch); err != nil {
		t.Fatalf("WriteOCILayout: %v", err)
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("index lists %d manifests, want 1", len(im.Manifests))
	}
	d := im.Manifests[0]
	if d.Digest != want {
		t.Errorf("index digest %s, want %s (same image as the tarball)", d.Digest, want)
	}
	if got := d.Annotations["org.opencontainers.image.ref.name"]; got != "v0.1.0" {
		t.Errorf("ref.name = %q, want v0.1.0", got)
	}
	if d.Platform == nil || d.Platform.OS != "linux" || d.Platform.Architecture != "amd64" {
		t.Errorf("platform = %v, want linux/amd64", d.Platform)
	}
}

func TestBuildRejects(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Config)
	}{
		{"relative entrypoint", func(c *Config) { c.Entrypoint = "controller" }},
		{"root entrypoint", func(c *Config) { c.Entrypoint = "/" }},
		{"unclean entrypoint", func(c *Config) { c.Entrypoint = "/bin/../controller" }},
		{"ref without tag", func(c *Config) { c.Ref = "ghcr.io/ironlb/controller" }},
		{"missing binary", func(c *Config) { c.Binary = filepath.Join(t.TempDir(), "nope") }},
		{"no architecture", func(c *Config) { c.Arch = "" }},
		{"binary for another architecture", func(c *Config) { c.Binary = os.Args[0]; c.Arch = otherArch() }},
		{"extra at the entrypoint's path", func(c *Config) { c.Extras = []Extra{{Path: "/controller", Binary: c.Binary}} }},
		{"extra twice", func(c *Config) {
			c.Extras = []Extra{{Path: "/ironlb", Binary: c.Binary}, {Path: "/ironlb", Binary: c.Binary}}
		}},
		{"relative extra", func(c *Config) { c.Extras = []Extra{{Path: "ironlb", Binary: c.Binary}} }},
		{"missing extra", func(c *Config) { c.Extras = []Extra{{Path: "/ironlb", Binary: filepath.Join(t.TempDir(), "nope")}} }},
		{"extra for another architecture", func(c *Config) {
			c.Extras = []Extra{{Path: "/ironlb", Binary: os.Args[0]}}
			c.Arch = otherArch()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			tc.mutate(&cfg)
			if _, _, err := Build(cfg); err == nil {
				t.Error("Build succeeded, want an error")
			}
		})
	}
}

// otherArch names an architecture the test binary (an ELF file for the host) was not built for.
func otherArch() string {
	if runtime.GOARCH == "arm64" {
		return "amd64"
	}
	return "arm64"
}

func TestSourceDateEpoch(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{"", time.Unix(0, 0).UTC(), false},
		{"1700000000", time.Unix(1700000000, 0).UTC(), false},
		{"-1", time.Time{}, true},
		{"yesterday", time.Time{}, true},
	} {
		got, err := sourceDateEpoch(tc.in)
		if (err != nil) != tc.wantErr || !got.Equal(tc.want) {
			t.Errorf("sourceDateEpoch(%q) = %s, %v; want %s, error %t", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

// TestSpeakerImageCarriesIronlb: the speaker image holds /ironlb beside /speaker, both
// executable, with /speaker still the only entrypoint.
func TestSpeakerImageCarriesIronlb(t *testing.T) {
	cfg := testConfig(t)
	cfg.Entrypoint, cfg.Ref, cfg.User = "/speaker", "ghcr.io/ironlb/speaker:v0.1.0", "0:0"
	cli := filepath.Join(t.TempDir(), "ironlb")
	if err := os.WriteFile(cli, []byte("#!fake ironlb\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Extras = []Extra{{Path: "/ironlb", Binary: cli}}
	file, digest := buildTarball(t, cfg)
	if _, again := buildTarball(t, cfg); again != digest {
		t.Errorf("rebuilt digest %s, want %s", again, digest)
	}
	tag, err := name.NewTag(cfg.Ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(file, &tag)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := cf.Config.Entrypoint; len(got) != 1 || got[0] != "/speaker" {
		t.Errorf("Entrypoint = %q, want [/speaker]", got)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers %d, %v; want one", len(layers), err)
	}
	got := layerFiles(t, layers[0])
	speaker, _ := os.ReadFile(cfg.Binary)
	want := map[string]string{"ironlb": "#!fake ironlb\n", "speaker": string(speaker)}
	if len(got) != len(want) {
		t.Errorf("layer holds %v, want %v", got, want)
	}
	for n, content := range want {
		if got[n] != content {
			t.Errorf("/%s holds %q, want %q", n, got[n], content)
		}
	}
}

// layerFiles reads every regular file of the layer, checking each is 0755 and root-owned.
func layerFiles(t *testing.T, layer v1.Layer) map[string]string {
	t.Helper()
	rc, err := layer.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	out := map[string]string{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag != tar.TypeReg || hdr.Mode != 0o755 || hdr.Uid != 0 || hdr.Gid != 0 {
			t.Errorf("%s: type %c mode %o uid %d gid %d; want a regular file, 0755, 0:0", hdr.Name, hdr.Typeflag, hdr.Mode, hdr.Uid, hdr.Gid)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out[hdr.Name] = string(b)
	}
}

func TestParseFlagsAdd(t *testing.T) {
	cfg, _, err := parseFlags([]string{"--binary", "s", "--entrypoint", "/speaker", "--ref", "r:v1", "--out", "o.tar",
		"--add", "/ironlb=bin/images/ironlb", "--add", "/usr/bin/x=y"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Extra{{"/ironlb", "bin/images/ironlb"}, {"/usr/bin/x", "y"}}
	if len(cfg.Extras) != 2 || cfg.Extras[0] != want[0] || cfg.Extras[1] != want[1] {
		t.Errorf("Extras = %v, want %v", cfg.Extras, want)
	}
	if _, _, err := parseFlags([]string{"--out", "o.tar", "--add", "/ironlb"}); err == nil {
		t.Error("--add without =file accepted")
	}
}
