package buy

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/devstack/stackfile"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
	"github.com/obolstack/obol/internal/purchase"
)

// RefillOptions are the inputs of `obol buy refill`.
type RefillOptions struct {
	ClusterOptions
	Registry *evm.Registry

	Name           string
	KeyFile        string
	PassphraseEnv  string
	PassphraseFile string
	Count          int
	ValidFor       time.Duration
	Cover          time.Duration
	Watch          bool
	Interval       time.Duration
	DevStack       string
}

// NewCmdRefill builds `obol buy refill`.
func NewCmdRefill(f *cmdutil.Factory, runF func(*RefillOptions) error) *cobra.Command {
	o := &RefillOptions{ClusterOptions: newClusterOptions(f), Registry: evm.NewRegistry()}
	cmd := &cobra.Command{
		Use:   "refill NAME --key-file F",
		Short: "Sign more authorizations for a PurchaseRequest, within its caps",
		Long: `Sign more authorizations for a PurchaseRequest, never passing
autoRefill.maxTotal. Without --count, refill only when fewer than
autoRefill.threshold remain, signing autoRefill.count. With --watch, keep
checking every --interval. Expired authorizations are dropped. A request whose
seller changed its price (condition PricingMismatch) is not refilled.

Each new authorization is valid for the seller's maxTimeoutSeconds (asked
with an unpaid call to the endpoint) unless --valid-for says less; --cover
spreads them over windows back to back, as with obol buy create.`,
		Example: `  obol buy refill weather --key-file buyer.key --count 50
  obol buy refill weather --key-file buyer.key --watch --interval 1m`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Name = args[0]
			return runVerb(cmd, f, &o.ClusterOptions, o, runF, RefillRun)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.KeyFile, "key-file", "", "signing key (the same wallet that signed the request)")
	fl.StringVar(&o.PassphraseEnv, "passphrase-env", PassphraseEnvDefault, "environment variable holding the keystore passphrase")
	fl.StringVar(&o.PassphraseFile, "passphrase-file", "", "file whose first line is the keystore passphrase")
	fl.IntVar(&o.Count, "count", 0, "sign this many now, whatever remains (default: autoRefill.count when below threshold)")
	fl.DurationVar(&o.ValidFor, "valid-for", 0, "how long each new authorization stays valid (default and most: the seller's maxTimeoutSeconds)")
	fl.DurationVar(&o.Cover, "cover", 0, "spread the new authorizations over this long, in windows of --valid-for back to back (default: all valid now)")
	fl.BoolVar(&o.Watch, "watch", false, "keep refilling when below the threshold")
	fl.DurationVar(&o.Interval, "interval", time.Minute, "how often --watch checks")
	fl.StringVar(&o.DevStack, "dev-stack", stackfile.DefaultPath(), "a running `obol dev` stack file, for its token")
	return cmd
}

// RefillRun signs more authorizations within the caps (once, or --watch).
func RefillRun(ctx context.Context, o *RefillOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	loadDev(o.DevStack, o.Registry)
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

func refillOnce(ctx context.Context, o *RefillOptions, c client.Client, ns string, key *ecdsa.PrivateKey) error {
	var pr v1alpha1.PurchaseRequest
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: o.Name}, &pr); err != nil {
		return fmt.Errorf("get PurchaseRequest %s/%s: %w", ns, o.Name, err)
	}
	plan, err := purchase.PlanRefill(&pr, evm.Address(key), o.Count, o.Now())
	if errors.Is(err, purchase.ErrAutoRefillOff) {
		return fmt.Errorf("%w: pass --count to sign a number now", err)
	}
	if err != nil {
		return err
	}
	if plan.Idle {
		fmt.Fprintf(o.IO.ErrOut, "%s: %d remaining, threshold %d: nothing to do\n", o.Name, plan.Remaining, plan.Threshold)
		return nil
	}
	// The seller refuses authorizations valid for longer than its
	// maxTimeoutSeconds: ask it, as obol buy create does.
	terms, err := purchase.Probe(ctx, nil, o.Registry, pr.Spec.Endpoint, pr.Spec.Payment.Network)
	if err != nil {
		return fmt.Errorf("ask the seller how long an authorization may be valid: %w", err)
	}
	validFor, err := sellerValidity(o.ValidFor, terms)
	if err != nil {
		return err
	}
	auths, err := purchase.Sign(key, pr.Spec.Payment, o.Registry, plan.N, o.Now(), validFor, o.Cover)
	if err != nil {
		return coverError(err)
	}
	purchase.AddSigned(&pr, plan.Kept, auths, plan.Total)
	if err := c.Update(ctx, &pr); err != nil {
		return fmt.Errorf("update PurchaseRequest %s/%s: %w", ns, o.Name, err)
	}
	msg := fmt.Sprintf("%s: signed %d more (%d signed in all", o.Name, plan.N, plan.Total)
	if plan.MaxTotal > 0 {
		msg += fmt.Sprintf(" of max %d", plan.MaxTotal)
	}
	msg += ")"
	if plan.Why != "" {
		msg += "; fewer than asked: " + plan.Why
	}
	fmt.Fprintln(o.IO.ErrOut, msg)
	fmt.Fprintln(o.IO.ErrOut, validityLine(&pr, o.Now(), validFor))
	return nil
}
