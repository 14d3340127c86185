package stackcmd

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/stack"
)

// UninstallOptions are the inputs of `obol stack uninstall`.
type UninstallOptions struct {
	IO      *cmdutil.IOStreams
	Factory *cmdutil.Factory
	Output  string
	clusterFlags

	DryRun      bool
	Wait        bool
	Timeout     time.Duration
	KeepHistory bool
}

// NewCmdUninstall builds `obol stack uninstall`; runF replaces uninstallRun in tests.
func NewCmdUninstall(f *cmdutil.Factory, runF func(*UninstallOptions) error) *cobra.Command {
	opts := &UninstallOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:   "uninstall [--dry-run] [--wait]",
		Short: "Remove the obol stack from the cluster",
		Long: `Delete every object of the release and its history.

The CRDs serviceoffers.obol.org and purchaserequests.obol.org stay, and so do
the ServiceOffers and PurchaseRequests in them: deleting a CRD deletes every
object of its kind, so that is left to you (kubectl delete crd ...).`,
		Example: `  obol stack uninstall --dry-run
  obol stack uninstall --wait
  obol stack uninstall -n payments`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Output = f.Global.Output
			opts.fromGlobal(f.Global)
			if runF != nil {
				return runF(opts)
			}
			return uninstallRun(opts)
		},
	}
	fl := cmd.Flags()
	opts.clusterFlags.add(fl)
	fl.BoolVar(&opts.DryRun, "dry-run", false, "show what would be deleted; change nothing")
	fl.BoolVar(&opts.Wait, "wait", false, "wait until the objects are gone")
	fl.DurationVar(&opts.Timeout, "timeout", stack.DefaultTimeout, "how long to wait for the cluster")
	fl.BoolVar(&opts.KeepHistory, "keep-history", false, "keep the release history (helm history still shows it)")
	return cmd
}

func uninstallRun(opts *UninstallOptions) error {
	s, err := opts.open(opts.IO.ErrOut, opts.Factory)
	if err != nil {
		return err
	}
	ctx, cancel := withTimeout(opts.Timeout)
	defer cancel()
	res, err := s.Uninstall(ctx, stack.UninstallOptions{DryRun: opts.DryRun, Wait: opts.Wait, Timeout: opts.Timeout, KeepHistory: opts.KeepHistory})
	if err != nil {
		return err
	}
	printNotes(opts.IO.ErrOut, res.Notes)
	return cmdutil.PrintStructured(opts.IO.Out, opts.Output, res, func(w io.Writer) error {
		if res.DryRun {
			fmt.Fprintf(w, "Dry run: would delete these objects of release %s in namespace %s:\n", res.Release, res.Namespace)
		} else {
			fmt.Fprintf(w, "Uninstalled release %s from namespace %s; deleted:\n", res.Release, res.Namespace)
		}
		printObjects(w, res.Objects)
		return nil
	})
}
