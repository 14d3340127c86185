package devcmd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/devstack"
	"github.com/obolstack/obol/internal/devstack/stackfile"
	"github.com/obolstack/obol/internal/earnings"
	"github.com/obolstack/obol/internal/evm"
)

// RunOptions are the inputs of `obol dev` itself.
type RunOptions struct {
	IO       *cmdutil.IOStreams
	Output   string
	LogLevel string
	Logger   *slog.Logger
	Now      func() time.Time

	Listen    string
	Pay       int
	ExitAfter bool
	Price     string
	KeyDir    string
	StackFile string

	// Context ends the stack; the command cancels it on Ctrl-C or SIGTERM.
	Context context.Context
	// Ready, if set, is called once the stack is up and the paid calls are
	// done (tests).
	Ready func(*devstack.Stack)
}

// bindRun makes cmd (the `obol dev` parent) run the whole loop.
func bindRun(f *cmdutil.Factory, cmd *cobra.Command, runF func(*RunOptions) error) {
	opts := &RunOptions{IO: f.IO}
	cmd.RunE = func(c *cobra.Command, args []string) error {
		opts.Output = f.Global.Output
		opts.LogLevel = f.Global.LogLevel
		opts.Logger = f.Logger
		opts.Now = f.Now
		if opts.Pay < 0 {
			return &cmdutil.FlagError{Err: fmt.Errorf("invalid --pay %d: want 0 or more calls", opts.Pay)}
		}
		if opts.Price != "" {
			// The dev token has 6 decimals, like USDC.
			if _, err := evm.ParseAmount(opts.Price, 6); err != nil {
				return &cmdutil.FlagError{Err: fmt.Errorf("--price: the demo price per call in tokens, e.g. 0.001: %w", err)}
			}
		}
		if runF != nil {
			return runF(opts)
		}
		opts.Context = c.Context() // ends on SIGINT/SIGTERM (root.SignalContext)
		return devRun(opts)
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Listen, "listen", devstack.DefaultListen, "host:port of the paid API (the verifier); port 0 picks a free port")
	fl.IntVar(&opts.Pay, "pay", 0, "make this many paid calls with the funded buyer, then print the earnings")
	fl.BoolVar(&opts.ExitAfter, "exit-after", false, "stop after start-up and the paid calls instead of serving until Ctrl-C")
	fl.StringVar(&opts.Price, "price", devstack.DefaultPrice, "price of the demo offer per call, in tokens")
	fl.StringVar(&opts.KeyDir, "key-dir", "", "directory for the dev accounts' key files (default: obol/dev/keys in the user cache directory)")
	fl.StringVar(&opts.StackFile, "dev-stack", "", "where to publish the stack's details for `obol buy pay` (default $OBOL_DEV_STACK or ~/.cache/obol/dev/stack.json)")
	cmdutil.AliasFlag(fl, "stack-file", "dev-stack", f.IO.ErrOut)
}

// devOutput is the -o json/yaml document.
type devOutput struct {
	Stack    stackfile.Info     `json:"stack"`
	Calls    []devstack.Call    `json:"calls"`
	Earnings *earnings.Snapshot `json:"earnings"`
}

func devRun(opts *RunOptions) error {
	ctx := opts.Context
	if ctx == nil {
		ctx = context.Background()
	}
	structured := opts.Output == cmdutil.OutputJSON || opts.Output == cmdutil.OutputYAML
	out := opts.IO.Out
	if structured {
		out = opts.IO.ErrOut // progress; the document goes to stdout
	}
	keyDir := opts.KeyDir
	if keyDir == "" {
		var err error
		if keyDir, err = DefaultKeyDir(); err != nil {
			return err
		}
	}
	if abs, err := filepath.Abs(keyDir); err == nil {
		keyDir = abs
	}
	stackFile := opts.StackFile
	if stackFile == "" {
		stackFile = stackfile.DefaultPath()
	}

	fmt.Fprintln(out, "Starting the x402 loop on this machine:")
	stack, err := devstack.Start(ctx, devstack.Options{
		Listen: opts.Listen, Price: opts.Price, KeyDir: keyDir, StackFile: stackFile,
		Logger: componentLogger(opts), Now: opts.Now,
		Step: func(msg string, elapsed time.Duration) {
			fmt.Fprintf(out, "  %5dms  ✓ %s\n", elapsed.Milliseconds(), msg)
		},
	})
	if err != nil {
		return fmt.Errorf("obol dev: %w", err)
	}
	defer stack.Close()
	fmt.Fprintf(out, "Ready in %dms.\n\n", stack.StartedIn.Milliseconds())
	printBox(out, stack)

	var calls []devstack.Call
	var snap *earnings.Snapshot
	if opts.Pay > 0 {
		fmt.Fprintf(out, "\nPaying %d call%s as %s (%s), via the same code as `obol buy pay`:\n", opts.Pay, plural(opts.Pay), stack.Buyer.Name, stack.Buyer.Address.Hex())
		calls, err = stack.Pay(ctx, opts.Pay, func(c devstack.Call) {
			path := strings.TrimPrefix(c.URL, stack.VerifierURL)
			fmt.Fprintf(out, "  #%-3d GET %-28s %d  paid %s  tx %s  %4dms\n", c.N, path, c.Status, c.Amount(), c.Transaction(), c.Elapsed.Milliseconds())
		})
		if err != nil {
			return fmt.Errorf("obol dev: %w", err)
		}
		s, err := stack.Summary(ctx)
		if err != nil {
			return fmt.Errorf("obol dev: read the verifier's metrics: %w", err)
		}
		snap = &s
		fmt.Fprintln(out)
		printSummary(out, stack, s)
		printBalances(ctx, out, stack)
	}
	if structured {
		doc := devOutput{Stack: stack.Info(), Calls: calls, Earnings: snap}
		if doc.Calls == nil {
			doc.Calls = []devstack.Call{}
		}
		if err := cmdutil.PrintStructured(opts.IO.Out, opts.Output, doc, nil); err != nil {
			return err
		}
	}
	if opts.Ready != nil {
		opts.Ready(stack)
	}
	if opts.ExitAfter {
		return shutdown(out, stack)
	}

	fmt.Fprintf(out, "\nServing until Ctrl-C. Pay it yourself from another terminal:\n  obol buy pay '%s' --key-file %s --max-amount 0.01\n",
		stack.URL(devstack.PathWeather+"?city=Paris"), stack.Buyer.KeyFile)
	<-ctx.Done()
	fmt.Fprintln(out, "\nCtrl-C: stopping.")
	if s, err := stack.Summary(context.Background()); err == nil && len(s.Offers) > 0 && !structured {
		printSummary(out, stack, s)
	}
	return shutdown(out, stack)
}

