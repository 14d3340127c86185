// Package version implements `obol version`.
package version

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/obolstack/obol/internal/buildinfo"
	"github.com/obolstack/obol/internal/cli/cmdutil"
)

// Options are the inputs of `obol version`.
type Options struct {
	IO     *cmdutil.IOStreams
	Output string
	Info   func() buildinfo.Info
}

// NewCmdVersion builds the command; runF replaces versionRun in tests.
func NewCmdVersion(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	opts := &Options{IO: f.IO, Info: buildinfo.Get}
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version of obol",
		Example: "  obol version\n  obol version -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Output = f.Global.Output
			if runF != nil {
				return runF(opts)
			}
			return versionRun(opts)
		},
	}
}

func versionRun(opts *Options) error {
	info := opts.Info()
	return cmdutil.PrintStructured(opts.IO.Out, opts.Output, info, func(w io.Writer) error {
		_, err := fmt.Fprintf(w, "obol %s\n  commit:     %s\n  built:      %s\n  go:         %s\n  platform:   %s\n",
			info.Version, info.Commit, info.BuildDate, info.GoVersion, info.Platform)
		return err
	})
}
