// Package buildinfo holds the version stamped into the binary at link time.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Set with -ldflags "-X github.com/obolstack/obol/internal/buildinfo.Version=..." etc.
var (
	Version = "dev"
	Commit  = ""
	Date    = ""
)

// Info describes the running binary.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	BuildDate string `json:"buildDate"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// Get returns the build information, falling back to the VCS data the Go
// toolchain records when the link-time values were not set or are a
// placeholder: GoReleaser stamps "none" when it cannot read the repository
// (in a snapshot of a clone without a remote, for one), although the
// toolchain still recorded the commit it built.
func Get() Info {
	info := Info{
		Version:   Version,
		Commit:    known(Commit),
		BuildDate: known(Date),
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if info.Commit == "" {
					info.Commit = s.Value
				}
			case "vcs.time":
				if info.BuildDate == "" {
					info.BuildDate = s.Value
				}
			}
		}
	}
	if info.Commit == "" {
		info.Commit = "unknown"
	}
	if info.BuildDate == "" {
		info.BuildDate = "unknown"
	}
	return info
}

// known returns v, or "" for the placeholders release tools stamp when they
// do not know the value.
func known(v string) string {
	switch v {
	case "none", "unknown", "<no value>":
		return ""
	}
	return v
}
