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
}

// Build assembles the image: no base layers, one layer with Binary at Entrypoint, and a config
// with only the entrypoint, user, labels and platform. Nothing in it depends on the clock, the
// host or the binary's path on disk.
func Build(cfg Config) (v1.Image, name.Tag, error) {
	tag, err := name.NewTag(cfg.Ref, name.StrictValidation)
	if err != nil {
		return nil, name.Tag{}, fmt.Errorf("parse --ref %q (want registry/repository:tag): %w", cfg.Ref, err)
	}
	if !path.IsAbs(cfg.Entrypoint) || path.Clean(cfg.Entrypoint) != cfg.Entrypoint || cfg.Entrypoint == "/" {
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

	layerTar, err := singleFileTar(strings.TrimPrefix(cfg.Entrypoint, "/"), bin, cfg.Created)
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
			CreatedBy: "COPY " + path.Base(cfg.Entrypoint) + " " + cfg.Entrypoint,
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

// singleFileTar returns an uncompressed tar holding one executable file owned by root. Only the
// fields set here reach the archive: no owner names, no atime/ctime, no PAX records.
func singleFileTar(name string, content []byte, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdr := &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Mode:     0o755,
		Size:     int64(len(content)),
		ModTime:  mtime,
		Format:   tar.FormatUSTAR,
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, fmt.Errorf("write tar header for %s: %w", name, err)
	}
	if _, err := tw.Write(content); err != nil {
		return nil, fmt.Errorf("write %s into tar: %w", name, err)
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
