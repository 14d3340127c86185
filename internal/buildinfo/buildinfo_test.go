package buildinfo

import (
	"runtime"
	"testing"
)

func TestGetUsesLinkTimeValues(t *testing.T) {
	saved := [3]string{Version, Commit, Date}
	t.Cleanup(func() { Version, Commit, Date = saved[0], saved[1], saved[2] })

	Version, Commit, Date = "v0.3.0", "0123abcd", "2026-11-27T00:00:00Z"
	got := Get()
	if got.Version != "v0.3.0" || got.Commit != "0123abcd" || got.BuildDate != "2026-11-27T00:00:00Z" {
		t.Errorf("Get() = %+v, want the -X values", got)
	}
	if got.GoVersion != runtime.Version() || got.Platform != runtime.GOOS+"/"+runtime.GOARCH {
		t.Errorf("Get() = %+v, want the running Go version and platform", got)
	}
}

func TestGetNeverEmpty(t *testing.T) {
	saved := [3]string{Version, Commit, Date}
	t.Cleanup(func() { Version, Commit, Date = saved[0], saved[1], saved[2] })

	Commit, Date = "", ""
	got := Get()
	if got.Commit == "" || got.BuildDate == "" {
		t.Errorf("Get() = %+v: commit and build date must fall back to a value", got)
	}
}

func TestGetReplacesPlaceholders(t *testing.T) {
	saved := [3]string{Version, Commit, Date}
	t.Cleanup(func() { Version, Commit, Date = saved[0], saved[1], saved[2] })

	for _, p := range []string{"none", "<no value>"} {
		Commit, Date = p, p
		got := Get()
		if got.Commit == p || got.BuildDate == p {
			t.Errorf("Commit=Date=%q: Get() = %+v, want the toolchain's values or \"unknown\" for both", p, got)
		}
	}
}
