package sell

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/kube"
	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
)

// PauseOptions are the inputs of `obol sell pause` and `obol sell resume`.
type PauseOptions struct {
	IO     *cmdutil.IOStreams
	Kube   kube.Options
	Output string
	Name   string
	Pause  bool // true = pause, false = resume
}

// NewCmdPause returns `obol sell pause`.
func NewCmdPause(f *cmdutil.Factory, runF func(*PauseOptions) error) *cobra.Command {
	return newCmdPauseResume(f, runF, true)
}

// NewCmdResume returns `obol sell resume`.
func NewCmdResume(f *cmdutil.Factory, runF func(*PauseOptions) error) *cobra.Command {
	return newCmdPauseResume(f, runF, false)
}

func newCmdPauseResume(f *cmdutil.Factory, runF func(*PauseOptions) error, pause bool) *cobra.Command {
	opts := &PauseOptions{IO: f.IO, Pause: pause}
	cmd := &cobra.Command{
		Use:     "pause NAME",
		Short:   "Stop selling an offer without deleting it",
		Long:    "Set the annotation obol.org/paused=true: the controller withdraws the offer's route (conditions PaymentGateReady and RoutePublished become False with reason Paused). `obol sell resume` undoes it.",
		Example: "  obol sell pause weather",
	}
	if !pause {
		cmd.Use = "resume NAME"
		cmd.Short = "Sell a paused offer again"
		cmd.Long = "Remove the annotation obol.org/paused: the controller publishes the offer's route again."
		cmd.Example = "  obol sell resume weather"
	}
	cmd.Args = cobra.ExactArgs(1)
	cmd.RunE = func(c *cobra.Command, args []string) error {
		opts.Name = args[0]
		opts.Kube = kubeOptions(f)
		opts.Output = f.Global.Output
		if runF != nil {
			return runF(opts)
		}
		return pauseRun(c.Context(), opts)
	}
	return cmd
}

func pauseRun(ctx context.Context, opts *PauseOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	c, ns, err := connect(opts.Kube)
	if err != nil {
		return err
	}
	var value any // null removes the annotation
	verb := "resume"
	if opts.Pause {
		value, verb = "true", "pause"
	}
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"annotations": map[string]any{v1alpha1.PausedAnnotation: value}},
	})
	if err != nil {
		return err
	}
	o := &v1alpha1.ServiceOffer{}
	o.Namespace, o.Name = ns, opts.Name
	if err := c.Patch(ctx, o, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return describeErr(fmt.Sprintf("%s ServiceOffer %s/%s", verb, ns, opts.Name), err)
	}
	if opts.Output == cmdutil.OutputTable || opts.Output == "" {
		if opts.Pause {
			fmt.Fprintf(opts.IO.Out, "Paused ServiceOffer %s/%s: the controller withdraws its route. Resume with: obol sell resume %s -n %s\n", ns, o.Name, o.Name, ns)
		} else {
			fmt.Fprintf(opts.IO.Out, "Resumed ServiceOffer %s/%s: the controller publishes its route again. Check with: obol sell status %s -n %s\n", ns, o.Name, o.Name, ns)
		}
		return nil
	}
	m, err := manifest(o, true)
	if err != nil {
		return err
	}
	return printData(opts.IO.Out, opts.Output, m, nil)
}
