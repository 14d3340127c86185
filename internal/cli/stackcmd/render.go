package stackcmd

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/stack"
)

// RenderOptions are the inputs of `obol stack render`.
type RenderOptions struct {
	IO          *cmdutil.IOStreams
	Namespace   string
	ReleaseName string
	valueFlags

	APIVersions []string
	KubeVersion string
	SkipCRDs    bool
	Version     string
}

// NewCmdRender builds `obol stack render`; runF replaces renderRun in tests.
func NewCmdRender(f *cmdutil.Factory, runF func(*RenderOptions) error) *cobra.Command {
	opts := &RenderOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "render [-f values.yaml] [--set key=value]",
		Short: "Print the manifests the stack would install, without a cluster",
		Long: `Render the embedded chart client-side (like 'helm template') and print every
object as YAML: CRDs first, then the namespaced objects in install order.

No cluster is contacted, so monitoring.enabled=auto cannot see
prometheus-operator: pass --api-versions monitoring.coreos.com/v1 (or
--set monitoring.enabled=true) to include the ServiceMonitor, PodMonitor and
PrometheusRule. Use the output to review a change or to apply with GitOps
tools (then --set namespace.create=true adds the Namespace object).`,
		Example: `  obol stack render
  obol stack render --api-versions monitoring.coreos.com/v1 --set verifier.payTo=0xYourAddress
  obol stack render -n payments -f values.yaml > obol.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if f.Global.Output == cmdutil.OutputJSON {
				return &cmdutil.FlagError{Err: errors.New("stack render prints YAML manifests: drop -o json (or use -o yaml)")}
			}
			opts.Namespace = f.Global.Namespace
			if opts.Version == "" {
				opts.Version = version()
			}
			if runF != nil {
				return runF(opts)
			}
			return renderRun(opts)
		},
	}
	fl := cmd.Flags()
	opts.valueFlags.add(fl)
	fl.StringVar(&opts.ReleaseName, "release-name", stack.DefaultReleaseName, "name of the Helm release")
	fl.StringArrayVarP(&opts.APIVersions, "api-versions", "a", nil, "API versions the target cluster serves, e.g. monitoring.coreos.com/v1 (repeatable)")
	fl.StringVar(&opts.KubeVersion, "kube-version", stack.DefaultKubeVersion, "Kubernetes version of the target cluster")
	fl.BoolVar(&opts.SkipCRDs, "skip-crds", false, "leave the CRDs out")
	return cmd
}

func renderRun(opts *RenderOptions) error {
	vals, err := opts.values()
	if err != nil {
		return err
	}
	r, err := stack.Render(stack.RenderOptions{
		ReleaseName: opts.ReleaseName,
		Namespace:   opts.Namespace,
		Version:     opts.Version,
		Values:      vals,
		APIVersions: opts.APIVersions,
		KubeVersion: opts.KubeVersion,
		SkipCRDs:    opts.SkipCRDs,
	})
	if err != nil {
		return err
	}
	printNotes(opts.IO.ErrOut, r.Notes)
	_, err = fmt.Fprint(opts.IO.Out, r.Manifest)
	return err
}
