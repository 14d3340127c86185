package stack

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The vendored prometheus-operator CRDs are byte-for-byte the upstream
// v0.85.0 files (read from the module cache via `go mod download -json`).
func TestPrometheusOperatorFixturesMatchUpstream(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skips the module download")
	}
	out, err := exec.Command("go", "mod", "download", "-json", "github.com/prometheus-operator/prometheus-operator@v0.85.0").Output()
	if err != nil {
		t.Skipf("go mod download prometheus-operator@v0.85.0 unavailable (offline?): %v", err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download -json: %v\n%s", err, out)
	}
	for _, kind := range []string{"servicemonitors", "podmonitors", "prometheusrules"} {
		name := "monitoring.coreos.com_" + kind + ".yaml"
		want, err := os.ReadFile(filepath.Join(mod.Dir, "example", "prometheus-operator-crd", name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join("..", "..", "testdata", "crds", "prometheus-operator", name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("testdata/crds/prometheus-operator/%s differs from upstream v0.85.0: refresh it (see the README there)", name)
		}
	}
}
