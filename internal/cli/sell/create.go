package sell

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/kube"
	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
	"github.com/obolstack/obol/internal/offer"
)

// CreateOptions are the inputs of `obol sell create`: the offer asked for
// and how to create it.
type CreateOptions struct {
	IO       *cmdutil.IOStreams
	Kube     kube.Options
	Output   string
	Registry *evm.Registry

	offer.Request
	DryRun  bool
	Wait    bool
	Timeout time.Duration
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
address, decimals and EIP-712 domain are filled from the chain registry.

--settle says when the verifier settles a paid request: after-response reads
the whole upstream answer and settles only if it is complete and below 400
(the buyer never pays for an answer that broke midway); on-headers settles as
soon as the upstream's status line and headers arrive below 400, then streams
the body (server-sent events, "stream": true chat completions). Inference
offers default to on-headers, the others to after-response; the mode chosen
is written into spec.settle.

The discovery flags say how the offer is listed in the verifier's
/openapi.json and /.well-known/x402 (and to indexers such as x402scan):
--method and --category, and JSON Schemas of the request (--input-schema:
query parameters for GET, the JSON body for POST) and of the answer
(--output-schema, --output-example), each given as JSON or as @FILE. An offer
with a schema or an example also sends the x402 "bazaar" extension in its
402. --private keeps the offer out of the documents; it still answers 402.`,
		Example: `  # sell a weather API at 0.001 USDC per request on Base Sepolia
  obol sell create weather --upstream weather-api:8080 --price 0.001 \
    --chain base-sepolia --pay-to 0x70997970C51812dc3A010C7d01b50e0d17dc79C8

  # an inference endpoint in another namespace; wait until it is ready
  obol sell create qwen --type inference --model qwen3:8b \
    --upstream ollama.llm:11434 --price 0.002 --chain base \
    --pay-to 0x70997970C51812dc3A010C7d01b50e0d17dc79C8 --wait

  # a streaming HTTP API: settle when the headers arrive, then stream
  obol sell create events --upstream events-api:8080 --price 0.01 \
    --chain base-sepolia --pay-to 0x70997970C51812dc3A010C7d01b50e0d17dc79C8 \
    --settle on-headers

  # listed for indexers: a GET with a city parameter, answering JSON
  obol sell create weather --upstream weather-api:8080 --price 0.001 \
    --chain base-sepolia --pay-to 0x70997970C51812dc3A010C7d01b50e0d17dc79C8 \
    --category weather \
    --input-schema '{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}' \
    --output-example @today.json

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
	fl.StringVar(&opts.Settle, "settle", "", "when the verifier settles a paid request: after-response or on-headers (default: on-headers for --type inference, after-response otherwise)")
	fl.Int32Var(&opts.MaxTimeout, "max-timeout", 0, "seconds a signed payment stays valid (default: the verifier's)")
	fl.StringVar(&opts.Method, "method", "", "HTTP method buyers call the offer with, for discovery: GET, HEAD, DELETE, POST, PUT or PATCH (default GET; POST for --type inference)")
	fl.StringVar(&opts.Category, "category", "", "catalog category for discovery, e.g. weather")
	fl.StringVar(&opts.InputSchema, "input-schema", "", "JSON Schema of the request (query parameters for GET, JSON body for POST), as JSON or @FILE")
	fl.StringVar(&opts.OutputSchema, "output-schema", "", "JSON Schema of a successful answer, as JSON or @FILE")
	fl.StringVar(&opts.OutputExample, "output-example", "", "example of a successful answer, as JSON or @FILE")
	fl.BoolVar(&opts.Private, "private", false, "keep the offer out of the discovery documents (it still answers 402)")
	fl.BoolVar(&opts.DryRun, "dry-run", false, "print the ServiceOffer manifest (-o yaml or json) and create nothing")
	fl.BoolVar(&opts.Wait, "wait", false, "wait until the controller reports the offer Ready")
	fl.DurationVar(&opts.Timeout, "timeout", 2*time.Minute, "how long --wait waits")
	return cmd
}

