package buy

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/kube"
	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
)

// DeleteOptions are the inputs of `obol buy delete`.
type DeleteOptions struct {
	IO        *cmdutil.IOStreams
	Kube      kube.Options
	NewClient func() (client.Client, error) // nil: Kube's client

	Name string
}

// NewCmdDelete builds `obol buy delete`.
func NewCmdDelete(f *cmdutil.Factory, runF func(*DeleteOptions) error) *cobra.Command {
	o := &DeleteOptions{IO: f.IO}
	return &cobra.Command{
		Use:     "delete NAME",
		Short:   "Delete a PurchaseRequest (the proxy stops paying from it)",
		Example: "  obol buy delete weather",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			o.Kube = kubeOptions(f)
			if runF != nil {
				return runF(o)
			}
			return deleteRun(cmd.Context(), o)
		},
	}
}

func deleteRun(ctx context.Context, o *DeleteOptions) error {
	c, ns, err := connect(o.NewClient, o.Kube)
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
