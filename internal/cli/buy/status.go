package buy

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
	"github.com/obolstack/obol/internal/purchase"
)

// StatusOptions are the inputs of `obol buy status`.
type StatusOptions struct {
	ClusterOptions

	Name string
}

// NewCmdStatus builds `obol buy status`.
func NewCmdStatus(f *cmdutil.Factory, runF func(*StatusOptions) error) *cobra.Command {
	o := &StatusOptions{ClusterOptions: newClusterOptions(f)}
	return &cobra.Command{
		Use:     "status NAME",
		Short:   "Show a PurchaseRequest's pool, spend, caps and conditions",
		Example: "  obol buy status weather\n  obol buy status weather -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			return runVerb(cmd, f, &o.ClusterOptions, o, runF, statusRun)
		},
	}
}

func statusRun(ctx context.Context, o *StatusOptions) error {
	c, ns, err := o.connect()
	if err != nil {
		return err
	}
	var pr v1alpha1.PurchaseRequest
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: o.Name}, &pr); err != nil {
		return fmt.Errorf("get PurchaseRequest %s/%s: %w", ns, o.Name, err)
	}
	return cmdutil.PrintStructured(o.IO.Out, o.Output, &pr, func(w io.Writer) error {
		p := pr.Spec.Payment
		fmt.Fprintf(w, "Name:          %s/%s\nEndpoint:      %s\n", pr.Namespace, pr.Name, pr.Spec.Endpoint)
		if pr.Spec.Model != "" {
			fmt.Fprintf(w, "Model:         %s\n", pr.Spec.Model)
		}
		fmt.Fprintf(w, "Price:         %s per call on %s to %s\n", priceOf(p), p.Network, p.PayTo)
		fmt.Fprintf(w, "Signer:        %s\n", dash(purchase.Signer(&pr)))
		fmt.Fprintf(w, "Pool:          %d in spec, %d remaining, %d spent, %s spent in all\n", len(pr.Spec.PreSignedAuths), pr.Status.Remaining, pr.Status.Spent, amountOf(p, pr.Status.TotalSpent))
		fmt.Fprintf(w, "Signed:        %d in all\n", purchase.TotalSigned(&pr))
		fmt.Fprintf(w, "Validity:      %s\n", validityText(&pr, o.Now()))
		if ar := pr.Spec.AutoRefill; ar != nil {
			fmt.Fprintf(w, "Auto-refill:   enabled=%t threshold=%d count=%d maxTotal=%s maxSpendPerDay=%s\n", ar.Enabled, ar.Threshold, ar.Count, capText(ar.MaxTotal), amountOf(p, ar.MaxSpendPerDay))
		}
		if pr.Status.ProbedAt != nil {
			fmt.Fprintf(w, "Last probe:    %s ago, seller asked %s\n", o.Now().Sub(pr.Status.ProbedAt.Time).Round(time.Second), amountOf(p, pr.Status.ProbedPrice))
		}
		fmt.Fprintln(w, "Conditions:")
		if len(pr.Status.Conditions) == 0 {
			fmt.Fprintln(w, "  none yet: is `obol controller` running?")
		}
		for _, cnd := range pr.Status.Conditions {
			fmt.Fprintf(w, "  %-16s %-5s %s: %s\n", cnd.Type, cnd.Status, cnd.Reason, cnd.Message)
		}
		return nil
	})
}

// validityText says when the request's authorizations expire and, when
// none is left to pay with, what to run.
func validityText(pr *v1alpha1.PurchaseRequest, now time.Time) string {
	v := purchase.ValidityOf(pr, now)
	refill := fmt.Sprintf("run `obol buy refill %s --key-file KEY --count N`", pr.Name)
	switch {
	case v.Last.IsZero():
		return "no authorizations: " + refill
	case v.Unexpired == 0:
		return fmt.Sprintf("every authorization expired (the last at %s, %s ago): %s", v.Last.UTC().Format(time.RFC3339), now.Sub(v.Last).Round(time.Second), refill)
	}
	s := fmt.Sprintf("%d in the spec not expired (used ones included); the next expires at %s (in %s), the last at %s (in %s)", v.Unexpired,
		v.Next.UTC().Format(time.RFC3339), v.Next.Sub(now).Round(time.Second), v.Last.UTC().Format(time.RFC3339), v.Last.Sub(now).Round(time.Second))
	if pr.Status.ObservedGeneration > 0 && pr.Status.Remaining <= 0 {
		s += "; none remains to pay with: " + refill
	} else {
		s += "; then " + refill + " (or keep it topped up with `obol buy refill --watch`)"
	}
	return s
}
