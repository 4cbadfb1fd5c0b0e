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
)

// Config describes one image. Every field that reaches the image bytes is listed here, so the
// same Config and binary always give the same digest.
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
}

// Extra is one more binary in the image.
type Extra struct {
	// Path is the absolute path in the image, e.g. "/ironlb".
	Path string
	// Binary is the file put there.
	Binary string
}

// Build assembles the image: no base layers, one layer with Binary at Entrypoint, and a config
// with only the entrypoint, user, labels and platform. Nothing in it depends on the clock, the
// host or the binary's path on disk.
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

	files := []layerFile{{strings.TrimPrefix(cfg.Entrypoint, "/"), bin}}
	for _, x := range cfg.Extras {
		if !cleanFilePath(x.Path) {
			return nil, name.Tag{}, fmt.Errorf("extra binary path %q: want a clean absolute file path such as /ironlb", x.Path)
		}
		p := strings.TrimPrefix(x.Path, "/")
		if slices.ContainsFunc(files, func(f layerFile) bool { return f.name == p }) {
			return nil, name.Tag{}, fmt.Errorf("extra binary path %s: already in the image", x.Path)
		}
		b, err := os.ReadFile(x.Binary)
		if err != nil {
			return nil, name.Tag{}, fmt.Errorf("read extra binary for %s: %w", tag, err)
		}
		if err := checkStatic(b, cfg.Arch); err != nil {
			return nil, name.Tag{}, fmt.Errorf("binary %s for %s: %w", x.Binary, tag, err)
		}
		files = append(files, layerFile{p, b})
	}
	layerTar, err := filesTar(files, cfg.Created)
	if err != nil {
		return nil, name.Tag{}, fmt.Errorf("build layer of %s: %w", tag, err)
	}
	layer, err := tarball.LayerFromOpener(
		func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(layerTar)), nil },
		// gzip rather than zstd: every runtime and registry in use reads it. The compressed
		// bytes are a pure function of the input (no name or mtime in the gzip header).
		tarball.WithCompressionLevel(gzip.BestCompression),
		tarball.WithCompressedCaching,
	)
	if err != nil {
		return nil, name.Tag{}, fmt.Errorf("build layer of %s: %w", tag, err)
	}

	created := v1.Time{Time: cfg.Created}
	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer: layer,
		History: v1.History{
			Created:   created,
			CreatedBy: createdBy(cfg),
			Comment:   "ironlb hack/images",
		},
	})
	if err != nil {
		return nil, name.Tag{}, fmt.Errorf("append layer to %s: %w", tag, err)
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
	cf.Config = v1.Config{
		Entrypoint: []string{cfg.Entrypoint},
		User:       cfg.User,
		Labels: map[string]string{
			labelSource:  sourceURL,
			labelVersion: version,
		},
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

// layerFile is one executable in the layer.
type layerFile struct {
	name    string // relative to the root, e.g. "speaker"
	content []byte
}

// filesTar returns an uncompressed tar holding the files, sorted by name, each executable and
// owned by root. Only the fields set here reach the archive: no owner names, no atime/ctime, no
// PAX records. A file in a subdirectory gets no directory entry: the runtimes create the
// directory.
func filesTar(files []layerFile, mtime time.Time) ([]byte, error) {
	files = slices.Clone(files)
	slices.SortFunc(files, func(a, b layerFile) int { return strings.Compare(a.name, b.name) })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		hdr := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     f.name,
			Mode:     0o755,
			Size:     int64(len(f.content)),
			ModTime:  mtime,
			Format:   tar.FormatUSTAR,
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("write tar header for %s: %w", f.name, err)
		}
		if _, err := tw.Write(f.content); err != nil {
			return nil, fmt.Errorf("write %s into tar: %w", f.name, err)
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
