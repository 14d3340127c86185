package v1alpha1_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// ControllerGenVersion is the controller-tools version pinned in
// hack/tools/controller-gen/go.mod.
const ControllerGenVersion = "v0.23.0"

// controllerGen returns the pinned controller-gen binary, building it once
// into $HOME/.cache/obol/bin from the pinned tools module (about a minute
// or two on an empty build cache).
func controllerGen(t *testing.T, repo string) string {
	t.Helper()
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(home, ".cache", "obol", "bin", "controller-gen-"+ControllerGenVersion)
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("building controller-gen %s into %s (once)", ControllerGenVersion, bin)
	cmd := exec.Command("go", "build", "-o", bin+".tmp", "sigs.k8s.io/controller-tools/cmd/controller-gen")
	cmd.Dir = filepath.Join(repo, "hack", "tools", "controller-gen")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build controller-gen: %v\n%s", err, out)
	}
	if err := os.Rename(bin+".tmp", bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

// TestGeneratedFilesUpToDate regenerates the CRDs and the deepcopy code
// into a temp dir with the pinned controller-gen and fails when the
// committed files differ: the CRD schema and the Go types cannot drift.
func TestGeneratedFilesUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping controller-gen")
	}
	repo := repoRoot(t)
	cg := controllerGen(t, repo)
	tmp := t.TempDir()
	crdOut := filepath.Join(tmp, "crds")
	objOut := filepath.Join(tmp, "object")
	cmd := exec.Command(cg,
		"crd", "object",
		"paths=./internal/monetizeapi/v1alpha1/...",
		"output:crd:artifacts:config="+crdOut,
		"output:object:dir="+objOut,
	)
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("controller-gen: %v\n%s", err, out)
	}

	compareDir(t, crdOut, filepath.Join(repo, "charts", "obol", "crds"), "obol.org_")
	compareDir(t, objOut, filepath.Join(repo, "internal", "monetizeapi", "v1alpha1"), "zz_generated.")
}

// compareDir demands that every generated file exists committed with the
// same bytes, and that no committed file with prefix is left over.
func compareDir(t *testing.T, generated, committed, prefix string) {
	t.Helper()
	gen, err := os.ReadDir(generated)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, e := range gen {
		want[e.Name()] = true
		g, err := os.ReadFile(filepath.Join(generated, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		c, err := os.ReadFile(filepath.Join(committed, e.Name()))
		if err != nil {
			t.Errorf("%s is generated but not committed in %s: run `make generate`", e.Name(), committed)
			continue
		}
		if !bytes.Equal(g, c) {
			t.Errorf("%s/%s differs from what the Go types generate: run `make generate` and commit\n%s",
				committed, e.Name(), firstDiff(string(c), string(g)))
		}
	}
	have, err := os.ReadDir(committed)
	if err != nil {
		t.Fatal(err)
	}
	var stale []string
	for _, e := range have {
		if strings.HasPrefix(e.Name(), prefix) && !want[e.Name()] {
			stale = append(stale, e.Name())
		}
	}
	sort.Strings(stale)
	if len(stale) > 0 {
		t.Errorf("committed files no type generates any more (delete them): %v", stale)
	}
}

func firstDiff(committed, generated string) string {
	a, b := strings.Split(committed, "\n"), strings.Split(generated, "\n")
	for i := 0; i < len(a) || i < len(b); i++ {
		var x, y string
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if x != y {
			return "first difference at line " + strconv.Itoa(i+1) + ":\n  committed: " + x + "\n  generated: " + y
		}
	}
	return ""
}
