package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Label keys from the OCI image spec's pre-defined annotations.
const (
	labelSource  = "org.opencontainers.image.source"
	labelVersion = "org.opencontainers.image.version"
	sourceURL    = "https://github.com/ironlb/ironlb"
	// labelDebPrefix + package name labels the version of each Debian package files were
	// taken from, e.g. io.ironlb.debian.nftables=1.0.6-2+deb12u2.
	labelDebPrefix = "io.ironlb.debian."
)

// imagePath is the PATH of an image with Debian files: Docker's default, which has /usr/sbin
// (nft) in it. knftables runs exec.LookPath("nft"), which fails without a PATH.
const imagePath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Config describes one image. Every field that reaches the image bytes is listed here, so the
// same Config and binaries (and with Nft the same installed Debian packages) always give the
// same digest.
type Config struct {
	// Binary is the file put into the image. Required.
	Binary string
	// Entrypoint is the absolute path of the binary in the image and the whole entrypoint,
	// e.g. "/controller". Required.
	Entrypoint string
	// Ref is the image reference with a tag; the tarball records it so `docker load` tags the
	// image. Required.
	Ref string
	// User is the numeric uid:gid the container runs as. Default none (the runtime's root).
	User string
	// Version is the org.opencontainers.image.version label. Default: the tag of Ref.
	Version string
	// Arch is the GOARCH of Binary; the platform is linux/Arch. Required.
	Arch string
	// Created is the image's creation time and the layer's file mtime. Default: the zero
	// time.Time, which is written as is; parseFlags sets the Unix epoch or SOURCE_DATE_EPOCH.
	Created time.Time
	// Extras are more static binaries put beside the entrypoint, such as /ironlb in the speaker
	// image (for `kubectl exec ... -- /ironlb doctor`). Each must have its own clean absolute
	// path. Default none.
	Extras []Extra
	// Nft adds nft from the build machine's Debian nftables package, with exactly the shared
	// libraries it loads, the loader, /etc/protocols and /etc/services, in a layer below the
	// binaries; sets PATH so knftables finds nft; and records the packages' versions as
	// labels (labelDebPrefix + package). The build machine must be Debian-based, have
	// nftables installed and match Arch. Default false (an empty base).
	Nft bool
}

// Extra is one more binary in the image.
type Extra struct {
	// Path is the absolute path in the image, e.g. "/ironlb".
	Path string
	// Binary is the file put there.
	Binary string
}

