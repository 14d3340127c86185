// Command mkimage builds a container image from files on this machine, with
// no Docker daemon and no registry, and writes it as a tarball that
// `ctr -n k8s.io images import` or `docker load` accepts.
//
//	go run ./hack/mkimage -o dist/pause.tar --tag registry.k8s.io/pause:3.6 \
//	    --file bin/pause:/pause:0755 --entrypoint /pause
//
//	go run ./hack/mkimage -o dist/obol-image.tar --base static \
//	    --platform linux/amd64 --platform linux/arm64 \
//	    --file 'bin/image/obol-{os}-{arch}:/usr/local/bin/obol:0755' \
//	    --entrypoint /usr/local/bin/obol --user 65532:65532 \
//	    --tag ghcr.io/obolstack/obol:v0.1.0
//
// A --file source may contain {os}, {arch} and {variant}, replaced for each
// --platform, and glob characters (matching exactly one file). --push sends
// the image (an index for several platforms) to the --tag registries. --entrypoint and --cmd take a JSON array or a single word.
// Timestamps come from SOURCE_DATE_EPOCH (default: the Unix epoch).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/spf13/pflag"

	"github.com/obolstack/obol/internal/ociimage"
)

type options struct {
	output     string
	push       bool
	format     string
	tags       []string
	platforms  []string
	base       string
	caCerts    string
	files      []string
	dirs       []string
	symlinks   []string
	entrypoint string
	cmd        string
	user       string
	env        []string
	workdir    string
	labels     []string
	expose     []string
	stopSignal string
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	var o options
	fl := pflag.NewFlagSet("mkimage", pflag.ContinueOnError)
	fl.StringVarP(&o.output, "output", "o", "", "tarball to write (this, --push, or both)")
	fl.BoolVar(&o.push, "push", false, "push to the registries of the --tag references (credentials from ~/.docker/config.json)")
	fl.StringVar(&o.format, "format", "oci", "oci (image layout; several platforms make an index) or docker (docker save; one platform)")
	fl.StringArrayVarP(&o.tags, "tag", "t", nil, "image reference with tag, e.g. ghcr.io/org/app:1.0 (repeatable, at least one)")
	fl.StringArrayVar(&o.platforms, "platform", nil, "os/arch[/variant] (repeatable; default linux/"+runtime.GOARCH+")")
	fl.StringVar(&o.base, "base", "scratch", "scratch (only the given files) or static (CA certificates, /etc/passwd with nonroot 65532, /tmp)")
	fl.StringVar(&o.caCerts, "ca-certs", ociimage.DefaultCACerts, "CA bundle the static base copies")
	fl.StringArrayVar(&o.files, "file", nil, "SRC:DST[:MODE[:UID:GID]] host file SRC at DST in the image, MODE octal (repeatable)")
	fl.StringArrayVar(&o.dirs, "dir", nil, "DST[:MODE[:UID:GID]] an empty directory (repeatable)")
	fl.StringArrayVar(&o.symlinks, "symlink", nil, "DST:TARGET a symbolic link (repeatable)")
	fl.StringVar(&o.entrypoint, "entrypoint", "", `entrypoint: a JSON array ('["/app","serve"]') or one word`)
	fl.StringVar(&o.cmd, "cmd", "", "default arguments: a JSON array or one word")
	fl.StringVar(&o.user, "user", "", "user to run as: uid[:gid] or a name in /etc/passwd")
	fl.StringArrayVar(&o.env, "env", nil, "KEY=value (repeatable)")
	fl.StringVar(&o.workdir, "workdir", "", "working directory")
	fl.StringArrayVar(&o.labels, "label", nil, "key=value image label (repeatable)")
	fl.StringArrayVar(&o.expose, "expose", nil, "port[/proto] (repeatable)")
	fl.StringVar(&o.stopSignal, "stop-signal", "", "signal that stops the container, e.g. SIGTERM")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: every input is a flag", fl.Args())
	}
	if (o.output == "" && !o.push) || len(o.tags) == 0 {
		return fmt.Errorf("need -o FILE or --push, and at least one --tag")
	}
	return build(o)
}