func shutdown(out io.Writer, stack *devstack.Stack) error {
	began := time.Now()
	if err := stack.Close(); err != nil {
		return fmt.Errorf("obol dev: shut down: %w", err)
	}
	fmt.Fprintf(out, "Stopped the verifier, upstream, facilitator and chain in %dms; the chain's state is discarded.\n", time.Since(began).Milliseconds())
	return nil
}

// componentLogger keeps the components quiet unless --log-level debug.
func componentLogger(opts *RunOptions) *slog.Logger {
	if strings.EqualFold(opts.LogLevel, "debug") && opts.Logger != nil {
		return opts.Logger
	}
	return slog.New(slog.NewTextHandler(opts.IO.ErrOut, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func printBox(w io.Writer, s *devstack.Stack) {
	rows := [][2]string{
		{"Paid API", s.URL(devstack.PathWeather + "?city=Lisbon")},
		{"", s.URL(devstack.PathJoke)},
		{"Price", fmt.Sprintf("%s %s per call (offer %s/%s)", s.Price, s.Token.Symbol, s.Offer.Namespace, s.Offer.Name)},
		{"Metrics", s.MetricsURL},
		{"Facilitator", s.FacilitatorURL},
		{"Chain RPC", fmt.Sprintf("%s (%s, chain id %d)", s.RPCURL, s.Token.Chain, s.Chain.ChainID)},
		{"Token", fmt.Sprintf("%s %s", s.Token.Symbol, s.Token.Address.Hex())},
		{"Seller (payTo)", s.Seller.Address.Hex()},
		{"Buyer", s.Buyer.Address.Hex()},
		{"Buyer key file", s.Buyer.KeyFile},
	}
	width := 0
	for _, r := range rows {
		if n := utf8.RuneCountInString(r[1]); n > width {
			width = n
		}
	}
	const label = 16
	title := " obol dev "
	inner := label + width + 2
	fmt.Fprintf(w, "┌─%s%s┐\n", title, strings.Repeat("─", inner-utf8.RuneCountInString(title)-1))
	for _, r := range rows {
		fmt.Fprintf(w, "│ %-*s%-*s │\n", label, r[0], width, r[1])
	}
	fmt.Fprintf(w, "└%s┘\n", strings.Repeat("─", inner))
}

func printSummary(w io.Writer, s *devstack.Stack, snap earnings.Snapshot) {
	fmt.Fprintf(w, "Earnings, read from the verifier's %s:\n", s.MetricsURL)
	t := cmdutil.NewTable(w, "  OFFER", "CHAIN", "CHARGED CALLS", "REVENUE", "LAST SETTLEMENT", "SETTLEMENT RATE")
	for _, o := range snap.Offers {
		var rev []string
		for _, a := range o.Revenue {
			if a.Known {
				rev = append(rev, a.Lifetime+" "+a.Symbol)
			} else {
				rev = append(rev, a.LifetimeAtomic+" atomic units of "+a.Asset)
			}
		}
		if len(rev) == 0 {
			rev = []string{"0"}
		}
		last := "never"
		if o.LastSettlement != nil {
			last = o.LastSettlement.Ago
			// Prometheus keeps the settlement time to the millisecond,
			// the snapshot to the second: clamp the rounding to 0s.
			if ago := snap.GeneratedAt.Unix() - o.LastSettlement.Unix; ago < 120 {
				last = fmt.Sprintf("%ds ago", max(ago, 0))
			}
		}
		rate := "n/a"
		if o.VerifiedRate != nil {
			rate = fmt.Sprintf("%.0f%%", *o.VerifiedRate*100)
		}
		t.Row("  "+o.Key(), fmt.Sprintf("%s (%s)", o.ChainName, o.Chain), fmt.Sprint(o.ChargedCalls.Lifetime), strings.Join(rev, " + "), last, rate)
	}
	_ = t.Flush()
	fmt.Fprintln(w, "  Revenue is exact, from obol_x402_verifier_charged_atomic_units_total; settlement rate is")
	fmt.Fprintln(w, "  verified / (402 challenges + verified + failed) since start — each paid call is one 402, then one verified payment.")
}

// printBalances shows that the money moved on the chain itself.
func printBalances(ctx context.Context, w io.Writer, s *devstack.Stack) {
	seller, err1 := s.Chain.BalanceOf(ctx, s.Seller.Address)
	buyerBal, err2 := s.Chain.BalanceOf(ctx, s.Buyer.Address)
	if err1 != nil || err2 != nil {
		return
	}
	fmt.Fprintf(w, "On chain: the seller holds %s %s, %s holds %s %s.\n",
		evm.FormatAmount(seller, s.Token.Decimals), s.Token.Symbol, s.Buyer.Name, evm.FormatAmount(buyerBal, s.Token.Decimals), s.Token.Symbol)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
