package stackcmd

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/obolstack/obol/internal/cli/cmdutil"
)

// StatusOptions are the inputs of `obol stack status`.
type StatusOptions struct {
	IO      *cmdutil.IOStreams
	Factory *cmdutil.Factory
	Output  string
	clusterFlags
}

// NewCmdStatus builds `obol stack status`; runF replaces statusRun in tests.
func NewCmdStatus(f *cmdutil.Factory, runF func(*StatusOptions) error) *cobra.Command {
	opts := &StatusOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the release and the rollout of its Deployments",
		Example: `  obol stack status
  obol stack status -n payments -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Output = f.Global.Output
			opts.fromGlobal(f.Global)
			if runF != nil {
				return runF(opts)
			}
			return statusRun(opts)
		},
	}
	opts.clusterFlags.add(cmd.Flags())
	return cmd
}

func statusRun(opts *StatusOptions) error {
	s, err := opts.open(opts.IO.ErrOut, opts.Factory)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := s.Status(ctx)
	if err != nil {
		return err
	}
	return cmdutil.PrintStructured(opts.IO.Out, opts.Output, st, func(w io.Writer) error {
		mon := "installed"
		if !st.Monitoring {
			mon = "not installed (no prometheus-operator when last installed, or monitoring.enabled=false)"
		}
		fmt.Fprintf(w, "Release:     %s\nNamespace:   %s\nStatus:      %s (revision %d)\nUpdated:     %s\nChart:       obol-%s\nImages:      %s\nMonitoring:  %s\n",
			st.Release, st.Namespace, st.Status, st.Revision, st.Updated.Format(time.RFC3339), st.ChartVersion, st.AppVersion, mon)
		if st.Description != "" {
			fmt.Fprintf(w, "Description: %s\n", st.Description)
		}
		fmt.Fprintln(w)
		t := cmdutil.NewTable(w, "DEPLOYMENT", "READY", "UP-TO-DATE", "AVAILABLE")
		for _, d := range st.Deployments {
			t.Row(d.Name, fmt.Sprintf("%d/%d", d.Ready, d.Desired), fmt.Sprint(d.Updated), fmt.Sprint(d.Available))
		}
		return t.Flush()
	})
}
