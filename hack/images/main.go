// Command image-builder writes the controller's or the speaker's container image from a static
// binary, offline: an empty base, one layer holding the binary, a fixed config; with --nft (the
// speaker) a layer below it with nft and its libraries from the build machine's Debian
// packages. It needs no Docker daemon and pulls no base image, and the same binary, flags and
// installed packages always give the same bytes and digest. `make images` runs it; README.md
// explains the layers and output formats.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

func main() {
	cfg, out, err := parseFlags(os.Args[1:])
	if err == nil {
		err = run(cfg, out)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "image-builder:", err)
		os.Exit(1)
	}
}

// outputs says where run writes the image; at least one is set.
type outputs struct {
	tarball string // docker-save style archive (docker/podman load, ctr images import, kind, k3s)
	ociDir  string // OCI image layout directory
}

func parseFlags(args []string) (Config, outputs, error) {
	var cfg Config
	var out outputs
	fs := flag.NewFlagSet("image-builder", flag.ContinueOnError)
	fs.StringVar(&cfg.Binary, "binary", "", "static linux binary to put into the image (required)")
	fs.StringVar(&cfg.Entrypoint, "entrypoint", "", "absolute path of the binary in the image, e.g. /controller (required)")
	fs.StringVar(&cfg.Ref, "ref", "", "image reference with a tag, e.g. ghcr.io/ironlb/controller:v0.1.0 (required)")
	fs.StringVar(&cfg.User, "user", "65532:65532", "numeric uid:gid the container runs as (numeric so kubelet can check runAsNonRoot)")
	fs.StringVar(&cfg.Version, "version", "", "org.opencontainers.image.version label (default: the tag of --ref)")
	fs.StringVar(&cfg.Arch, "arch", runtime.GOARCH, "GOARCH the binary was built for; the image platform is linux/<arch>")
	fs.Func("add", "another static binary in the image, as /path=file (repeatable), e.g. /ironlb=bin/images/ironlb", func(v string) error {
		p, file, ok := strings.Cut(v, "=")
		if !ok || p == "" || file == "" {
			return fmt.Errorf("want /path/in/image=file, got %q", v)
		}
		cfg.Extras = append(cfg.Extras, Extra{Path: p, Binary: file})
		return nil
	})
	fs.BoolVar(&cfg.Nft, "nft", false, "add nft, the shared libraries it loads and the loader from this machine's Debian nftables package (must be installed), and set PATH")
	fs.StringVar(&out.tarball, "out", "", "write a docker-save style tarball here")
	fs.StringVar(&out.ociDir, "oci-dir", "", "write (or add to) an OCI image layout in this directory")
	if err := fs.Parse(args); err != nil {
		return Config{}, outputs{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, outputs{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if out.tarball == "" && out.ociDir == "" {
		return Config{}, outputs{}, fmt.Errorf("nothing to write: set --out or --oci-dir")
	}
	created, err := sourceDateEpoch(os.Getenv("SOURCE_DATE_EPOCH"))
	if err != nil {
		return Config{}, outputs{}, err
	}
	cfg.Created = created
	return cfg, out, nil
}

// sourceDateEpoch follows https://reproducible-builds.org/specs/source-date-epoch/: unset or
// empty means the Unix epoch, so an image built without it is still reproducible.
func sourceDateEpoch(v string) (time.Time, error) {
	if v == "" {
		return time.Unix(0, 0).UTC(), nil
	}
	sec, err := strconv.ParseInt(v, 10, 64)
	if err != nil || sec < 0 {
		return time.Time{}, fmt.Errorf("parse SOURCE_DATE_EPOCH %q: want seconds since the Unix epoch", v)
	}
	return time.Unix(sec, 0).UTC(), nil
}

func run(cfg Config, out outputs) error {
	img, tag, err := Build(cfg)
	if err != nil {
		return err
	}
	if out.tarball != "" {
		if err := WriteTarball(out.tarball, tag, img); err != nil {
			return err
		}
	}
	if out.ociDir != "" {
		if err := WriteOCILayout(out.ociDir, tag, img, cfg.Arch); err != nil {
			return err
		}
	}
	digest, err := img.Digest()
	if err != nil {
		return fmt.Errorf("compute manifest digest of %s: %w", tag, err)
	}
	id, err := img.ConfigName()
	if err != nil {
		return fmt.Errorf("compute config digest of %s: %w", tag, err)
	}
	// One line per image: the manifest digest is what a registry shows after a push, the config
	// digest is the image ID `docker images` and `docker load` show.
	fmt.Printf("%s digest=%s id=%s\n", tag, digest, id)
	return nil
}
