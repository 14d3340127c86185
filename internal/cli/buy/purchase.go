package buy

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/devstack/stackfile"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/kube"
	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
	"github.com/obolstack/obol/internal/purchase"
)

// PurchaseOptions are the inputs shared by create/refill/list/status/delete.
type PurchaseOptions struct {
	IO        *cmdutil.IOStreams
	Output    string
	Kube      kube.Options
	Registry  *evm.Registry
	Now       func() time.Time
	NewClient func() (client.Client, error)

	Name           string
	Endpoint       string
	Model          string
	Count          int
	KeyFile        string
	PassphraseEnv  string
	PassphraseFile string
	MaxAmount      string
	Network        string
	MaxTotal       int
	MaxSpendPerDay string
	AutoRefill     bool
	Threshold      int
	RefillCount    int
	ValidFor       time.Duration
	DryRun         bool
	Watch          bool
	Interval       time.Duration
	DevStack       string
}

func newPurchaseOptions(f *cmdutil.Factory) *PurchaseOptions {
	o := &PurchaseOptions{IO: f.IO, Registry: evm.NewRegistry(), Now: f.Now}
	o.NewClient = func() (client.Client, error) { return o.Kube.Client() }
	return o
}

func (o *PurchaseOptions) fromGlobals(f *cmdutil.Factory) {
	g := f.Global
	o.Output = g.Output
	o.Kube = kube.Options{Kubeconfig: g.Kubeconfig, Context: g.Context, Namespace: g.Namespace}
}