// Build assembles the image: no base layers, with Nft a layer of Debian files, then one layer
// with Binary at Entrypoint and the Extras, and a config with only the entrypoint, user, labels,
// platform and (with Nft) PATH. Nothing in it depends on the clock, the binaries' paths on disk
// or, beyond the installed Debian packages' files, on the host.
func Build(cfg Config) (v1.Image, name.Tag, error) {
	tag, err := name.NewTag(cfg.Ref, name.StrictValidation)
	if err != nil {
		return nil, name.Tag{}, fmt.Errorf("parse --ref %q (want registry/repository:tag): %w", cfg.Ref, err)
	}
	if !cleanFilePath(cfg.Entrypoint) {
		return nil, name.Tag{}, fmt.Errorf("entrypoint %q: want a clean absolute file path such as /controller", cfg.Entrypoint)
	}
	if cfg.Arch == "" {
		return nil, name.Tag{}, fmt.Errorf("build %s: no architecture set", tag)
	}
	bin, err := os.ReadFile(cfg.Binary)
	if err != nil {
		return nil, name.Tag{}, fmt.Errorf("read binary for %s: %w", tag, err)
	}
	if err := checkStatic(bin, cfg.Arch); err != nil {
		return nil, name.Tag{}, fmt.Errorf("binary %s for %s: %w", cfg.Binary, tag, err)
	}

	files := []layerEntry{{name: strings.TrimPrefix(cfg.Entrypoint, "/"), content: bin, mode: 0o755}}
	for _, x := range cfg.Extras {
		if !cleanFilePath(x.Path) {
			return nil, name.Tag{}, fmt.Errorf("extra binary path %q: want a clean absolute file path such as /ironlb", x.Path)
		}
		p := strings.TrimPrefix(x.Path, "/")
		if slices.ContainsFunc(files, func(f layerEntry) bool { return f.name == p }) {
			return nil, name.Tag{}, fmt.Errorf("extra binary path %s: already in the image", x.Path)
		}
		b, err := os.ReadFile(x.Binary)
		if err != nil {
			return nil, name.Tag{}, fmt.Errorf("read extra binary for %s: %w", tag, err)
		}
		if err := checkStatic(b, cfg.Arch); err != nil {
			return nil, name.Tag{}, fmt.Errorf("binary %s for %s: %w", x.Binary, tag, err)
		}
		files = append(files, layerEntry{name: p, content: b, mode: 0o755})
	}

	created := v1.Time{Time: cfg.Created}
	var adds []mutate.Addendum
	labels := map[string]string{}
	var env []string
	if cfg.Nft {
		deb, err := collectNft(cfg.Arch)
		if err != nil {
			return nil, name.Tag{}, fmt.Errorf("build %s: %w", tag, err)
		}
		var entries []layerEntry
		for _, e := range deb.entries {
			if slices.ContainsFunc(files, func(f layerEntry) bool { return f.name == e.name }) {
				return nil, name.Tag{}, fmt.Errorf("build %s: /%s is both a binary and a Debian file", tag, e.name)
			}
			entries = append(entries, e)
		}
		// The Debian files go below the binaries: they change only with a Debian update,
		// so nodes keep that layer when a new speaker is pulled.
		layer, err := newLayer(entries, cfg.Created)
		if err != nil {
			return nil, name.Tag{}, fmt.Errorf("build Debian layer of %s: %w", tag, err)
		}
		adds = append(adds, mutate.Addendum{Layer: layer, History: v1.History{
			Created:   created,
			CreatedBy: fmt.Sprintf("COPY %s from Debian nftables %s with its libraries", deb.program, deb.versions["nftables"]),
			Comment:   "ironlb hack/images: files of the build machine's Debian packages",
		}})
		for p, v := range deb.versions {
			labels[labelDebPrefix+p] = v
		}
		env = []string{imagePath}
	}
	layer, err := newLayer(files, cfg.Created)
	if err != nil {
		return nil, name.Tag{}, fmt.Errorf("build layer of %s: %w", tag, err)
	}
	adds = append(adds, mutate.Addendum{Layer: layer, History: v1.History{
		Created:   created,
		CreatedBy: createdBy(cfg),
		Comment:   "ironlb hack/images",
	}})
	img, err := mutate.Append(empty.Image, adds...)
	if err != nil {
		return nil, name.Tag{}, fmt.Errorf("append layers to %s: %w", tag, err)
	}

	cf, err := img.ConfigFile()
	if err != nil {
		return nil, name.Tag{}, fmt.Errorf("read config of %s: %w", tag, err)
	}
	cf = cf.DeepCopy()
	cf.Created = created
	cf.OS = "linux"
	cf.Architecture = cfg.Arch
	version := cfg.Version
	if version == "" {
		version = tag.TagStr()
	}
	labels[labelSource] = sourceURL
	labels[labelVersion] = version
	cf.Config = v1.Config{
		Entrypoint: []string{cfg.Entrypoint},
		User:       cfg.User,
		Env:        env,
		Labels:     labels,
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, name.Tag{}, fmt.Errorf("set config of %s: %w", tag, err)
	}
	return img, tag, nil
}

// cleanFilePath reports whether p is a clean absolute path naming a file, not "/".
func cleanFilePath(p string) bool {
	return path.IsAbs(p) && path.Clean(p) == p && p != "/"
}

// layerEntry is one file or symlink in a layer.
type layerEntry struct {
	name    string // relative to the root, e.g. "speaker" or "usr/sbin/nft"
	content []byte // a regular file's bytes
	mode    int64  // a regular file's permissions: 0755 or 0644
	link    string // a symlink's target as written; set for symlinks only
}

// newLayer builds a gzip layer from entries.
func newLayer(entries []layerEntry, mtime time.Time) (v1.Layer, error) {
	layerTar, err := entriesTar(entries, mtime)
	if err != nil {
		return nil, err
	}
	return tarball.LayerFromOpener(
		func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerTar)), nil },
		// gzip rather than zstd: every runtime and registry in use reads it. The compressed
		// bytes are a pure function of the input (no name or mtime in the gzip header).
		tarball.WithCompressionLevel(gzip.BestCompression),
		tarball.WithCompressedCaching,
	)
}

