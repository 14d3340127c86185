package sell

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/kube"
	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
)

// StatusOptions are the inputs of `obol sell status`.
type StatusOptions struct {
	IO     *cmdutil.IOStreams
	Kube   kube.Options
	Output string
	Name   string
}

// NewCmdStatus returns `obol sell status`.
func NewCmdStatus(f *cmdutil.Factory, runF func(*StatusOptions) error) *cobra.Command {
	opts := &StatusOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "status NAME",
		Short: "Explain the state of a ServiceOffer",
		Long: `Show where buyers reach an offer, what it charges, and each condition the
controller reports (UpstreamHealthy, PaymentGateReady, RoutePublished,
Ready) in words, with what to do when one is not met.`,
		Example: `  obol sell status weather
  obol sell status qwen -n llm -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			opts.Kube = kubeOptions(f)
			opts.Output = f.Global.Output
			if runF != nil {
				return runF(opts)
			}
			return statusRun(cmd.Context(), opts)
		},
	}
	return cmd
}

func statusRun(ctx context.Context, opts *StatusOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	c, ns, err := connect(opts.Kube)
	if err != nil {
		return err
	}
	o, err := getOffer(ctx, c, ns, opts.Name)
	if err != nil {
		return err
	}
	m, err := manifest(o, true)
	if err != nil {
		return err
	}
	return printData(opts.IO.Out, opts.Output, m, func(w io.Writer) error {
		return WriteStatus(w, o)
	})
}

// WriteStatus explains an offer's state in words.
func WriteStatus(w io.Writer, o *v1alpha1.ServiceOffer) error {
	s := o.Spec
	fmt.Fprintf(w, "ServiceOffer %s/%s\n", o.Namespace, o.Name)
	endpoint := o.Status.Endpoint
	if endpoint == "" {
		endpoint = o.EffectivePath() + " (not yet confirmed by the controller)"
	}
	fmt.Fprintf(w, "  Endpoint:  %s\n", endpoint)
	fmt.Fprintf(w, "  Type:      %s\n", s.Type)
	if s.Model != nil {
		fmt.Fprintf(w, "  Model:     %s\n", s.Model.Name)
	}
	fmt.Fprintf(w, "  Upstream:  Service %s/%s port %d\n", o.UpstreamNamespace(), s.Upstream.Service, s.Upstream.Port)
	sym := ""
	if s.Payment.Asset != nil {
		sym = " " + s.Payment.Asset.Symbol
	}
	if p := s.Payment.Price.PerRequest; p != "" {
		fmt.Fprintf(w, "  Price:     %s%s per request\n", p, sym)
	}
	if p := s.Payment.Price.PerMTok; p != "" {
		fmt.Fprintf(w, "  Price:     %s%s per million tokens\n", p, sym)
	}
	if p := s.Payment.Price.PerHour; p != "" {
		fmt.Fprintf(w, "  Price:     %s%s per hour\n", p, sym)
	}
	fmt.Fprintf(w, "  Network:   %s\n", s.Payment.Network)
	fmt.Fprintf(w, "  Pay to:    %s\n", s.Payment.PayTo)
	paused := "no"
	if o.IsPaused() {
		paused = "yes (annotation obol.org/paused=true; `obol sell resume " + o.Name + "` sells again)"
	}
	fmt.Fprintf(w, "  Paused:    %s\n", paused)
	if !o.DeletionTimestamp.IsZero() {
		fmt.Fprintf(w, "  Deleting:  yes, waiting for finalizers %v\n", o.Finalizers)
	}

	if len(o.Status.Conditions) == 0 {
		fmt.Fprintln(w, "\nNo status yet: the controller has not processed this offer (is `obol controller` running?).")
		return nil
	}
	if o.Status.ObservedGeneration < o.Generation {
		fmt.Fprintf(w, "\nThe controller has not processed the latest change yet (generation %d, status for %d).\n", o.Generation, o.Status.ObservedGeneration)
	}
	fmt.Fprintln(w, "\nConditions:")
	for _, typ := range []string{v1alpha1.ConditionUpstreamHealthy, v1alpha1.ConditionPaymentGateReady, v1alpha1.ConditionRoutePublished, v1alpha1.ConditionReady} {
		c := meta.FindStatusCondition(o.Status.Conditions, typ)
		if c == nil {
			fmt.Fprintf(w, "  %-17s unknown: not reported yet\n", typ)
			continue
		}
		fmt.Fprintf(w, "  %-17s %s: %s\n", typ, mark(c.Status), describeCondition(c))
		if c.Status != metav1.ConditionTrue {
			fmt.Fprintf(w, "  %-17s %s (reason %s)\n", "", c.Message, c.Reason)
			if h := reasonHint[c.Reason]; h != "" {
				fmt.Fprintf(w, "  %-17s what to do: %s\n", "", h)
			}
		} else if c.Message != "" {
			fmt.Fprintf(w, "  %-17s %s\n", "", c.Message)
		}
	}
	return nil
}

func describeCondition(c *metav1.Condition) string {
	m := conditionMeaning[c.Type]
	if c.Status == metav1.ConditionTrue {
		return m
	}
	return "not yet: " + m
}