func build(o options) error {
	format, err := ociimage.ParseFormat(o.format)
	if err != nil {
		return err
	}
	cfg := ociimage.Config{User: o.user, Env: o.env, WorkingDir: o.workdir, ExposedPorts: o.expose, StopSignal: o.stopSignal}
	if cfg.Entrypoint, err = argv("entrypoint", o.entrypoint); err != nil {
		return err
	}
	if cfg.Cmd, err = argv("cmd", o.cmd); err != nil {
		return err
	}
	if len(o.labels) > 0 {
		cfg.Labels = map[string]string{}
		for _, l := range o.labels {
			k, v, ok := strings.Cut(l, "=")
			if !ok || k == "" {
				return fmt.Errorf("--label %q: use key=value", l)
			}
			cfg.Labels[k] = v
		}
	}
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("SOURCE_DATE_EPOCH %q: %w", s, err)
		}
		cfg.Created = time.Unix(sec, 0)
	}

	var base []ociimage.File
	switch o.base {
	case "scratch":
	case "static":
		if base, err = ociimage.StaticBase(o.caCerts); err != nil {
			return err
		}
	default:
		return fmt.Errorf("--base %q: use scratch or static", o.base)
	}

	platforms := o.platforms
	if len(platforms) == 0 {
		platforms = []string{"linux/" + runtime.GOARCH}
	}
	var imgs []v1.Image
	for _, ps := range platforms {
		p, err := v1.ParsePlatform(ps)
		if err != nil {
			return fmt.Errorf("--platform %q: %w", ps, err)
		}
		files := append([]ociimage.File(nil), base...)
		more, err := fileSpecs(o, *p)
		if err != nil {
			return err
		}
		files = append(files, more...)
		img, err := ociimage.Build(*p, cfg, files)
		if err != nil {
			return fmt.Errorf("build %s: %w", ps, err)
		}
		imgs = append(imgs, img)
	}
	if o.output != "" {
		if err := ociimage.Write(o.output, format, o.tags, imgs); err != nil {
			return err
		}
		fmt.Printf("mkimage: wrote %s (%s, %s) as %s\n", o.output, format, strings.Join(platforms, ","), strings.Join(o.tags, ", "))
	}
	if o.push {
		if err := ociimage.Push(context.Background(), o.tags, imgs); err != nil {
			return err
		}
		fmt.Printf("mkimage: pushed %s (%s)\n", strings.Join(o.tags, ", "), strings.Join(platforms, ","))
	}
	return nil
}

func argv(flag, s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if strings.HasPrefix(s, "[") {
		var out []string
		if err := json.Unmarshal([]byte(s), &out); err != nil {
			return nil, fmt.Errorf("--%s %q: not a JSON array of strings: %w", flag, s, err)
		}
		return out, nil
	}
	return []string{s}, nil
}

func fileSpecs(o options, p v1.Platform) ([]ociimage.File, error) {
	var out []ociimage.File
	expand := strings.NewReplacer("{os}", p.OS, "{arch}", p.Architecture, "{variant}", p.Variant)
	for _, s := range o.files {
		parts := strings.Split(s, ":")
		if len(parts) < 2 || parts[0] == "" || parts[1] == "" {
			return nil, fmt.Errorf("--file %q: use SRC:DST[:MODE[:UID:GID]]", s)
		}
		src, err := source(expand.Replace(parts[0]))
		if err != nil {
			return nil, fmt.Errorf("--file %q: %w", s, err)
		}
		f := ociimage.File{Source: src, Path: parts[1]}
		if err := modeOwner(&f, parts[2:]); err != nil {
			return nil, fmt.Errorf("--file %q: %w", s, err)
		}
		if f.Mode == 0 {
			st, err := os.Stat(f.Source)
			if err != nil {
				return nil, fmt.Errorf("--file %q: %w", s, err)
			}
			f.Mode = st.Mode().Perm()
		}
		out = append(out, f)
	}
	for _, s := range o.dirs {
		parts := strings.Split(s, ":")
		f := ociimage.File{Path: parts[0], Dir: true}
		if err := modeOwner(&f, parts[1:]); err != nil {
			return nil, fmt.Errorf("--dir %q: %w", s, err)
		}
		out = append(out, f)
	}
	for _, s := range o.symlinks {
		dst, target, ok := strings.Cut(s, ":")
		if !ok || dst == "" || target == "" {
			return nil, fmt.Errorf("--symlink %q: use DST:TARGET", s)
		}
		out = append(out, ociimage.File{Path: dst, Symlink: target})
	}
	return out, nil
}

// source resolves a --file source; a glob (as for GoReleaser's
// dist/obol_linux_amd64_v1/obol) must match exactly one file.
func source(p string) (string, error) {
	if !strings.ContainsAny(p, "*?[") {
		return p, nil
	}
	m, err := filepath.Glob(p)
	if err != nil {
		return "", err
	}
	if len(m) != 1 {
		return "", fmt.Errorf("%s matches %d files, want exactly one", p, len(m))
	}
	return m[0], nil
}

// modeOwner reads the optional [MODE[:UID:GID]] tail of a file spec.
func modeOwner(f *ociimage.File, rest []string) error {
	switch len(rest) {
	case 0:
		return nil
	case 1, 3:
	default:
		return fmt.Errorf("after the path give MODE or MODE:UID:GID")
	}
	if rest[0] != "" {
		m, err := strconv.ParseUint(rest[0], 8, 32)
		if err != nil || m > 0o7777 {
			return fmt.Errorf("mode %q: use octal like 0755", rest[0])
		}
		f.Mode = fs.FileMode(m & 0o777)
		if m&0o1000 != 0 {
			f.Mode |= fs.ModeSticky
		}
		if m&0o2000 != 0 {
			f.Mode |= fs.ModeSetgid
		}
		if m&0o4000 != 0 {
			f.Mode |= fs.ModeSetuid
		}
	}
	if len(rest) == 3 {
		uid, err1 := strconv.Atoi(rest[1])
		gid, err2 := strconv.Atoi(rest[2])
		if err1 != nil || err2 != nil || uid < 0 || gid < 0 {
			return fmt.Errorf("owner %s:%s: use numeric uid:gid", rest[1], rest[2])
		}
		f.UID, f.GID = uid, gid
	}
	return nil
}
