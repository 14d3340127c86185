package ociimage

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Annotations on index.json entries that name an image: containerd's import
// reads the first (the full reference), the OCI spec defines the second
// (the tag).
const (
	AnnotationContainerdName = "io.containerd.image.name"
	AnnotationRefName        = "org.opencontainers.image.ref.name"
)

// Format is the tarball layout.
type Format string

const (
	// FormatOCI is an OCI image layout (oci-layout, index.json, blobs/) in a
	// tar: one image, or an index of several platforms.
	FormatOCI Format = "oci"
	// FormatDocker is `docker save`'s layout (manifest.json): one platform.
	FormatDocker Format = "docker"
)

// ParseFormat accepts "oci" or "docker".
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case FormatOCI, FormatDocker:
		return Format(s), nil
	}
	return "", fmt.Errorf("format %q: use oci or docker", s)
}

// Write writes the images (one per platform) under every reference in refs
// to a tarball at path. With several images FormatOCI writes an image index;
// FormatDocker takes exactly one image.
func Write(path string, format Format, refs []string, imgs []v1.Image) error {
	if len(refs) == 0 {
		return fmt.Errorf("write %s: no image reference (tag) given", path)
	}
	if len(imgs) == 0 {
		return fmt.Errorf("write %s: no image", path)
	}
	tags := make([]name.Tag, 0, len(refs))
	for _, r := range refs {
		t, err := name.NewTag(r, name.StrictValidation)
		if err != nil {
			return fmt.Errorf("image reference %q: %w (use a full name with a tag, like ghcr.io/org/app:1.0)", r, err)
		}
		tags = append(tags, t)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	switch format {
	case FormatDocker:
		if len(imgs) != 1 {
			return fmt.Errorf("write %s: a docker archive holds one platform, got %d; use the oci format for several", path, len(imgs))
		}
		m := map[name.Reference]v1.Image{}
		for _, t := range tags {
			m[t] = imgs[0]
		}
		return tarball.MultiRefWriteToFile(path, m)
	case FormatOCI:
		return writeOCI(path, tags, imgs)
	}
	return fmt.Errorf("write %s: unknown format %q", path, format)
}

// Index makes an OCI image index of images for different platforms.
func Index(imgs []v1.Image) (v1.ImageIndex, error) {
	adds := make([]mutate.IndexAddendum, 0, len(imgs))
	seen := map[string]bool{}
	for _, img := range imgs {
		cf, err := img.ConfigFile()
		if err != nil {
			return nil, err
		}
		p := cf.Platform()
		if p == nil || seen[p.String()] {
			return nil, fmt.Errorf("each image needs its own platform (got %v twice or none)", p)
		}
		seen[p.String()] = true
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: p}})
	}
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, types.OCIImageIndex), adds...), nil
}

// Push uploads the images to a registry under every reference in refs: one
// image as it is, several as an index. Credentials come from the Docker
// config (~/.docker/config.json, credential helpers), like docker push.
func Push(ctx context.Context, refs []string, imgs []v1.Image, opts ...remote.Option) error {
	if len(refs) == 0 || len(imgs) == 0 {
		return errors.New("push: need at least one reference and one image")
	}
	opts = append([]remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(authn.DefaultKeychain)}, opts...)
	var idx v1.ImageIndex
	if len(imgs) > 1 {
		var err error
		if idx, err = Index(imgs); err != nil {
			return fmt.Errorf("push: %w", err)
		}
	}
	for _, r := range refs {
		tag, err := name.NewTag(r, name.StrictValidation)
		if err != nil {
			return fmt.Errorf("image reference %q: %w", r, err)
		}
		if idx != nil {
			err = remote.WriteIndex(tag, idx, opts...)
		} else {
			err = remote.Write(tag, imgs[0], opts...)
		}
		if err != nil {
			return fmt.Errorf("push %s: %w", r, err)
		}
	}
	return nil
}

func writeOCI(path string, tags []name.Tag, imgs []v1.Image) error {
	dir, err := os.MkdirTemp(filepath.Dir(path), ".oci-layout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("write OCI layout: %w", err)
	}

	var idx v1.ImageIndex
	if len(imgs) > 1 {
		if idx, err = Index(imgs); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	for _, t := range tags {
		ann := layout.WithAnnotations(map[string]string{
			AnnotationContainerdName: t.Name(),
			AnnotationRefName:        t.TagStr(),
		})
		if idx != nil {
			err = lp.AppendIndex(idx, ann)
		} else {
			cf, cerr := imgs[0].ConfigFile()
			if cerr != nil {
				return cerr
			}
			opts := []layout.Option{ann}
			if p := cf.Platform(); p != nil {
				opts = append(opts, layout.WithPlatform(*p))
			}
			err = lp.AppendImage(imgs[0], opts...)
		}
		if err != nil {
			return fmt.Errorf("write OCI layout: %w", err)
		}
	}
	return tarDir(dir, path)
}

// tarDir writes the regular files under dir into a tar at out, sorted, with
// fixed owners and times so equal layouts give equal tarballs.
func tarDir(dir, out string) error {
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			names = append(names, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(names)

	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	tw := tar.NewWriter(f)
	for _, n := range names {
		if err := addFile(tw, filepath.Join(dir, filepath.FromSlash(n)), n); err != nil {
			f.Close()
			return err
		}
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}

func addFile(tw *tar.Writer, src, name string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	hdr := &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: st.Size(), ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err = io.Copy(tw, in)
	return err
}
