package ociimage

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

type entry struct {
	typ      byte
	mode     int64
	uid, gid int
	data     string
	link     string
}

// layerEntries reads the single layer of img back.
func layerEntries(t *testing.T, img v1.Image) map[string]entry {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) != 1 {
		t.Fatalf("got %d layers, want 1", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	out := map[string]entry{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		out[h.Name] = entry{typ: h.Typeflag, mode: h.Mode, uid: h.Uid, gid: h.Gid, data: string(b), link: h.Linkname}
	}
	return out
}

func tinyImage(t *testing.T, p v1.Platform) v1.Image {
	t.Helper()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(ca, []byte("-----BEGIN CERTIFICATE-----\nfake\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "app")
	if err := os.WriteFile(bin, []byte("binary for "+p.Architecture), 0o755); err != nil {
		t.Fatal(err)
	}
	base, err := StaticBase(ca)
	if err != nil {
		t.Fatal(err)
	}
	files := append(base,
		File{Path: "/usr/local/bin/app", Source: bin, Mode: 0o755},
		File{Path: "/var/lib/app", Dir: true, UID: NonrootUID, GID: NonrootUID},
		File{Path: "/app", Symlink: "/usr/local/bin/app"},
	)
	img, err := Build(p, Config{
		Entrypoint:   []string{"/usr/local/bin/app"},
		Cmd:          []string{"serve"},
		User:         "65532:65532",
		Env:          []string{"HOME=/home/nonroot"},
		WorkingDir:   "/home/nonroot",
		Labels:       map[string]string{"org.opencontainers.image.source": "https://example.test/app"},
		ExposedPorts: []string{"8080"},
	}, files)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func checkTiny(t *testing.T, img v1.Image, arch string) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != arch {
		t.Errorf("platform %s/%s, want linux/%s", cf.OS, cf.Architecture, arch)
	}
	c := cf.Config
	if !reflect.DeepEqual(c.Entrypoint, []string{"/usr/local/bin/app"}) || !reflect.DeepEqual(c.Cmd, []string{"serve"}) {
		t.Errorf("entrypoint %q cmd %q", c.Entrypoint, c.Cmd)
	}
	if c.User != "65532:65532" || c.WorkingDir != "/home/nonroot" || !reflect.DeepEqual(c.Env, []string{"HOME=/home/nonroot"}) {
		t.Errorf("user %q workdir %q env %q", c.User, c.WorkingDir, c.Env)
	}
	if c.Labels["org.opencontainers.image.source"] != "https://example.test/app" {
		t.Errorf("labels %v", c.Labels)
	}
	if _, ok := c.ExposedPorts["8080/tcp"]; !ok {
		t.Errorf("exposed ports %v, want 8080/tcp", c.ExposedPorts)
	}
	if cf.Created.Unix() != 0 {
		t.Errorf("created %v, want the Unix epoch", cf.Created)
	}

	e := layerEntries(t, img)
	want := map[string]entry{
		"usr/local/bin/app":                 {typ: tar.TypeReg, mode: 0o755, data: "binary for " + arch},
		"usr/":                              {typ: tar.TypeDir, mode: 0o755},
		"var/lib/app/":                      {typ: tar.TypeDir, mode: 0o755, uid: NonrootUID, gid: NonrootUID},
		"app":                               {typ: tar.TypeSymlink, mode: 0o777, link: "/usr/local/bin/app"},
		"tmp/":                              {typ: tar.TypeDir, mode: 0o1777},
		"home/nonroot/":                     {typ: tar.TypeDir, mode: 0o700, uid: NonrootUID, gid: NonrootUID},
		"etc/ssl/certs/ca-certificates.crt": {typ: tar.TypeReg, mode: 0o644, data: "-----BEGIN CERTIFICATE-----\nfake\n"},
	}
	for p, w := range want {
		if got, ok := e[p]; !ok || got != w {
			t.Errorf("layer entry %s = %+v (present %v), want %+v", p, got, ok, w)
		}
	}
	if !strings.Contains(e["etc/passwd"].data, "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd = %q, want a nonroot user 65532", e["etc/passwd"].data)
	}
	for p := range e {
		if strings.Contains(p, "sh") && strings.HasPrefix(p, "bin/") {
			t.Errorf("unexpected shell %s", p)
		}
	}
}

func TestBuildAndWriteOCI(t *testing.T) {
	img := tinyImage(t, v1.Platform{OS: "linux", Architecture: "amd64"})
	out := filepath.Join(t.TempDir(), "img.tar")
	ref := "ghcr.io/example/app:1.2.3"
	if err := Write(out, FormatOCI, []string{ref}, []v1.Image{img}); err != nil {
		t.Fatal(err)
	}
	idx := readLayout(t, out)
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("index.json has %d entries, want 1", len(im.Manifests))
	}
	d := im.Manifests[0]
	if d.MediaType != types.OCIManifestSchema1 {
		t.Errorf("media type %s", d.MediaType)
	}
	if d.Annotations[AnnotationContainerdName] != ref || d.Annotations[AnnotationRefName] != "1.2.3" {
		t.Errorf("annotations %v", d.Annotations)
	}
	if d.Platform == nil || d.Platform.Architecture != "amd64" {
		t.Errorf("platform %v", d.Platform)
	}
	got, err := idx.Image(d.Digest)
	if err != nil {
		t.Fatal(err)
	}
	checkTiny(t, got, "amd64")

	// Same inputs, same bytes.
	out2 := filepath.Join(t.TempDir(), "img.tar")
	if err := Write(out2, FormatOCI, []string{ref}, []v1.Image{tinyImage(t, v1.Platform{OS: "linux", Architecture: "amd64"})}); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(out)
	b, _ := os.ReadFile(out2)
	if !bytes.Equal(a, b) {
		t.Error("two builds of the same inputs differ")
	}
}

func TestWriteOCIMultiPlatform(t *testing.T) {
	imgs := []v1.Image{
		tinyImage(t, v1.Platform{OS: "linux", Architecture: "amd64"}),
		tinyImage(t, v1.Platform{OS: "linux", Architecture: "arm64"}),
	}
	out := filepath.Join(t.TempDir(), "img.tar")
	if err := Write(out, FormatOCI, []string{"ghcr.io/example/app:v1", "ghcr.io/example/app:latest"}, imgs); err != nil {
		t.Fatal(err)
	}
	idx := readLayout(t, out)
	im, _ := idx.IndexManifest()
	if len(im.Manifests) != 2 {
		t.Fatalf("index.json has %d entries, want one per tag", len(im.Manifests))
	}
	names := []string{im.Manifests[0].Annotations[AnnotationContainerdName], im.Manifests[1].Annotations[AnnotationContainerdName]}
	if !reflect.DeepEqual(names, []string{"ghcr.io/example/app:v1", "ghcr.io/example/app:latest"}) {
		t.Errorf("names %v", names)
	}
	if im.Manifests[0].Digest != im.Manifests[1].Digest || im.Manifests[0].MediaType != types.OCIImageIndex {
		t.Fatalf("tags should share one image index: %+v", im.Manifests)
	}
	inner, err := idx.ImageIndex(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	innerM, _ := inner.IndexManifest()
	if len(innerM.Manifests) != 2 {
		t.Fatalf("inner index has %d manifests, want 2", len(innerM.Manifests))
	}
	for _, d := range innerM.Manifests {
		img, err := inner.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		checkTiny(t, img, d.Platform.Architecture)
	}
}

func TestWriteDocker(t *testing.T) {
	img := tinyImage(t, v1.Platform{OS: "linux", Architecture: "arm64"})
	out := filepath.Join(t.TempDir(), "img.tar")
	if err := Write(out, FormatDocker, []string{"registry.k8s.io/pause:3.6"}, []v1.Image{img}); err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("registry.k8s.io/pause:3.6")
	got, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		t.Fatal(err)
	}
	checkTiny(t, got, "arm64")

	two := []v1.Image{img, tinyImage(t, v1.Platform{OS: "linux", Architecture: "amd64"})}
	if err := Write(out, FormatDocker, []string{"x.test/a:1"}, two); err == nil {
		t.Error("docker format accepted two platforms")
	}
}

func TestRefusals(t *testing.T) {
	p := v1.Platform{OS: "linux", Architecture: "amd64"}
	cases := map[string][]File{
		"relative path": {{Path: "etc/x"}},
		"twice":         {{Path: "/a"}, {Path: "/a/"}},
		"parent file":   {{Path: "/a"}, {Path: "/a/b"}},
		"data and src":  {{Path: "/a", Data: []byte("x"), Source: "/etc/hostname"}},
		"missing src":   {{Path: "/a", Source: "/nonexistent/file"}},
		"root":          {{Path: "/", Dir: true}},
	}
	for n, files := range cases {
		if _, err := Build(p, Config{}, files); err == nil {
			t.Errorf("%s: Build accepted %+v", n, files)
		}
	}
	if _, err := Build(v1.Platform{OS: "linux"}, Config{}, nil); err == nil {
		t.Error("Build accepted a platform without arch")
	}
	img, err := Build(p, Config{}, []File{{Path: "/a", Data: []byte("x")}})
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(filepath.Join(t.TempDir(), "x.tar"), FormatOCI, []string{"no tag at all:::"}, []v1.Image{img}); err == nil {
		t.Error("Write accepted an invalid reference")
	}
}

// readLayout untars an OCI archive and opens it as a layout.
func readLayout(t *testing.T, archive string) v1.ImageIndex {
	t.Helper()
	dir := t.TempDir()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		if err := os.WriteFile(p, b, fs.FileMode(h.Mode)); err != nil {
			t.Fatal(err)
		}
	}
	var lay struct {
		Version string `json:"imageLayoutVersion"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "oci-layout"))
	if err != nil || json.Unmarshal(b, &lay) != nil || lay.Version == "" {
		t.Fatalf("oci-layout missing or bad: %s %v", b, err)
	}
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

func TestPushToRegistry(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	imgs := []v1.Image{
		tinyImage(t, v1.Platform{OS: "linux", Architecture: "amd64"}),
		tinyImage(t, v1.Platform{OS: "linux", Architecture: "arm64"}),
	}
	ref := host + "/obolstack/obol:1.2.3"
	if err := Push(context.Background(), []string{ref}, imgs); err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag(ref)
	idx, err := remote.Index(tag)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	if len(im.Manifests) != 2 {
		t.Fatalf("pushed index has %d manifests, want 2", len(im.Manifests))
	}
	for _, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		checkTiny(t, img, d.Platform.Architecture)
	}

	one := host + "/obolstack/pause:3.6"
	if err := Push(context.Background(), []string{one}, imgs[:1]); err != nil {
		t.Fatal(err)
	}
	tag, _ = name.NewTag(one)
	img, err := remote.Image(tag)
	if err != nil {
		t.Fatal(err)
	}
	checkTiny(t, img, "amd64")
}
