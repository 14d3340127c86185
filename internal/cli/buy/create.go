package buy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/obolstack/obol/internal/buyer"
	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/devstack/stackfile"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
	"github.com/obolstack/obol/internal/purchase"
)

// CreateOptions are the inputs of `obol buy create`.
type CreateOptions struct {
	ClusterOptions
	Registry *evm.Registry

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
	Cover          time.Duration
	DryRun         bool
	DevStack       string
}

// NewCmdCreate builds `obol buy create`.
func NewCmdCreate(f *cmdutil.Factory, runF func(*CreateOptions) error) *cobra.Command {
	o := &CreateOptions{ClusterOptions: newClusterOptions(f), Registry: evm.NewRegistry()}
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
24 hours (token units); a call past it is refused and nothing is spent.

Validity: a seller refuses an authorization valid for longer than its
maxTimeoutSeconds (60 s unless the offer sets more: obol sell create
--max-timeout), so each is signed for that long (--valid-for). For a pool
that lasts longer without a refill, --cover spreads the authorizations over
windows back to back: with --cover 1h and a 60 s seller, 60 windows of
--count/60 calls each; the proxy uses a window once the seller accepts it,
and what a window leaves unused expires unspent. Or keep the pool topped up
with obol buy refill --watch.`,
		Example: `  obol buy create weather --endpoint https://api.example.com/weather \
    --count 100 --key-file buyer.key --max-amount 0.01 --max-total 1000 --max-spend-per-day 0.5

  # an inference seller, routed by model name through the proxy's /v1/chat/completions
  obol buy create qwen --endpoint https://llm.example.com/services/qwen --model qwen3:8b \
    --count 50 --key-file buyer.key --max-amount 0.05 --auto-refill --threshold 10

  # a pool that lasts an hour at a seller whose authorizations live 60 s:
  # 600 authorizations, 10 calls per minute
  obol buy create weather --endpoint https://api.example.com/weather \
    --count 600 --cover 1h --key-file buyer.key --max-amount 0.01

  # see the manifest without creating it
  obol buy create weather --endpoint https://api.example.com/weather --count 5 --key-file k --max-amount 0.01 --dry-run -o yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			if o.Endpoint == "" {
				return &cmdutil.FlagError{Err: errors.New("--endpoint is required: the seller's URL")}
			}
			if o.Count < 1 || o.Count > purchase.MaxAuthorizations {
				return &cmdutil.FlagError{Err: fmt.Errorf("--count %d: want 1 to %d", o.Count, purchase.MaxAuthorizations)}
			}
			if o.MaxAmount == "" {
				return &cmdutil.FlagError{Err: errors.New("--max-amount is required: the most you pay per call, in token units (e.g. 0.01)")}
			}
			return runVerb(cmd, f, &o.ClusterOptions, o, runF, CreateRun)
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
	fl.StringVar(&o.Network, "chain", "", "only pay on this chain (name or CAIP-2)")
	cmdutil.AliasFlag(fl, "network", "chain", f.IO.ErrOut)
	fl.IntVar(&o.MaxTotal, "max-total", 0, "cap on authorizations ever signed for this request (0 = none)")
	fl.StringVar(&o.MaxSpendPerDay, "max-spend-per-day", "", "cap on spend per rolling 24h, token units")
	fl.BoolVar(&o.AutoRefill, "auto-refill", false, "let `obol buy refill --watch` top up when few remain")
	fl.IntVar(&o.Threshold, "threshold", 10, "refill when fewer than this remain")
	fl.IntVar(&o.RefillCount, "refill-count", 0, "authorizations per refill (default: --count)")
	fl.DurationVar(&o.ValidFor, "valid-for", 0, "how long each authorization stays valid (default and most: the seller's maxTimeoutSeconds, beyond which sellers refuse it)")
	fl.DurationVar(&o.Cover, "cover", 0, "spread the authorizations over this long, in windows of --valid-for back to back (default: all valid now)")
	fl.BoolVar(&o.DryRun, "dry-run", false, "print the PurchaseRequest instead of creating it")
	fl.StringVar(&o.DevStack, "dev-stack", stackfile.DefaultPath(), "a running `obol dev` stack file, for its token")
	return cmd
}

// createFlags names the flag that sets each input of an order.
var createFlags = map[purchase.Field]string{
	purchase.FieldCount:          "--count",
	purchase.FieldMaxAmount:      "--max-amount",
	purchase.FieldMaxSpendPerDay: "--max-spend-per-day",
}

