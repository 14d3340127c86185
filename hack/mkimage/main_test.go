package main

import (
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The way GoReleaser's publisher calls it: per-platform binaries found by a
// glob, several platforms, pushed as one index; and a docker tarball.
func TestRunGlobPushAndTarball(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"obol_linux_amd64_v1", "obol_linux_arm64_v8.0"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, d, "obol"), []byte(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	ref := strings.TrimPrefix(srv.URL, "http://") + "/obolstack/obol:0.1.1-snapshot"
	err := run([]string{"--push", "--tag", ref, "--platform", "linux/amd64", "--platform", "linux/arm64",
		"--file", dir + "/obol_{os}_{arch}*/obol:/usr/local/bin/obol", "--entrypoint", `["/usr/local/bin/obol"]`, "--user", "65532:65532"})
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag(ref)
	idx, err := remote.Index(tag)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	if len(im.Manifests) != 2 {
		t.Fatalf("%d manifests", len(im.Manifests))
	}

	out := filepath.Join(dir, "pause.tar")
	if err := run([]string{"-o", out, "--format", "docker", "--tag", "registry.k8s.io/pause:3.6", "--file", dir + "/obol_linux_amd64_v1/obol:/pause:0755", "--entrypoint", "/pause"}); err != nil {
		t.Fatal(err)
	}
	pt, _ := name.NewTag("registry.k8s.io/pause:3.6")
	img, err := tarball.ImageFromPath(out, &pt)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	if len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != "/pause" {
		t.Errorf("entrypoint %q", cf.Config.Entrypoint)
	}

	for _, bad := range [][]string{
		{"--tag", "x.test/a:1"}, // neither -o nor --push
		{"-o", out, "--tag", "x.test/a:1", "--file", dir + "/obol_linux_*/obol:/x"}, // glob matches two
		{"-o", out, "--tag", "x.test/a:1", "--file", "nocolon"},
	} {
		if err := run(bad); err == nil {
			t.Errorf("run(%q) succeeded", bad)
		}
	}
}
