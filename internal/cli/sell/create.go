package sell

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/controller"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/kube"
	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
)

// CreateOptions are the inputs of `obol sell create`.
type CreateOptions struct {
	IO       *cmdutil.IOStreams
	Kube     kube.Options
	Output   string
	Registry *evm.Registry

	Name        string
	Upstream    string // SVC[.NS]:PORT
	HealthPath  string
	Price       string
	Chain       string
	PayTo       string
	Asset       string // address or symbol; "" = the chain's USDC
	Path        string
	Description string
	Type        string
	Model       string
	Runtime     string
	MaxTimeout  int32
	DryRun      bool
	Wait        bool
	Timeout     time.Duration
}

// NewCmdCreate returns `obol sell create`.
func NewCmdCreate(f *cmdutil.Factory, runF func(*CreateOptions) error) *cobra.Command {
	opts := &CreateOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "create NAME --upstream SVC[.NS]:PORT --price AMOUNT --chain CHAIN --pay-to ADDRESS",
		Short: "Offer an in-cluster Service for sale",
		Long: `Create a ServiceOffer: buyers calling PATH (default /services/NAME) get an
x402 challenge for PRICE (a decimal amount of the asset, USDC by default) on
CHAIN, paid to ADDRESS, and are then forwarded to the upstream Service.

Everything is validated before anything is written: an unknown chain, a
mistyped address or a price the asset cannot represent fails here and
creates nothing. The chain is stored as its CAIP-2 id and the asset's
address, decimals and EIP-712 domain are filled from the chain registry.`,
		Example: `  # sell a weather API at 0.001 USDC per request on Base Sepolia
  obol sell create weather --upstream weather-api:8080 --price 0.001 \
    --chain base-sepolia --pay-to 0x70997970C51812dc3A010C7d01b50e0d17dc79C8

  # an inference endpoint in another namespace; wait until it is ready
  obol sell create qwen --type inference --model qwen3:8b \
    --upstream ollama.llm:11434 --price 0.002 --chain base \
    --pay-to 0x70997970C51812dc3A010C7d01b50e0d17dc79C8 --wait

  # print the manifest instead of creating it
  obol sell create weather --upstream weather-api:8080 --price 0.001 \
    --chain base-sepolia --pay-to 0x70997970C51812dc3A010C7d01b50e0d17dc79C8 --dry-run -o yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Name = args[0]
			opts.Kube = kubeOptions(f)
			opts.Output = f.Global.Output
			if runF != nil {
				return runF(opts)
			}
			return createRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Upstream, "upstream", "", "upstream Service as SVC[.NAMESPACE]:PORT (required)")
	fl.StringVar(&opts.HealthPath, "health-path", "", "HTTP path on the upstream that answers 2xx when healthy")
	fl.StringVar(&opts.Price, "price", "", "price per request as a decimal amount of the asset, e.g. 0.001 (required)")
	fl.StringVar(&opts.Chain, "chain", "", "chain name or CAIP-2 id, e.g. base-sepolia or eip155:84532 (required)")
	fl.StringVar(&opts.PayTo, "pay-to", "", "address that receives the payments (required)")
	fl.StringVar(&opts.Asset, "asset", "", "token address or symbol (default: the chain's USDC)")
	fl.StringVar(&opts.Path, "path", "", "path buyers call (default /services/NAME)")
	fl.StringVar(&opts.Description, "description", "", "description shown to buyers")
	fl.StringVar(&opts.Type, "type", string(v1alpha1.OfferTypeHTTP), "offer type: http or inference")
	fl.StringVar(&opts.Model, "model", "", "model name (required for --type inference)")
	fl.StringVar(&opts.Runtime, "runtime", "", "model runtime, e.g. ollama or vllm")
	fl.Int32Var(&opts.MaxTimeout, "max-timeout", 0, "seconds a signed payment stays valid (default: the verifier's)")
	fl.BoolVar(&opts.DryRun, "dry-run", false, "print the ServiceOffer manifest (-o yaml or json) and create nothing")
	fl.BoolVar(&opts.Wait, "wait", false, "wait until the controller reports the offer Ready")
	fl.DurationVar(&opts.Timeout, "timeout", 2*time.Minute, "how long --wait waits")
	return cmd
}

// BuildOffer validates the options and returns the ServiceOffer they
// describe in namespace ns. Nothing is contacted.
func BuildOffer(opts *CreateOptions, ns string) (*v1alpha1.ServiceOffer, error) {
	reg := opts.Registry
	if reg == nil {
		reg = evm.Default()
	}
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if msgs := validation.IsDNS1123Label(opts.Name); len(msgs) > 0 {
		bad("name %q: %s (use lower-case letters, digits and '-', at most 63 characters)", opts.Name, strings.Join(msgs, "; "))
	}
	svc, svcNS, port, err := ParseUpstream(opts.Upstream)
	if err != nil {
		bad("--upstream: %v", err)
	}
	if opts.HealthPath != "" && !strings.HasPrefix(opts.HealthPath, "/") {
		bad("--health-path %q: must start with /", opts.HealthPath)
	}
	typ := v1alpha1.OfferType(strings.ToLower(strings.TrimSpace(opts.Type)))
	if typ == "" {
		typ = v1alpha1.OfferTypeHTTP
	}
	switch typ {
	case v1alpha1.OfferTypeHTTP:
	case v1alpha1.OfferTypeInference:
		if opts.Model == "" {
			bad("--model is required with --type inference")
		}
	default:
		bad("--type %q: use http or inference", opts.Type)
	}
	path := opts.Path
	if path == "" {
		path = v1alpha1.DefaultPath(opts.Name)
	} else if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, "?# \t\n") {
		bad("--path %q: must start with / and contain no query, fragment or spaces", opts.Path)
	}
	if opts.Price == "" {
		bad("--price is required, e.g. --price 0.001")
	}
	if opts.MaxTimeout < 0 || opts.MaxTimeout > 86400 {
		bad("--max-timeout %d: use 1 to 86400 seconds", opts.MaxTimeout)
	}

	pay := v1alpha1.OfferPayment{
		Scheme:            v1alpha1.SchemeExact,
		PayTo:             opts.PayTo,
		MaxTimeoutSeconds: opts.MaxTimeout,
		Price:             v1alpha1.OfferPrice{PerRequest: opts.Price},
	}
	if chain, err := reg.Chain(opts.Chain); err != nil {
		bad("--chain: %v", err)
	} else {
		pay.Network = chain.CAIP2
		// The asset must be a token the registry knows (by address or
		// symbol): the CLI has no flags for another token's EIP-712 domain.
		if t, err := reg.Token(chain.CAIP2, opts.Asset); err != nil {
			bad("--asset: %v", err)
		} else {
			asset := controller.AssetFromToken(t)
			pay.Asset = &asset
		}
	}
	if pay.Network != "" && pay.Asset != nil && opts.Price != "" {
		if _, err := controller.ValidatePayment(reg, pay); err != nil {
			for _, e := range splitJoined(err) {
				bad("%s", flagName(e.Error()))
			}
		}
	} else if _, err := controller.ParseAddress(opts.PayTo); err != nil {
		bad("--pay-to: %v", err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if addr, err := controller.ParseAddress(opts.PayTo); err == nil {
		pay.PayTo = addr.Hex() // store checksummed
	}

	o := &v1alpha1.ServiceOffer{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "ServiceOffer"},
		ObjectMeta: metav1.ObjectMeta{Name: opts.Name, Namespace: ns},
		Spec: v1alpha1.ServiceOfferSpec{
			Type:        typ,
			Upstream:    v1alpha1.OfferUpstream{Service: svc, Namespace: svcNS, Port: port, HealthPath: opts.HealthPath},
			Payment:     pay,
			Path:        path,
			Description: opts.Description,
		},
	}
	if opts.Model != "" {
		o.Spec.Model = &v1alpha1.OfferModel{Name: opts.Model, Runtime: opts.Runtime}
	}
	return o, nil
}

// splitJoined undoes errors.Join so each problem becomes its own line.
func splitJoined(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// flagName rewrites a spec field prefix to the flag that sets it.
func flagName(msg string) string {
	for field, flag := range map[string]string{
		"payTo: ":            "--pay-to: ",
		"network: ":          "--chain: ",
		"asset: ":            "--asset: ",
		"price.perRequest: ": "--price: ",
		"price: ":            "--price: ",
	} {
		if strings.HasPrefix(msg, field) {
			return flag + strings.TrimPrefix(msg, field)
		}
	}
	return msg
}

// ParseUpstream splits SVC[.NAMESPACE]:PORT.
func ParseUpstream(s string) (svc, ns string, port int32, err error) {
	if s == "" {
		return "", "", 0, errors.New("required: give the upstream Service as SVC[.NAMESPACE]:PORT, e.g. weather-api:8080")
	}
	host, p, ok := strings.Cut(s, ":")
	if !ok || host == "" || p == "" {
		return "", "", 0, fmt.Errorf("%q: use SVC[.NAMESPACE]:PORT, e.g. weather-api:8080 or ollama.llm:11434", s)
	}
	n, perr := strconv.Atoi(p)
	if perr != nil || n < 1 || n > 65535 {
		return "", "", 0, fmt.Errorf("%q: port %q is not a number from 1 to 65535", s, p)
	}
	host = strings.TrimSuffix(host, ".svc.cluster.local")
	host = strings.TrimSuffix(host, ".svc")
	svc, ns, _ = strings.Cut(host, ".")
	if msgs := validation.IsDNS1123Label(svc); len(msgs) > 0 {
		return "", "", 0, fmt.Errorf("%q: Service name %q: %s", s, svc, strings.Join(msgs, "; "))
	}
	if ns != "" {
		if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
			return "", "", 0, fmt.Errorf("%q: namespace %q: %s", s, ns, strings.Join(msgs, "; "))
		}
	}
	return svc, ns, int32(n), nil
}

func createRun(ctx context.Context, opts *CreateOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ns, err := opts.Kube.ResolveNamespace()
	if err != nil {
		return err
	}
	offer, err := BuildOffer(opts, ns)
	if err != nil {
		return &cmdutil.FlagError{Err: fmt.Errorf("invalid offer, nothing was created:\n  %s", strings.ReplaceAll(err.Error(), "\n", "\n  "))}
	}
	if opts.DryRun {
		m, err := manifest(offer, false)
		if err != nil {
			return err
		}
		format := cmdutil.OutputYAML
		if opts.Output == cmdutil.OutputJSON {
			format = cmdutil.OutputJSON
		}
		return printData(opts.IO.Out, format, m, nil)
	}

	c, err := opts.Kube.Client()
	if err != nil {
		return err
	}
	if err := c.Create(ctx, offer); err != nil {
		return describeErr(fmt.Sprintf("create ServiceOffer %s/%s", ns, offer.Name), err)
	}
	if opts.Output == cmdutil.OutputTable || opts.Output == "" {
		fmt.Fprintf(opts.IO.Out, "Created ServiceOffer %s/%s: %s %s per request on %s to %s, path %s\n",
			ns, offer.Name, offer.Spec.Payment.Price.PerRequest, offer.Spec.Payment.Asset.Symbol,
			offer.Spec.Payment.Network, offer.Spec.Payment.PayTo, offer.Spec.Path)
	}
	if opts.Wait {
		offer, err = waitReady(ctx, c, ns, offer.Name, opts.Timeout, opts.IO)
		if err != nil {
			return err
		}
	}
	if opts.Output == cmdutil.OutputTable || opts.Output == "" {
		if !opts.Wait {
			fmt.Fprintf(opts.IO.Out, "Check it with: obol sell status %s -n %s\n", offer.Name, ns)
		}
		return nil
	}
	m, err := manifest(offer, true)
	if err != nil {
		return err
	}
	return printData(opts.IO.Out, opts.Output, m, nil)
}
