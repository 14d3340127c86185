// Package ociimage builds container images without a Docker daemon or a
// registry: files become one layer on an empty base, the config sets the
// entrypoint, user, environment and labels, and the result is written as a
// tarball that `ctr -n k8s.io images import` (or `docker load`) accepts.
//
// It is built on github.com/google/go-containerregistry. Builds are
// reproducible: entries are sorted, owners and modes are explicit, and every
// timestamp is Config.Created.
package ociimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// File is one entry of the image's file system.
type File struct {
	// Path inside the image, absolute ("/usr/local/bin/obol").
	Path string
	// Mode holds the permission bits (and sticky/setuid bits); zero means
	// 0o644 for a file and 0o755 for a directory.
	Mode fs.FileMode
	UID  int
	GID  int
	// Exactly one of the following (none means a regular file read from
	// Source, or an empty file when Source is empty too).
	Dir     bool   // a directory
	Symlink string // a symbolic link to this target
	Data    []byte // file contents
	Source  string // host file whose contents are copied
}

// Config is what the image runs and how.
type Config struct {
	Entrypoint []string
	Cmd        []string
	// User as "uid", "uid:gid" or a name from the image's /etc/passwd.
	User       string
	Env        []string // "KEY=value"
	WorkingDir string
	Labels     map[string]string
	// ExposedPorts like "8080/tcp".
	ExposedPorts []string
	StopSignal   string
	// Created is the image's creation time and the modification time of
	// every file; zero means the Unix epoch, for reproducible builds.
	Created time.Time
}

// Build returns a single-layer image for one platform (OCI media types).
func Build(platform v1.Platform, cfg Config, files []File) (v1.Image, error) {
	if platform.OS == "" || platform.Architecture == "" {
		return nil, fmt.Errorf("platform %q: need os/arch, e.g. linux/amd64", platform.String())
	}
	created := cfg.Created
	if created.IsZero() {
		created = time.Unix(0, 0)
	}
	created = created.UTC()

	layerTar, err := layerBytes(files, created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, fmt.Errorf("make layer: %w", err)
	}

	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History:   v1.History{Created: v1.Time{Time: created}, CreatedBy: "obol ociimage", Comment: fmt.Sprintf("%d files", len(files))},
	})
	if err != nil {
		return nil, fmt.Errorf("append layer: %w", err)
	}

	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS = platform.OS
	cf.Architecture = platform.Architecture
	cf.Variant = platform.Variant
	cf.OSVersion = platform.OSVersion
	cf.Created = v1.Time{Time: created}
	c := &cf.Config
	c.Entrypoint = cfg.Entrypoint
	c.Cmd = cfg.Cmd
	c.User = cfg.User
	c.Env = cfg.Env
	c.WorkingDir = cfg.WorkingDir
	c.StopSignal = cfg.StopSignal
	if len(cfg.Labels) > 0 {
		c.Labels = make(map[string]string, len(cfg.Labels))
		for k, v := range cfg.Labels {
			c.Labels[k] = v
		}
	}
	if len(cfg.ExposedPorts) > 0 {
		c.ExposedPorts = map[string]struct{}{}
		for _, p := range cfg.ExposedPorts {
			if !strings.Contains(p, "/") {
				p += "/tcp"
			}
			c.ExposedPorts[p] = struct{}{}
		}
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("set config: %w", err)
	}
	return img, nil
}

// layerBytes writes the files as an uncompressed tar, parents first, sorted
// by path; missing parent directories are added as root-owned 0755.
func layerBytes(files []File, mtime time.Time) ([]byte, error) {
	entries := map[string]File{}
	for _, f := range files {
		p, err := cleanPath(f.Path)
		if err != nil {
			return nil, err
		}
		if _, dup := entries[p]; dup {
			return nil, fmt.Errorf("file %s: listed twice", f.Path)
		}
		f.Path = p
		entries[p] = f
	}
	for p := range entries {
		for dir := path.Dir(p); dir != "." && dir != "/"; dir = path.Dir(dir) {
			if e, ok := entries[dir]; ok {
				if !e.Dir {
					return nil, fmt.Errorf("file %s: parent %s is not a directory", p, dir)
				}
				continue
			}
			entries[dir] = File{Path: dir, Dir: true}
		}
	}
	names := make([]string, 0, len(entries))
	for p := range entries {
		names = append(names, p)
	}
	sort.Strings(names)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range names {
		f := entries[p]
		hdr := &tar.Header{
			Name:    p,
			Uid:     f.UID,
			Gid:     f.GID,
			ModTime: mtime,
			Format:  tar.FormatPAX,
		}
		var data []byte
		switch {
		case f.Dir:
			hdr.Typeflag = tar.TypeDir
			hdr.Name = p + "/"
			hdr.Mode = tarMode(f.Mode, 0o755)
		case f.Symlink != "":
			hdr.Typeflag = tar.TypeSymlink
			hdr.Linkname = f.Symlink
			hdr.Mode = 0o777
		default:
			data = f.Data
			if f.Source != "" {
				if f.Data != nil {
					return nil, fmt.Errorf("file /%s: set Data or Source, not both", p)
				}
				b, err := os.ReadFile(f.Source)
				if err != nil {
					return nil, fmt.Errorf("file /%s: %w", p, err)
				}
				data = b
			}
			hdr.Typeflag = tar.TypeReg
			hdr.Mode = tarMode(f.Mode, 0o644)
			hdr.Size = int64(len(data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("layer entry /%s: %w", p, err)
		}
		if _, err := tw.Write(data); err != nil {
			return nil, fmt.Errorf("layer entry /%s: %w", p, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func tarMode(m fs.FileMode, def int64) int64 {
	if m == 0 {
		return def
	}
	out := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		out |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		out |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		out |= 0o1000
	}
	return out
}

// cleanPath turns "/usr/bin/x" into "usr/bin/x" and refuses paths that
// leave the root.
func cleanPath(p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("file %q: the path inside the image must be absolute", p)
	}
	c := strings.TrimPrefix(path.Clean(p), "/")
	if c == "" || c == "." {
		return "", fmt.Errorf("file %q: not a file path", p)
	}
	return c, nil
}

// NonrootUID is the user (and group) the static base runs as, like
// distroless's nonroot.
const NonrootUID = 65532

// DefaultCACerts is where Debian and Ubuntu keep the CA bundle.
const DefaultCACerts = "/etc/ssl/certs/ca-certificates.crt"

// StaticBase is the minimal base for a static binary: CA certificates (read
// from caCerts on this machine), /etc/passwd and /etc/group with root and
// nonroot (65532), a home for nonroot, and a world-writable /tmp. No shell.
func StaticBase(caCerts string) ([]File, error) {
	if caCerts == "" {
		caCerts = DefaultCACerts
	}
	certs, err := os.ReadFile(caCerts)
	if err != nil {
		return nil, fmt.Errorf("read CA certificates: %w (install the ca-certificates package or pass another bundle)", err)
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", NonrootUID, NonrootUID)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", NonrootUID)
	return []File{
		{Path: "/etc/passwd", Data: []byte(passwd)},
		{Path: "/etc/group", Data: []byte(group)},
		{Path: "/etc/ssl/certs/ca-certificates.crt", Data: certs},
		{Path: "/home/nonroot", Dir: true, Mode: 0o700, UID: NonrootUID, GID: NonrootUID},
		{Path: "/root", Dir: true, Mode: 0o700},
		{Path: "/tmp", Dir: true, Mode: 0o777 | fs.ModeSticky},
	}, nil
}
