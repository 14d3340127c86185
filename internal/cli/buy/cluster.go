package buy

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/devstack/stackfile"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/kube"
	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
)

// ClusterOptions are the inputs the PurchaseRequest verbs (create, refill,
// list, status, delete) share: where and how to print, and which cluster
// and namespace to work in. Each verb's Options embeds it.
type ClusterOptions struct {
	IO        *cmdutil.IOStreams
	Output    string
	Kube      kube.Options
	Now       func() time.Time
	NewClient func() (client.Client, error) // nil: Kube's client
}

func newClusterOptions(f *cmdutil.Factory) ClusterOptions {
	return ClusterOptions{IO: f.IO, Now: f.Now}
}

// readGlobals copies the global cluster and output flags; call it at run
// time, after parsing.
func (o *ClusterOptions) readGlobals(f *cmdutil.Factory) {
	g := f.Global
	o.Kube = kube.Options{Kubeconfig: g.Kubeconfig, Context: g.Context, Namespace: g.Namespace}
	o.Output = g.Output
}

// runVerb ends the RunE of every PurchaseRequest verb: it reads the global
// flags into shared (o's ClusterOptions), then hands o to runF (tests) or
// to run, the verb's work.
func runVerb[T any](cmd *cobra.Command, f *cmdutil.Factory, shared *ClusterOptions, o *T,
	runF func(*T) error, run func(context.Context, *T) error) error {
	shared.readGlobals(f)
	if runF != nil {
		return runF(o)
	}
	return run(cmd.Context(), o)
}

// client is NewClient's client, or Kube's when NewClient is nil.
func (o *ClusterOptions) client() (client.Client, error) {
	if o.NewClient != nil {
		return o.NewClient()
	}
	return o.Kube.Client()
}

// connect returns a client of the selected cluster and the namespace.
func (o *ClusterOptions) connect() (client.Client, string, error) {
	c, err := o.client()
	if err != nil {
		return nil, "", err
	}
	ns, err := o.Kube.ResolveNamespace()
	if err != nil {
		return nil, "", err
	}
	return c, ns, nil
}

// loadDev registers the token of a running `obol dev` stack, if any.
func loadDev(path string, reg *evm.Registry) {
	if path == "" {
		return
	}
	if info, err := stackfile.Read(path); err == nil {
		info.Register(reg)
	}
}

func printObject(ios *cmdutil.IOStreams, output string, v any) error {
	if output == cmdutil.OutputJSON {
		return cmdutil.PrintJSON(ios.Out, v)
	}
	return cmdutil.PrintYAML(ios.Out, v)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func capText(n int) string {
	if n <= 0 {
		return "none"
	}
	return strconv.Itoa(n)
}

func amountOf(p v1alpha1.PurchasePayment, atomic string) string {
	if atomic == "" {
		return "-"
	}
	v, err := evm.ParseAtomic(atomic)
	if err != nil {
		return atomic
	}
	return strings.TrimSpace(evm.FormatAmount(v, uint8(p.AssetDecimals)) + " " + p.AssetSymbol)
}

func priceOf(p v1alpha1.PurchasePayment) string { return amountOf(p, p.Price) }

func readyOf(conds []metav1.Condition) string {
	if c := meta.FindStatusCondition(conds, v1alpha1.ConditionReady); c != nil {
		return string(c.Status)
	}
	return "Unknown"
}

func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
