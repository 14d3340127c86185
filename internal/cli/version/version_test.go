package version

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/obolstack/obol/internal/buildinfo"
	"github.com/obolstack/obol/internal/cli/cmdutil"
)

func TestNewCmdVersionParsesOptions(t *testing.T) {
	f, _ := cmdutil.NewTestFactory()
	f.Global.Output = cmdutil.OutputJSON
	var got *Options
	cmd := NewCmdVersion(f, func(o *Options) error { got = o; return nil })
	cmd.SetArgs(nil)
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got == nil || got.Output != cmdutil.OutputJSON || got.IO != f.IO || got.Info == nil {
		t.Fatalf("options = %+v, want output json, the factory's IO and an Info func", got)
	}
}

func TestNewCmdVersionRejectsArgs(t *testing.T) {
	f, _ := cmdutil.NewTestFactory()
	cmd := NewCmdVersion(f, func(*Options) error { t.Error("runF called"); return nil })
	cmd.SetArgs([]string{"extra"})
	cmd.SetOut(f.IO.ErrOut)
	cmd.SetErr(f.IO.ErrOut)
	if err := cmd.Execute(); err == nil {
		t.Fatal("want an error for an unexpected argument")
	}
}

var fixed = buildinfo.Info{Version: "v1.2.3", Commit: "abc123", BuildDate: "2026-01-02T03:04:05Z", GoVersion: "go1.26.0", Platform: "linux/arm64"}

func TestVersionRunJSON(t *testing.T) {
	ios, _, out, _ := cmdutil.Test()
	err := versionRun(&Options{IO: ios, Output: cmdutil.OutputJSON, Info: func() buildinfo.Info { return fixed }})
	if err != nil {
		t.Fatal(err)
	}
	var got buildinfo.Info
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if got != fixed {
		t.Errorf("got %+v, want %+v", got, fixed)
	}
	for _, key := range []string{`"version"`, `"commit"`, `"buildDate"`, `"goVersion"`, `"platform"`} {
		if !strings.Contains(out.String(), key) {
			t.Errorf("JSON lacks key %s", key)
		}
	}
}

func TestVersionRunTable(t *testing.T) {
	ios, _, out, _ := cmdutil.Test()
	if err := versionRun(&Options{IO: ios, Output: cmdutil.OutputTable, Info: func() buildinfo.Info { return fixed }}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"obol v1.2.3", "abc123", "2026-01-02T03:04:05Z", "go1.26.0", "linux/arm64"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
