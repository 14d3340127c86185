package sell

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/kube"
	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
)

// ListOptions are the inputs of `obol sell list`.
type ListOptions struct {
	IO            *cmdutil.IOStreams
	Kube          kube.Options
	Output        string
	AllNamespaces bool
	Now           func() time.Time
}

// NewCmdList returns `obol sell list`.
func NewCmdList(f *cmdutil.Factory, runF func(*ListOptions) error) *cobra.Command {
	opts := &ListOptions{IO: f.IO, Now: f.Now}
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List ServiceOffers",
		Long: `List the ServiceOffers in the namespace (or all namespaces with -A), with the
columns ` + "`kubectl get so`" + ` shows and SETTLE, the settlement mode in effect
(spec.settle, or the type's default when unset: on-headers for inference,
after-response otherwise; -o json and -o yaml fill spec.settle the same way).`,
		Example: `  obol sell list
  obol sell list -A
  obol sell list -n llm -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Kube = kubeOptions(f)
			opts.Output = f.Global.Output
			if runF != nil {
				return runF(opts)
			}
			return listRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVarP(&opts.AllNamespaces, "all-namespaces", "A", false, "list offers in every namespace")
	return cmd
}

func listRun(ctx context.Context, opts *ListOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	c, ns, err := connect(opts.Kube)
	if err != nil {
		return err
	}
	var list v1alpha1.ServiceOfferList
	var lo []client.ListOption
	where := "namespace " + ns
	if !opts.AllNamespaces {
		lo = append(lo, client.InNamespace(ns))
	} else {
		where = "any namespace"
	}
	if err := c.List(ctx, &list, lo...); err != nil {
		return describeErr("list ServiceOffers", err)
	}
	list.APIVersion = v1alpha1.GroupVersion.String()
	list.Kind = "ServiceOfferList"
	items := make([]map[string]any, 0, len(list.Items))
	for i := range list.Items {
		o := list.Items[i].DeepCopy()
		// Like an API server default: an offer without spec.settle shows
		// the mode in effect.
		o.Spec.Settle = o.EffectiveSettle()
		m, err := manifest(o, true)
		if err != nil {
			return err
		}
		items = append(items, m)
	}
	out := map[string]any{"apiVersion": list.APIVersion, "kind": list.Kind, "items": items}
	return printData(opts.IO.Out, opts.Output, out, func(w io.Writer) error {
		if len(list.Items) == 0 {
			fmt.Fprintf(opts.IO.ErrOut, "No ServiceOffers in %s. Create one with `obol sell create`.\n", where)
			return nil
		}
		now := time.Now
		if opts.Now != nil {
			now = opts.Now
		}
		header := []string{"NAME", "TYPE", "MODEL", "PRICE", "NETWORK", "SETTLE", "READY", "AGE", "URL"}
		if opts.AllNamespaces {
			header = append([]string{"NAMESPACE"}, header...)
		}
		t := cmdutil.NewTable(w, header...)
		for _, o := range list.Items {
			row := PrinterColumns(&o, now())
			// SETTLE after NETWORK: the mode in effect (spec.settle or
			// the type's default).
			row = append(row[:5], append([]string{string(o.EffectiveSettle())}, row[5:]...)...)
			row = append(row, dash(PublicURL(&o)))
			if opts.AllNamespaces {
				row = append([]string{o.Namespace}, row...)
			}
			t.Row(row...)
		}
		return t.Flush()
	})
}

// PrinterColumns returns NAME and the CRD's printer columns (Type, Model,
// Price, Network, Ready, Age) for one offer.
func PrinterColumns(o *v1alpha1.ServiceOffer, now time.Time) []string {
	model := ""
	if o.Spec.Model != nil {
		model = o.Spec.Model.Name
	}
	ready := ""
	if c := meta.FindStatusCondition(o.Status.Conditions, v1alpha1.ConditionReady); c != nil {
		ready = string(c.Status)
	}
	age := "<unknown>"
	if !o.CreationTimestamp.IsZero() {
		age = duration.HumanDuration(now.Sub(o.CreationTimestamp.Time))
	}
	return []string{o.Name, string(o.Spec.Type), dash(model), dash(o.Spec.Payment.Price.PerRequest), o.Spec.Payment.Network, dash(ready), age}
}

// PublicURL is the URL buyers call, when the controller knows the stack's
// public origin (status.endpoint is then absolute), else "".
func PublicURL(o *v1alpha1.ServiceOffer) string {
	e := o.Status.Endpoint
	if strings.HasPrefix(e, "https://") || strings.HasPrefix(e, "http://") {
		return e
	}
	return ""
}

func dash(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}
