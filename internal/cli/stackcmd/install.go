package stackcmd

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/stack"
)

// InstallOptions are the inputs of `obol stack install` and `obol stack upgrade`.
type InstallOptions struct {
	IO      *cmdutil.IOStreams
	Factory *cmdutil.Factory
	Output  string
	clusterFlags
	valueFlags

	DryRun      bool
	Wait        bool
	Timeout     time.Duration
	ResetValues bool // upgrade only
	Upgrade     bool
}

func addInstallFlags(cmd *cobra.Command, opts *InstallOptions) {
	fl := cmd.Flags()
	opts.valueFlags.add(fl)
	opts.clusterFlags.add(fl)
	fl.BoolVar(&opts.DryRun, "dry-run", false, "render against the cluster and have the API server validate every object (server-side dry run); change nothing")
	fl.BoolVar(&opts.Wait, "wait", false, "wait until every Deployment is rolled out, printing progress")
	fl.DurationVar(&opts.Timeout, "timeout", stack.DefaultTimeout, "how long to wait for the cluster (and for the rollout with --wait)")
}

// NewCmdInstall builds `obol stack install`; runF replaces installRun in tests.
func NewCmdInstall(f *cmdutil.Factory, runF func(*InstallOptions) error) *cobra.Command {
	opts := &InstallOptions{IO: f.IO, Factory: f}
	cmd := &cobra.Command{
		Use:   "install [-f values.yaml] [--set key=value] [--dry-run] [--wait]",
		Short: "Install the obol stack into the cluster",
		Long: `Install the embedded chart as a new Helm release (default name "obol") in the
namespace from -n (default ` + stack.DefaultNamespace + `, created when missing).

The CRDs (ServiceOffer, PurchaseRequest) are applied server-side first. The
ServiceMonitor, PodMonitor and PrometheusRule are installed only when the
cluster serves monitoring.coreos.com/v1 (prometheus-operator), unless
monitoring.enabled is true or false; a note says when they were skipped.

With --dry-run nothing changes: the chart is rendered with the cluster's
capabilities and every object is sent to the API server as a server-side dry
run, so schema, RBAC and admission errors show up now.`,
		Example: `  obol stack install --dry-run
  obol stack install --set verifier.payTo=0xYourAddress --set verifier.chain=base --wait
  obol stack install -n payments -f values.yaml --timeout 10m --wait
  obol stack install --dry-run -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Output = f.Global.Output
			opts.fromGlobal(f.Global)
			if runF != nil {
				return runF(opts)
			}
			return installRun(opts)
		},
	}
	addInstallFlags(cmd, opts)
	return cmd
}

// NewCmdUpgrade builds `obol stack upgrade`; runF replaces installRun in tests.
func NewCmdUpgrade(f *cmdutil.Factory, runF func(*InstallOptions) error) *cobra.Command {
	opts := &InstallOptions{IO: f.IO, Factory: f, Upgrade: true}
	cmd := &cobra.Command{
		Use:   "upgrade [-f values.yaml] [--set key=value] [--dry-run] [--wait]",
		Short: "Upgrade the obol stack to this binary's chart and images",
		Long: `Upgrade the existing release to the chart embedded in this binary (and so to
this binary's image version).

The values of the previous release are kept and -f/--set apply on top of
them; --reset-values starts again from the chart defaults. The CRDs are
applied server-side first, so they follow the binary's version too (plain
helm never upgrades CRDs).`,
		Example: `  obol stack upgrade --wait
  obol stack upgrade --set verifier.replicas=2 --dry-run
  obol stack upgrade --reset-values -f values.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Output = f.Global.Output
			opts.fromGlobal(f.Global)
			if runF != nil {
				return runF(opts)
			}
			return installRun(opts)
		},
	}
	addInstallFlags(cmd, opts)
	cmd.Flags().BoolVar(&opts.ResetValues, "reset-values", false, "start from the chart defaults instead of the previous release's values")
	return cmd
}

func installRun(opts *InstallOptions) error {
	vals, err := opts.values()
	if err != nil {
		return err
	}
	s, err := opts.open(opts.IO.ErrOut, opts.Factory)
	if err != nil {
		return err
	}
	ctx, cancel := withTimeout(opts.Timeout)
	defer cancel()
	in := stack.InstallOptions{Values: vals, DryRun: opts.DryRun, Wait: opts.Wait, Timeout: opts.Timeout, ResetValues: opts.ResetValues}
	var res *stack.Result
	if opts.Upgrade {
		res, err = s.Upgrade(ctx, in)
	} else {
		res, err = s.Install(ctx, in)
	}
	if err != nil {
		return err
	}
	printNotes(opts.IO.ErrOut, res.Notes)
	return cmdutil.PrintStructured(opts.IO.Out, opts.Output, res, func(w io.Writer) error {
		verb := "Installed"
		if opts.Upgrade {
			verb = "Upgraded"
		}
		if res.DryRun {
			fmt.Fprintf(w, "Dry run: the API server accepted the %d objects of release %s in namespace %s (nothing changed).\n", len(res.Objects), res.Release, res.Namespace)
		} else {
			fmt.Fprintf(w, "%s release %s in namespace %s: revision %d, %s, images %s.\n", verb, res.Release, res.Namespace, res.Revision, res.Status, res.AppVersion)
		}
		printObjects(w, res.Objects)
		if !res.DryRun && !opts.Wait {
			fmt.Fprintf(w, "Follow the rollout with: obol stack status -n %s\n", res.Namespace)
		}
		return nil
	})
}