// CreateRun probes, signs and creates the PurchaseRequest.
func CreateRun(ctx context.Context, o *CreateOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	loadDev(o.DevStack, o.Registry)
	ns, err := o.Kube.ResolveNamespace()
	if err != nil {
		return err
	}
	terms, err := purchase.Probe(ctx, nil, o.Registry, o.Endpoint, o.Network)
	if err != nil {
		return err
	}
	pr, err := purchase.NewRequest(purchase.Order{
		Name: o.Name, Namespace: ns, Endpoint: o.Endpoint, Model: o.Model, Count: o.Count,
		MaxAmount: o.MaxAmount, MaxTotal: o.MaxTotal, MaxSpendPerDay: o.MaxSpendPerDay,
		AutoRefill: o.AutoRefill, Threshold: o.Threshold, RefillCount: o.RefillCount,
	}, terms)
	var inputErr *purchase.InputError
	var capErr *purchase.PriceAboveCapError
	switch {
	case errors.As(err, &inputErr) && inputErr.Field == purchase.FieldCount:
		return &cmdutil.FlagError{Err: fmt.Errorf("--count %w", inputErr.Err)}
	case errors.As(err, &inputErr):
		return &cmdutil.FlagError{Err: fmt.Errorf("%s: %w", createFlags[inputErr.Field], inputErr.Err)}
	case errors.As(err, &capErr):
		return fmt.Errorf("not signing: the seller asks %s per call, above --max-amount %s", capErr.Price, capErr.Cap)
	case err != nil:
		return err
	}
	if o.DryRun && o.KeyFile == "" {
		fmt.Fprintf(o.IO.ErrOut, "dry run: %s asks %s per call on %s; would sign %d authorizations (no key given, none signed)\n", o.Endpoint, terms.PriceText(), terms.Chain.Name, o.Count)
		return printObject(o.IO, o.Output, pr)
	}
	key, err := evm.LoadKey(o.KeyFile, evm.KeyOptions{PassphraseEnv: o.PassphraseEnv, PassphraseFile: o.PassphraseFile})
	if err != nil {
		return err
	}
	validFor, err := sellerValidity(o.ValidFor, terms)
	if err != nil {
		return err
	}
	auths, err := purchase.Sign(key, pr.Spec.Payment, o.Registry, o.Count, o.Now(), validFor, o.Cover)
	if err != nil {
		return coverError(err)
	}
	purchase.AddSigned(pr, nil, auths, len(auths))
	if o.DryRun {
		return printObject(o.IO, o.Output, pr)
	}
	c, err := o.client()
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
		ns, o.Name, len(auths), terms.PriceText(), pr.Spec.Payment.PayTo, terms.Chain.Name, evm.Address(key).Hex())
	fmt.Fprintln(o.IO.ErrOut, validityLine(pr, o.Now(), validFor))
	if o.Output != cmdutil.OutputTable {
		return printObject(o.IO, o.Output, pr)
	}
	return nil
}

// coverError turns a --cover that needs more authorizations into a flag error.
func coverError(err error) error {
	if strings.Contains(err.Error(), "windows") {
		return &cmdutil.FlagError{Err: fmt.Errorf("--cover: %w", err)}
	}
	return err
}

// validityLine says how long the request's authorizations last.
func validityLine(pr *v1alpha1.PurchaseRequest, now time.Time, validFor time.Duration) string {
	v := purchase.ValidityOf(pr, now)
	if v.Last.IsZero() {
		return "no authorizations"
	}
	return fmt.Sprintf("each valid for %s (the seller's maxTimeoutSeconds); the last expires at %s (in %s): after that run `obol buy refill %s --key-file KEY --count N`",
		validFor, v.Last.UTC().Format(time.RFC3339), v.Last.Sub(now).Round(time.Second), pr.Name)
}

// sellerValidity is how long to sign for: the seller refuses an
// authorization valid for longer than its maxTimeoutSeconds (it keeps its
// replay record that long), so that is the default and the most.
func sellerValidity(asked time.Duration, terms *purchase.Terms) (time.Duration, error) {
	most := time.Duration(terms.Requirement.MaxTimeoutSeconds) * time.Second
	if most <= 0 {
		most = buyer.DefaultValidity
	}
	if asked == 0 {
		return most, nil
	}
	if asked > most {
		return 0, &cmdutil.FlagError{Err: fmt.Errorf("--valid-for %s: the seller accepts authorizations valid for at most %s (its maxTimeoutSeconds); sign for that or less, and refill more often", asked, most)}
	}
	return asked, nil
}
