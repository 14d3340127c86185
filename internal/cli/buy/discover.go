package buy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/obolstack/obol/internal/catalog"
	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/evm"
)

// DiscoverOptions are the inputs of `obol buy discover`.
type DiscoverOptions struct {
	IO      *cmdutil.IOStreams
	Output  string
	URL     string
	Timeout time.Duration

	// HTTPClient and Registry replace the defaults in tests.
	HTTPClient *http.Client
	Registry   *evm.Registry
}

// NewCmdDiscover builds `obol buy discover`; runF replaces discoverRun in
// tests.
func NewCmdDiscover(f *cmdutil.Factory, runF func(*DiscoverOptions) error) *cobra.Command {
	opts := &DiscoverOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "discover URL",
		Short: "List what an x402 seller sells and at what price",
		Long: `Read an origin's x402 discovery documents — /openapi.json (operations with
x-payment-info, as x402scan crawls them) and /.well-known/x402 (its paid
resources) — and list each paid resource with its method, price in whole
tokens, chain and payee. Only the origin of URL is used.

Nothing is paid or signed. Resources a seller lists without their price are
asked for their 402 (an unpaid request). The documents are the seller's
advertisement: the 402 a resource answers is what ` + "`obol buy pay`" + ` pays.

Exit status: 0 listed; 1 the origin publishes no discovery documents or
cannot be reached; 2 bad flags.`,
		Example: `  # what does the running obol dev demo sell?
  obol buy discover http://127.0.0.1:8080

  # as JSON, with the full requirements of each resource
  obol buy discover https://api.example.com -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.URL = args[0]
			opts.Output = f.Global.Output
			if runF != nil {
				return runF(opts)
			}
			return discoverRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().DurationVar(&opts.Timeout, "timeout", 30*time.Second, "timeout of each HTTP request")
	return cmd
}

func discoverRun(ctx context.Context, opts *DiscoverOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := cmdutil.ValidateOutput(opts.Output, cmdutil.OutputTable, cmdutil.OutputJSON, cmdutil.OutputYAML); err != nil {
		return &cmdutil.FlagError{Err: err}
	}
	origin, err := catalog.Origin(opts.URL)
	if err != nil {
		return &cmdutil.FlagError{Err: err}
	}
	client := opts.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: opts.Timeout}
	}
	c, err := catalog.Read(ctx, client, opts.Registry, origin)
	if errors.Is(err, catalog.ErrNoDiscovery) {
		return fmt.Errorf("%w\nThe seller does not publish what it sells; if you know a paid URL, `obol buy pay URL --dry-run` shows its price", err)
	}
	if err != nil {
		return err
	}
	return cmdutil.PrintStructured(opts.IO.Out, opts.Output, c, func(w io.Writer) error {
		return printCatalog(w, opts.IO.ErrOut, c)
	})
}

func printCatalog(w, errOut io.Writer, c *catalog.Catalog) error {
	for _, s := range c.Sources {
		if s.Found {
			fmt.Fprintf(errOut, "%s: %d paid resource(s)\n", s.URL, s.Offers)
		} else {
			fmt.Fprintf(errOut, "%s: not published (%s)\n", s.URL, s.Error)
		}
	}
	if len(c.Offers) == 0 {
		fmt.Fprintf(errOut, "%s lists nothing paid", c.Origin)
		if c.Free > 0 {
			fmt.Fprintf(errOut, " (%d free operation(s))", c.Free)
		}
		fmt.Fprintln(errOut)
		return nil
	}
	t := cmdutil.NewTable(w, "METHOD", "URL", "PRICE", "CHAIN", "PAY TO", "DESCRIPTION")
	for _, o := range c.Offers {
		price := "unknown"
		switch {
		case o.Price != "" && o.Symbol != "":
			price = o.Price + " " + o.Symbol
		case o.Price != "":
			price = o.Price
		case o.Amount != "":
			price = o.Amount + " atomic units"
		}
		t.Row(o.Method, o.URL, price, dash(o.Network), dash(o.PayTo), o.Description)
	}
	return t.Flush()
}
