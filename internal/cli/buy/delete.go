package buy

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
)

// DeleteOptions are the inputs of `obol buy delete`.
type DeleteOptions struct {
	ClusterOptions

	Name string
}

// NewCmdDelete builds `obol buy delete`.
func NewCmdDelete(f *cmdutil.Factory, runF func(*DeleteOptions) error) *cobra.Command {
	o := &DeleteOptions{ClusterOptions: newClusterOptions(f)}
	return &cobra.Command{
		Use:     "delete NAME",
		Short:   "Delete a PurchaseRequest (the proxy stops paying from it)",
		Example: "  obol buy delete weather",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			return runVerb(cmd, f, &o.ClusterOptions, o, runF, deleteRun)
		},
	}
}

func deleteRun(ctx context.Context, o *DeleteOptions) error {
	c, ns, err := o.connect()
	if err != nil {
		return err
	}
	pr := &v1alpha1.PurchaseRequest{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: o.Name}}
	if err := c.Delete(ctx, pr); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("PurchaseRequest %s/%s not found (see `obol buy list`)", ns, o.Name)
		}
		return fmt.Errorf("delete PurchaseRequest %s/%s: %w", ns, o.Name, err)
	}
	fmt.Fprintf(o.IO.ErrOut, "deleted PurchaseRequest %s/%s\n", ns, o.Name)
	return nil
}