// entriesTar returns an uncompressed tar holding the entries and a directory entry (0755) for
// each of their parent directories, sorted by name, so a parent always comes before what it
// holds. Everything is owned by root, with the same mtime. Only the fields set here reach the
// archive: no owner names, no atime/ctime, no PAX records.
func entriesTar(entries []layerEntry, mtime time.Time) ([]byte, error) {
	type item struct {
		name string
		hdr  *tar.Header
		body []byte
	}
	var items []item
	dirs := map[string]bool{}
	for _, e := range entries {
		for d := path.Dir(e.name); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
			items = append(items, item{name: d + "/", hdr: &tar.Header{Typeflag: tar.TypeDir, Mode: 0o755}})
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Mode: e.mode, Size: int64(len(e.content))}
		if e.link != "" {
			hdr = &tar.Header{Typeflag: tar.TypeSymlink, Mode: 0o777, Linkname: e.link}
		}
		items = append(items, item{name: e.name, hdr: hdr, body: e.content})
	}
	slices.SortFunc(items, func(a, b item) int { return strings.Compare(a.name, b.name) })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i, it := range items {
		if i > 0 && items[i-1].name == it.name {
			return nil, fmt.Errorf("%s: twice in one layer", it.name)
		}
		it.hdr.Name, it.hdr.ModTime, it.hdr.Format = it.name, mtime, tar.FormatUSTAR
		if err := tw.WriteHeader(it.hdr); err != nil {
			return nil, fmt.Errorf("write tar header for %s: %w", it.name, err)
		}
		if _, err := tw.Write(it.body); err != nil {
			return nil, fmt.Errorf("write %s into tar: %w", it.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("close tar: %w", err)
	}
	return buf.Bytes(), nil
}

// elfMachine maps the GOARCH values we ship to their ELF machine.
var elfMachine = map[string]elf.Machine{
	"amd64":   elf.EM_X86_64,
	"arm64":   elf.EM_AARCH64,
	"arm":     elf.EM_ARM,
	"ppc64le": elf.EM_PPC64,
	"s390x":   elf.EM_S390,
	"riscv64": elf.EM_RISCV,
}

// checkStatic rejects an ELF binary that cannot run on the empty base: one that needs a dynamic
// loader (built with cgo), or one for another architecture. Both would start with the runtime's
// unhelpful "no such file or directory" / "exec format error" only once deployed. Non-ELF input
// (the tests' few-byte stand-ins) is not checked.
func checkStatic(bin []byte, arch string) error {
	if !bytes.HasPrefix(bin, []byte(elf.ELFMAG)) {
		return nil
	}
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		return fmt.Errorf("parse ELF: %w", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("dynamically linked (has an ELF interpreter); build it with CGO_ENABLED=0 for the empty base")
		}
	}
	if want, ok := elfMachine[arch]; ok && f.Machine != want {
		return fmt.Errorf("built for %s, but the image platform is linux/%s", f.Machine, arch)
	}
	return nil
}

// WriteTarball writes img as a docker-save style archive (manifest.json, config, gzipped layer)
// tagged tag. `docker load`, `podman load`, `ctr images import`, `kind load image-archive` and
// k3s's image import all accept it.
func WriteTarball(file string, tag name.Tag, img v1.Image) error {
	if err := tarball.WriteToFile(file, tag, img); err != nil {
		return fmt.Errorf("write %s to %s: %w", tag, file, err)
	}
	return nil
}

// WriteOCILayout writes an OCI image layout in dir whose index.json lists img alone, annotated
// with its reference so skopeo, podman and ctr find it by name. Blobs already in dir stay.
func WriteOCILayout(dir string, tag name.Tag, img v1.Image, arch string) error {
	idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{
		Add: img,
		Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: "linux", Architecture: arch},
			Annotations: map[string]string{
				"org.opencontainers.image.ref.name": tag.TagStr(),
				"io.containerd.image.name":          tag.String(),
			},
		},
	})
	if _, err := layout.Write(dir, idx); err != nil {
		return fmt.Errorf("write %s as OCI layout to %s: %w", tag, dir, err)
	}
	return nil
}

// createdBy describes the layer in the image history: "COPY speaker /speaker", plus one COPY per
// extra binary.
func createdBy(cfg Config) string {
	parts := []string{"COPY " + path.Base(cfg.Entrypoint) + " " + cfg.Entrypoint}
	for _, x := range cfg.Extras {
		parts = append(parts, "COPY "+path.Base(x.Path)+" "+x.Path)
	}
	return strings.Join(parts, " && ")
}
