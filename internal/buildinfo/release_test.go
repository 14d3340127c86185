package buildinfo_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"text/template"

	"sigs.k8s.io/yaml"
)

// The release stamps the binary through .goreleaser.yaml's ldflags. In a
// snapshot of a clone without a remote GoReleaser cannot read the repository
// and fills {{ .FullCommit }} with "none"; `obol version` must still show the
// commit it was built from. Build with the same ldflags and flags, the way
// GoReleaser fills them then, and read `version -o json`.
func TestReleaseLdflagsStampTheCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the obol binary")
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skipf("not in a git checkout (%v): nothing to stamp", err)
	}
	raw, err := os.ReadFile("../../.goreleaser.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Before struct {
			Hooks []string `json:"hooks"`
		} `json:"before"`
		Builds []struct {
			ID      string   `json:"id"`
			Main    string   `json:"main"`
			Env     []string `json:"env"`
			Flags   []string `json:"flags"`
			Ldflags []string `json:"ldflags"`
		} `json:"builds"`
	}
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Builds) == 0 || cfg.Builds[0].ID != "obol" {
		t.Fatalf(".goreleaser.yaml: want the obol build first, got %+v", cfg.Builds)
	}
	b := cfg.Builds[0]

	// The before hooks run in the repository root; here in a scratch
	// directory (GIT_DIR points git at this checkout), so the test writes
	// nothing into the source tree. Only hooks that write files the
	// templates read are run.
	gitDir, err := exec.Command("git", "rev-parse", "--absolute-git-dir").Output()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	for _, h := range cfg.Before.Hooks {
		if !strings.Contains(h, "release-commit") {
			continue
		}
		cmd := exec.Command("sh", "-c", h)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "GIT_DIR="+strings.TrimSpace(string(gitDir)))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("before hook %q: %v\n%s", h, err, out)
		}
	}
	funcs := template.FuncMap{
		"readFile": func(p string) (string, error) {
			b, err := os.ReadFile(filepath.Join(root, p))
			return string(b), err
		},
		"trim": strings.TrimSpace,
	}
	ldflags := func(fullCommit string) []string {
		data := map[string]string{"Version": "0.0.1-snapshot", "FullCommit": fullCommit, "Date": "2026-11-30T00:00:00Z"}
		var out []string
		for _, l := range b.Ldflags {
			tpl, err := template.New("ldflag").Option("missingkey=error").Funcs(funcs).Parse(l)
			if err != nil {
				t.Fatalf("ldflag %q: %v", l, err)
			}
			var sb strings.Builder
			if err := tpl.Execute(&sb, data); err != nil {
				t.Fatalf("ldflag %q: %v (a template field this test does not fill? add it here)", l, err)
			}
			out = append(out, sb.String())
		}
		return out
	}
	want := strings.TrimSpace(string(head))
	// A release in a proper clone: GoReleaser's own commit.
	if got := strings.Join(ldflags(want), " "); !strings.Contains(got, "buildinfo.Commit="+want) {
		t.Errorf("ldflags with GoReleaser's commit: %s", got)
	}
	// A snapshot where GoReleaser could not read the repository: built below.
	snapshot := ldflags("none")

	bin := filepath.Join(t.TempDir(), "obol")
	args := append([]string{"build"}, b.Flags...)
	args = append(args, "-ldflags", strings.Join(snapshot, " "), "-o", bin, "../../"+strings.TrimPrefix(b.Main, "./"))
	build := exec.Command("go", args...)
	build.Env = append(os.Environ(), b.Env...)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	out, err := exec.Command(bin, "version", "-o", "json").Output()
	if err != nil {
		t.Fatalf("obol version -o json: %v", err)
	}
	var v struct {
		Version, Commit, BuildDate string
	}
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if v.Version != "0.0.1-snapshot" || v.BuildDate != "2026-11-30T00:00:00Z" {
		t.Errorf("version %q buildDate %q: the ldflags do not reach internal/buildinfo\n%s", v.Version, v.BuildDate, out)
	}
	if v.Commit != want {
		t.Errorf("commit %q, want %s (HEAD)\n%s", v.Commit, want, out)
	}
}
