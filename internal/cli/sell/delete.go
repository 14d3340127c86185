package sell

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/kube"
	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
)

// DeleteOptions are the inputs of `obol sell delete`.
type DeleteOptions struct {
	IO      *cmdutil.IOStreams
	Kube    kube.Options
	Name    string
	Wait    bool
	Timeout time.Duration
}

// NewCmdDelete returns `obol sell delete`.
func NewCmdDelete(f *cmdutil.Factory, runF func(*DeleteOptions) error) *cobra.Command {
	opts := &DeleteOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Stop selling an offer and delete it",
		Long: `Delete a ServiceOffer. The controller first withdraws its route (a
finalizer keeps the offer until then); --wait returns once it is gone.`,
		Example: `  obol sell delete weather
  obol sell delete qwen -n llm --wait`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			opts.Kube = kubeOptions(f)
			if runF != nil {
				return runF(opts)
			}
			return deleteRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.Wait, "wait", false, "wait until the route is withdrawn and the offer is gone")
	cmd.Flags().DurationVar(&opts.Timeout, "timeout", 2*time.Minute, "how long --wait waits")
	return cmd
}

func deleteRun(ctx context.Context, opts *DeleteOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	c, ns, err := connect(opts.Kube)
	if err != nil {
		return err
	}
	o := &v1alpha1.ServiceOffer{}
	o.Namespace, o.Name = ns, opts.Name
	if err := c.Delete(ctx, o); err != nil {
		return describeErr(fmt.Sprintf("delete ServiceOffer %s/%s", ns, opts.Name), err)
	}
	if !opts.Wait {
		fmt.Fprintf(opts.IO.Out, "Deleting ServiceOffer %s/%s: the controller withdraws its route, then it is gone.\n", ns, opts.Name)
		return nil
	}
	if err := waitGone(ctx, c, ns, opts.Name, opts.Timeout); err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.Out, "Deleted ServiceOffer %s/%s; its route is withdrawn.\n", ns, opts.Name)
	return nil
}
