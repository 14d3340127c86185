// Package stackcmd implements `obol stack`: install, upgrade, uninstall,
// inspect and render the Helm chart embedded in the obol binary, through the
// Helm library (no helm, helmfile or kubectl binary needed).
package stackcmd

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/obolstack/obol/internal/buildinfo"
	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/stack"
)

// NewCmdStack is the `obol stack` group.
func NewCmdStack(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "stack",
		Short: "Install and manage obol's in-cluster components",
		Long: `Install, upgrade, inspect and remove the obol stack in a Kubernetes cluster:
the x402 verifier, the ServiceOffer/PurchaseRequest controller, the buyer
proxy, their RBAC and CRDs, and (when prometheus-operator is present) the
ServiceMonitor, PodMonitor and PrometheusRule that feed 'obol earnings'.

The Helm chart is embedded in this binary and installed through the Helm
library; the release is stored in the cluster like any Helm release, so
'helm list' sees it. The images default to this binary's version.

The cluster comes from --kubeconfig/--context; the namespace from -n
(default ` + stack.DefaultNamespace + `). Every value is explained in docs/install.md.`,
		Example: `  # see what would be installed
  obol stack render | less

  # validate against the cluster without changing it, then install and wait
  obol stack install --dry-run --set verifier.payTo=0xYourAddress
  obol stack install --set verifier.payTo=0xYourAddress --wait

  obol stack status
  obol stack upgrade -f my-values.yaml --wait
  obol stack uninstall`,
	}
	cmd.AddCommand(
		NewCmdInstall(f, nil),
		NewCmdUpgrade(f, nil),
		NewCmdUninstall(f, nil),
		NewCmdStatus(f, nil),
		NewCmdRender(f, nil),
	)
	return cmd
}

// valueFlags are -f and --set, shared by install, upgrade and render.
type valueFlags struct {
	ValueFiles []string
	Sets       []string
	// Devnet is --devnet: devnet.enabled=true before any --set.
	Devnet bool
}

func (v *valueFlags) add(fl *pflag.FlagSet) {
	fl.StringArrayVarP(&v.ValueFiles, "values", "f", nil, "values file (YAML); repeat for several, later files win")
	fl.StringArrayVar(&v.Sets, "set", nil, "set a value: key=value, e.g. verifier.payTo=0xabc... (repeatable; wins over -f)")
	fl.BoolVar(&v.Devnet, "devnet", false, "also run a development chain, facilitator and demo API in the cluster and point the verifier at them (devnet.enabled=true; test money only)")
}

func (v *valueFlags) values() (map[string]any, error) {
	sets := v.Sets
	if v.Devnet {
		sets = append([]string{"devnet.enabled=true"}, sets...)
	}
	vals, err := stack.Values(v.ValueFiles, sets)
	if err != nil {
		return nil, &cmdutil.FlagError{Err: err}
	}
	return vals, nil
}

// clusterFlags identify the release in the cluster.
type clusterFlags struct {
	Kubeconfig  string
	Context     string
	Namespace   string
	ReleaseName string
}

func (c *clusterFlags) add(fl *pflag.FlagSet) {
	fl.StringVar(&c.ReleaseName, "release-name", stack.DefaultReleaseName, "name of the Helm release")
}

func (c *clusterFlags) fromGlobal(g *cmdutil.GlobalOptions) {
	c.Kubeconfig, c.Context, c.Namespace = g.Kubeconfig, g.Context, g.Namespace
}

func (c *clusterFlags) open(errOut io.Writer, f *cmdutil.Factory) (*stack.Stack, error) {
	return stack.New(stack.Config{
		Kubeconfig:  c.Kubeconfig,
		Context:     c.Context,
		Namespace:   c.Namespace,
		ReleaseName: c.ReleaseName,
		Version:     version(),
		Progress:    errOut,
		Logger:      f.Logger,
	})
}

// version is the image tag the chart defaults to: this binary's version.
func version() string { return buildinfo.Get().Version }

func printNotes(w io.Writer, notes []string) {
	for _, n := range notes {
		fmt.Fprintf(w, "Note: %s\n", n)
	}
}

func printObjects(w io.Writer, objs []stack.Object) {
	t := cmdutil.NewTable(w, "  KIND", "NAMESPACE", "NAME")
	for _, o := range objs {
		ns := o.Namespace
		if ns == "" {
			ns = "-"
		}
		t.Row("  "+o.Kind, ns, o.Name)
	}
	_ = t.Flush()
}

func withTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		d = stack.DefaultTimeout
	}
	// A little longer than the Helm timeout, so Helm reports its own.
	return context.WithTimeout(context.Background(), d+30*time.Second)
}