// BuildOffer validates the options and returns the ServiceOffer they
// describe in namespace ns. Nothing is contacted. Each problem names the
// flag that sets the field it is in.
func BuildOffer(opts *CreateOptions, ns string) (*v1alpha1.ServiceOffer, error) {
	reg := opts.Registry
	if reg == nil {
		reg = evm.NewRegistry()
	}
	req := opts.Request
	var fileErrs []error
	for _, f := range []struct {
		flag string
		v    *string
	}{{"--input-schema", &req.InputSchema}, {"--output-schema", &req.OutputSchema}, {"--output-example", &req.OutputExample}} {
		if name, ok := strings.CutPrefix(*f.v, "@"); ok {
			b, err := os.ReadFile(name)
			if err != nil {
				fileErrs = append(fileErrs, fmt.Errorf("%s: %w", f.flag, err))
				continue
			}
			*f.v = string(b)
		}
	}
	if len(fileErrs) > 0 {
		return nil, errors.Join(fileErrs...)
	}
	o, err := offer.Build(reg, req, ns)
	var oe *offer.Error
	if !errors.As(err, &oe) {
		return o, err
	}
	errs := make([]error, len(oe.Problems))
	for i, p := range oe.Problems {
		errs[i] = fmt.Errorf("%s: %w", flagOf[p.Field], p.Err)
	}
	return nil, errors.Join(errs...)
}

// flagOf names the flag (or argument) that sets each field of an offer.
var flagOf = map[offer.Field]string{
	offer.FieldName:            "name",
	offer.FieldUpstream:        "--upstream",
	offer.FieldHealthPath:      "--health-path",
	offer.FieldType:            "--type",
	offer.FieldModel:           "--model",
	offer.FieldPath:            "--path",
	offer.FieldScheme:          "scheme",
	offer.FieldNetwork:         "--chain",
	offer.FieldPayTo:           "--pay-to",
	offer.FieldAsset:           "--asset",
	offer.FieldPrice:           "--price",
	offer.FieldPricePerRequest: "--price",
	offer.FieldPricePerMTok:    "--price",
	offer.FieldPricePerHour:    "--price",
	offer.FieldMaxTimeout:      "--max-timeout",
	offer.FieldSettle:          "--settle",

	offer.FieldDiscovery:              "--input-schema/--output-schema/--output-example",
	offer.FieldDiscoveryMethod:        "--method",
	offer.FieldDiscoveryCategory:      "--category",
	offer.FieldDiscoveryInputSchema:   "--input-schema",
	offer.FieldDiscoveryOutputSchema:  "--output-schema",
	offer.FieldDiscoveryOutputExample: "--output-example",
}

func createRun(ctx context.Context, opts *CreateOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ns, err := opts.Kube.ResolveNamespace()
	if err != nil {
		return err
	}
	so, err := BuildOffer(opts, ns)
	if err != nil {
		return &cmdutil.FlagError{Err: fmt.Errorf("invalid offer, nothing was created:\n  %s", strings.ReplaceAll(err.Error(), "\n", "\n  "))}
	}
	if opts.DryRun {
		m, err := manifest(so, false)
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
	if err := c.Create(ctx, so); err != nil {
		return describeErr(fmt.Sprintf("create ServiceOffer %s/%s", ns, so.Name), err)
	}
	if opts.Output == cmdutil.OutputTable || opts.Output == "" {
		fmt.Fprintf(opts.IO.Out, "Created ServiceOffer %s/%s: %s %s per request on %s to %s, path %s\n",
			ns, so.Name, so.Spec.Payment.Price.PerRequest, so.Spec.Payment.Asset.Symbol,
			so.Spec.Payment.Network, so.Spec.Payment.PayTo, so.Spec.Path)
	}
	if opts.Wait {
		so, err = waitReady(ctx, c, ns, so.Name, opts.Timeout, opts.IO)
		if err != nil {
			return err
		}
	}
	if opts.Output == cmdutil.OutputTable || opts.Output == "" {
		if !opts.Wait {
			fmt.Fprintf(opts.IO.Out, "Check it with: obol sell status %s -n %s\n", so.Name, ns)
		}
		return nil
	}
	m, err := manifest(so, true)
	if err != nil {
		return err
	}
	return printData(opts.IO.Out, opts.Output, m, nil)
}
