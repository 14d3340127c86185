package buy

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/devstack/stackfile"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/kube"
	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
)

// Helpers shared by the PurchaseRequest verbs: create, refill, list,
// status and delete.

// kubeOptions reads the global cluster flags at run time (after parsing).
func kubeOptions(f *cmdutil.Factory) kube.Options {
	g := f.Global
	return kube.Options{Kubeconfig: g.Kubeconfig, Context: g.Context, Namespace: g.Namespace}
}

// newClient is newF's client, or k's when newF is nil.
func newClient(newF func() (client.Client, error), k kube.Options) (client.Client, error) {
	if newF != nil {
		return newF()
	}
	return k.Client()
}

// connect returns a client of the selected cluster and the namespace.
func connect(newF func() (client.Client, error), k kube.Options) (client.Client, string, error) {
	c, err := newClient(newF, k)
	if err != nil {
		return nil, "", err
	}
	ns, err := k.ResolveNamespace()
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
