package buy

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
)

// ListOptions are the inputs of `obol buy list`.
type ListOptions struct {
	ClusterOptions
}

// NewCmdList builds `obol buy list`.
func NewCmdList(f *cmdutil.Factory, runF func(*ListOptions) error) *cobra.Command {
	o := &ListOptions{ClusterOptions: newClusterOptions(f)}
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List PurchaseRequests",
		Example: "  obol buy list\n  obol buy list -n agents -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runVerb(cmd, f, &o.ClusterOptions, o, runF, listRun)
		},
	}
}

func listRun(ctx context.Context, o *ListOptions) error {
	c, ns, err := o.connect()
	if err != nil {
		return err
	}
	var list v1alpha1.PurchaseRequestList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return fmt.Errorf("list PurchaseRequests in %s: %w", ns, err)
	}
	if list.Items == nil {
		list.Items = []v1alpha1.PurchaseRequest{}
	}
	return cmdutil.PrintStructured(o.IO.Out, o.Output, list.Items, func(w io.Writer) error {
		if len(list.Items) == 0 {
			_, err := fmt.Fprintf(w, "No PurchaseRequests in %s. Create one with `obol buy create`.\n", ns)
			return err
		}
		t := cmdutil.NewTable(w, "NAME", "ENDPOINT", "MODEL", "PRICE", "REMAINING", "SPENT", "READY", "AGE")
		for _, pr := range list.Items {
			t.Row(pr.Name, pr.Spec.Endpoint, dash(pr.Spec.Model), priceOf(pr.Spec.Payment), strconv.Itoa(pr.Status.Remaining),
				strconv.Itoa(pr.Status.Spent), readyOf(pr.Status.Conditions), age(o.Now(), pr.CreationTimestamp.Time))
		}
		return t.Flush()
	})
}