// NewCmdCreate builds `obol buy create`.
func NewCmdCreate(f *cmdutil.Factory, runF func(*PurchaseOptions) error) *cobra.Command {
	o := newPurchaseOptions(f)
	cmd := &cobra.Command{
		Use:   "create NAME --endpoint URL --count N --key-file F --max-amount PRICE",
		Short: "Pre-authorize payments to a seller for in-cluster callers (a PurchaseRequest)",
		Long: `Probe the seller's price at --endpoint, sign --count EIP-3009 authorizations
for exactly that price with --key-file on this machine, and create a
PurchaseRequest holding them. The buyer proxy in the cluster pays from them on
behalf of callers; the key never leaves this machine.

Caps: --max-amount refuses a seller whose price per call is higher (token
units). --max-total caps the authorizations ever signed for this request,
refills included. --max-spend-per-day caps what the proxy spends in any rolling
24 hours (token units); a call past it is refused and nothing is spent.`,
		Example: `  obol buy create weather --endpoint https://api.example.com/weather \
    --count 100 --key-file buyer.key --max-amount 0.01 --max-total 1000 --max-spend-per-day 0.5

  # an inference seller, routed by model name through the proxy's /v1/chat/completions
  obol buy create qwen --endpoint https://llm.example.com/services/qwen --model qwen3:8b \
    --count 50 --key-file buyer.key --max-amount 0.05 --auto-refill --threshold 10

  # see the manifest without creating it
  obol buy create weather --endpoint https://api.example.com/weather --count 5 --key-file k --max-amount 0.01 --dry-run -o yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			o.fromGlobals(f)
			if o.Endpoint == "" {
				return &cmdutil.FlagError{Err: errors.New("--endpoint is required: the seller's URL")}
			}
			if o.Count < 1 || o.Count > 2500 {
				return &cmdutil.FlagError{Err: fmt.Errorf("--count %d: want 1 to 2500", o.Count)}
			}
			if o.MaxAmount == "" {
				return &cmdutil.FlagError{Err: errors.New("--max-amount is required: the most you pay per call, in token units (e.g. 0.01)")}
			}
			if runF != nil {
				return runF(o)
			}
			return CreateRun(cmd.Context(), o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.Endpoint, "endpoint", "", "the seller's URL (answers 402 with its price)")
	fl.StringVar(&o.Model, "model", "", "model name the proxy routes to this seller (inference)")
	fl.IntVar(&o.Count, "count", 0, "authorizations to sign now (1-2500)")
	fl.StringVar(&o.KeyFile, "key-file", "", "signing key: hex private key or keystore JSON, mode 0600")
	fl.StringVar(&o.PassphraseEnv, "passphrase-env", PassphraseEnvDefault, "environment variable holding the keystore passphrase")
	fl.StringVar(&o.PassphraseFile, "passphrase-file", "", "file whose first line is the keystore passphrase")
	fl.StringVar(&o.MaxAmount, "max-amount", "", "refuse a price per call above this, in token units")
	fl.StringVar(&o.Network, "network", "", "only pay on this chain (name or CAIP-2)")
	fl.IntVar(&o.MaxTotal, "max-total", 0, "cap on authorizations ever signed for this request (0 = none)")
	fl.StringVar(&o.MaxSpendPerDay, "max-spend-per-day", "", "cap on spend per rolling 24h, token units")
	fl.BoolVar(&o.AutoRefill, "auto-refill", false, "let `obol buy refill --watch` top up when few remain")
	fl.IntVar(&o.Threshold, "threshold", 10, "refill when fewer than this remain")
	fl.IntVar(&o.RefillCount, "refill-count", 0, "authorizations per refill (default: --count)")
	fl.DurationVar(&o.ValidFor, "valid-for", 7*24*time.Hour, "how long each authorization stays valid")
	fl.BoolVar(&o.DryRun, "dry-run", false, "print the PurchaseRequest instead of creating it")
	fl.StringVar(&o.DevStack, "dev-stack", stackfile.DefaultPath(), "a running `obol dev` stack file, for its token")
	return cmd
}

func (o *PurchaseOptions) loadDev() {
	if o.DevStack == "" {
		return
	}
	if info, err := stackfile.Read(o.DevStack); err == nil {
		info.Register(o.Registry)
	}
}

// CreateRun probes, signs and creates the PurchaseRequest.
func CreateRun(ctx context.Context, o *PurchaseOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	o.loadDev()
	ns, err := o.Kube.ResolveNamespace()
	if err != nil {
		return err
	}
	terms, err := purchase.Probe(ctx, nil, o.Registry, o.Endpoint, o.Network)
	if err != nil {
		return err
	}
	limit, err := evm.ParseAmount(o.MaxAmount, terms.Token.Decimals)
	if err != nil {
		return &cmdutil.FlagError{Err: fmt.Errorf("--max-amount: %w", err)}
	}
	priceText := evm.FormatAmount(terms.Price, terms.Token.Decimals) + " " + terms.Token.Symbol
	if terms.Price.Cmp(limit) > 0 {
		return fmt.Errorf("not signing: the seller asks %s per call, above --max-amount %s %s", priceText, o.MaxAmount, terms.Token.Symbol)
	}
	var daily string
	if o.MaxSpendPerDay != "" {
		d, err := evm.ParseAmount(o.MaxSpendPerDay, terms.Token.Decimals)
		if err != nil {
			return &cmdutil.FlagError{Err: fmt.Errorf("--max-spend-per-day: %w", err)}
		}
		daily = d.String()
	}
	n, why := purchase.Allowance(0, o.Count, o.MaxTotal)
	if n < o.Count {
		return &cmdutil.FlagError{Err: fmt.Errorf("--count %d is more than --max-total allows (%s)", o.Count, why)}
	}
	pr := &v1alpha1.PurchaseRequest{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "PurchaseRequest"},
		ObjectMeta: metav1.ObjectMeta{Name: o.Name, Namespace: ns, Annotations: map[string]string{}},
		Spec:       v1alpha1.PurchaseRequestSpec{Endpoint: o.Endpoint, Model: o.Model, Count: o.Count, Payment: terms.Payment()},
	}
	if o.MaxTotal > 0 || daily != "" || o.AutoRefill {
		rc := o.RefillCount
		if rc == 0 {
			rc = o.Count
		}
		pr.Spec.AutoRefill = &v1alpha1.PurchaseAutoRefill{Enabled: o.AutoRefill, Threshold: o.Threshold, Count: rc, MaxTotal: o.MaxTotal, MaxSpendPerDay: daily}
	}
	if o.DryRun && o.KeyFile == "" {
		fmt.Fprintf(o.IO.ErrOut, "dry run: %s asks %s per call on %s; would sign %d authorizations (no key given, none signed)\n", o.Endpoint, priceText, terms.Chain.Name, o.Count)
		return printObject(o, pr)
	}
	key, err := evm.LoadKey(o.KeyFile, evm.KeyOptions{PassphraseEnv: o.PassphraseEnv, PassphraseFile: o.PassphraseFile})
	if err != nil {
		return err
	}
	auths, err := purchase.Sign(key, pr.Spec.Payment, o.Registry, o.Count, o.Now(), o.ValidFor)
	if err != nil {
		return err
	}
	pr.Spec.PreSignedAuths = auths
	pr.Annotations[purchase.TotalSignedAnnotation] = strconv.Itoa(len(auths))
	if o.DryRun {
		return printObject(o, pr)
	}
	c, err := o.NewClient()
	if err != nil {
		return err
	}
	if err := c.Create(ctx, pr); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("PurchaseRequest %s/%s exists: use `obol buy refill %s` to add authorizations", ns, o.Name, o.Name)
		}
		return fmt.Errorf("create PurchaseRequest %s/%s: %w", ns, o.Name, err)
	}
	fmt.Fprintf(o.IO.ErrOut, "created PurchaseRequest %s/%s: %d authorizations of %s to %s on %s, signed by %s\n",
		ns, o.Name, len(auths), priceText, pr.Spec.Payment.PayTo, terms.Chain.Name, evm.Address(key).Hex())
	if o.Output != cmdutil.OutputTable {
		return printObject(o, pr)
	}
	return nil
}

// connect returns a client of the selected cluster and the namespace.
func (o *PurchaseOptions) connect() (client.Client, string, error) {
	c, err := o.NewClient()
	if err != nil {
		return nil, "", err
	}
	ns, err := o.Kube.ResolveNamespace()
	if err != nil {
		return nil, "", err
	}
	return c, ns, nil
}

func printObject(o *PurchaseOptions, v any) error {
	if o.Output == cmdutil.OutputJSON {
		return cmdutil.PrintJSON(o.IO.Out, v)
	}
	return cmdutil.PrintYAML(o.IO.Out, v)
}

// NewCmdRefill builds `obol buy refill`.
func NewCmdRefill(f *cmdutil.Factory, runF func(*PurchaseOptions) error) *cobra.Command {
	o := newPurchaseOptions(f)
	cmd := &cobra.Command{
		Use:   "refill NAME --key-file F",
		Short: "Sign more authorizations for a PurchaseRequest, within its caps",
		Long: `Sign more authorizations for a PurchaseRequest, never passing
autoRefill.maxTotal. Without --count, refill only when fewer than
autoRefill.threshold remain, signing autoRefill.count. With --watch, keep
checking every --interval. Expired authorizations are dropped. A request whose
seller changed its price (condition PricingMismatch) is not refilled.`,
		Example: `  obol buy refill weather --key-file buyer.key --count 50
  obol buy refill weather --key-file buyer.key --watch --interval 1m`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			o.fromGlobals(f)
			if runF != nil {
				return runF(o)
			}
			return RefillRun(cmd.Context(), o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.KeyFile, "key-file", "", "signing key (the same wallet that signed the request)")
	fl.StringVar(&o.PassphraseEnv, "passphrase-env", PassphraseEnvDefault, "environment variable holding the keystore passphrase")
	fl.StringVar(&o.PassphraseFile, "passphrase-file", "", "file whose first line is the keystore passphrase")
	fl.IntVar(&o.Count, "count", 0, "sign this many now, whatever remains (default: autoRefill.count when below threshold)")
	fl.DurationVar(&o.ValidFor, "valid-for", 7*24*time.Hour, "how long each new authorization stays valid")
	fl.BoolVar(&o.Watch, "watch", false, "keep refilling when below the threshold")
	fl.DurationVar(&o.Interval, "interval", time.Minute, "how often --watch checks")
	fl.StringVar(&o.DevStack, "dev-stack", stackfile.DefaultPath(), "a running `obol dev` stack file, for its token")
	return cmd
}

// RefillRun signs more authorizations within the caps (once, or --watch).
func RefillRun(ctx context.Context, o *PurchaseOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	o.loadDev()
	key, err := evm.LoadKey(o.KeyFile, evm.KeyOptions{PassphraseEnv: o.PassphraseEnv, PassphraseFile: o.PassphraseFile})
	if err != nil {
		return err
	}
	c, ns, err := o.connect()
	if err != nil {
		return err
	}
	for {
		if err := refillOnce(ctx, o, c, ns, key); err != nil {
			if !o.Watch {
				return err
			}
			fmt.Fprintf(o.IO.ErrOut, "refill %s: %v\n", o.Name, err)
		}
		if !o.Watch {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(o.Interval):
		}
	}
}

func refillOnce(ctx context.Context, o *PurchaseOptions, c client.Client, ns string, key *ecdsa.PrivateKey) error {
	var pr v1alpha1.PurchaseRequest
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: o.Name}, &pr); err != nil {
		return fmt.Errorf("get PurchaseRequest %s/%s: %w", ns, o.Name, err)
	}
	if cond := meta.FindStatusCondition(pr.Status.Conditions, purchase.ConditionPricingMismatch); cond != nil && cond.Status == metav1.ConditionTrue {
		return fmt.Errorf("not refilling: %s (re-create the request at the new price)", cond.Message)
	}
	if signer := purchase.Signer(&pr); signer != "" && signer != evm.Address(key).Hex() {
		return fmt.Errorf("not refilling: the request's authorizations are signed by %s, --key-file is %s", signer, evm.Address(key).Hex())
	}
	remaining := len(pr.Spec.PreSignedAuths)
	if pr.Status.ObservedGeneration > 0 {
		remaining = pr.Status.Remaining
	}
	want := o.Count
	ar := pr.Spec.AutoRefill
	if want == 0 {
		if ar == nil || !ar.Enabled {
			return errors.New("autoRefill is not enabled on this request: pass --count to sign a number now")
		}
		if remaining >= ar.Threshold {
			fmt.Fprintf(o.IO.ErrOut, "%s: %d remaining, threshold %d: nothing to do\n", o.Name, remaining, ar.Threshold)
			return nil
		}
		want = ar.Count
	}
	maxTotal := 0
	if ar != nil {
		maxTotal = ar.MaxTotal
	}
	total := purchase.TotalSigned(&pr)
	n, why := purchase.Allowance(total, want, maxTotal)
	if n == 0 {
		return fmt.Errorf("not refilling: %s", why)
	}
	kept := purchase.PruneExpired(pr.Spec.PreSignedAuths, o.Now())
	if len(kept)+n > 2500 {
		n = 2500 - len(kept)
		why = "a request holds at most 2500 authorizations"
	}
	auths, err := purchase.Sign(key, pr.Spec.Payment, o.Registry, n, o.Now(), o.ValidFor)
	if err != nil {
		return err
	}
	pr.Spec.PreSignedAuths = append(kept, auths...)
	if pr.Annotations == nil {
		pr.Annotations = map[string]string{}
	}
	pr.Annotations[purchase.TotalSignedAnnotation] = strconv.Itoa(total + n)
	if err := c.Update(ctx, &pr); err != nil {
		return fmt.Errorf("update PurchaseRequest %s/%s: %w", ns, o.Name, err)
	}
	msg := fmt.Sprintf("%s: signed %d more (%d signed in all", o.Name, n, total+n)
	if maxTotal > 0 {
		msg += fmt.Sprintf(" of max %d", maxTotal)
	}
	msg += ")"
	if why != "" {
		msg += "; fewer than asked: " + why
	}
	fmt.Fprintln(o.IO.ErrOut, msg)
	return nil
}

// NewCmdList builds `obol buy list`.
func NewCmdList(f *cmdutil.Factory, runF func(*PurchaseOptions) error) *cobra.Command {
	o := newPurchaseOptions(f)
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List PurchaseRequests",
		Example: "  obol buy list\n  obol buy list -n agents -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.fromGlobals(f)
			if runF != nil {
				return runF(o)
			}
			return listRun(cmd.Context(), o)
		},
	}
}

func listRun(ctx context.Context, o *PurchaseOptions) error {
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

// NewCmdStatus builds `obol buy status`.
func NewCmdStatus(f *cmdutil.Factory, runF func(*PurchaseOptions) error) *cobra.Command {
	o := newPurchaseOptions(f)
	return &cobra.Command{
		Use:     "status NAME",
		Short:   "Show a PurchaseRequest's pool, spend, caps and conditions",
		Example: "  obol buy status weather\n  obol buy status weather -o json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			o.fromGlobals(f)
			if runF != nil {
				return runF(o)
			}
			return statusRun(cmd.Context(), o)
		},
	}
}

func statusRun(ctx context.Context, o *PurchaseOptions) error {
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

// NewCmdDelete builds `obol buy delete`.
func NewCmdDelete(f *cmdutil.Factory, runF func(*PurchaseOptions) error) *cobra.Command {
	o := newPurchaseOptions(f)
	return &cobra.Command{
		Use:     "delete NAME",
		Short:   "Delete a PurchaseRequest (the proxy stops paying from it)",
		Example: "  obol buy delete weather",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			o.fromGlobals(f)
			if runF != nil {
				return runF(o)
			}
			return deleteRun(cmd.Context(), o)
		},
	}
}

func deleteRun(ctx context.Context, o *PurchaseOptions) error {
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
