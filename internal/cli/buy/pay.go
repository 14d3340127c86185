package buy

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/spf13/cobra"

	"github.com/obolstack/obol/internal/buyer"
	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/devstack/stackfile"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/x402"
)

// Exit codes of `obol buy pay` besides 0 (success) and 2 (bad flags).
const (
	ExitFailed   = 1 // the request failed or the server answered ≥ 400
	ExitRefused  = 3 // the payment policy refused every way to pay; nothing signed
	ExitRejected = 4 // the server answered 402 again after the payment
	// ExitUnconfirmed: the seller's receipt does not check out on chain.
	ExitUnconfirmed = 5
)

// PassphraseEnvDefault is the variable read for a keystore's passphrase
// when --passphrase-env is not given.
const PassphraseEnvDefault = "OBOL_KEY_PASSPHRASE"

// PayOptions are the inputs of `obol buy pay`.
type PayOptions struct {
	IO     *cmdutil.IOStreams
	Output string
	Now    func() time.Time

	URL     string
	Method  string
	Data    string
	Headers []string
	Timeout time.Duration

	KeyFile        string
	PassphraseEnv  string
	PassphraseFile string

	MaxAmount   string
	MaxValidity time.Duration
	Network     string
	AllowPayTo  []string
	DryRun      bool

	// DevStack is the `obol dev` stack file; DevStackExplicit says the user
	// named it (then it must exist).
	DevStack         string
	DevStackExplicit bool

	// RPCURL is a JSON-RPC endpoint of the payment's chain; Confirm checks
	// the seller's receipt there. ConfirmSet says --confirm was given
	// (otherwise it is on exactly when an RPC URL is known for the chain).
	RPCURL      string
	Confirm     bool
	ConfirmSet  bool
	ConfirmWait time.Duration
	// devRPC is the dev stack's RPC URL, for its chain (devChain).
	devRPC, devChain string

	TokenAddress  string
	TokenName     string
	TokenVersion  string
	TokenDecimals uint8
	TokenSymbol   string

	// HTTPClient and Registry replace the defaults in tests.
	HTTPClient *http.Client
	Registry   *evm.Registry
	// AllowInsecureKey skips the key file mode check (tests only).
	AllowInsecureKey bool
}

// NewCmdPay builds `obol buy pay`; runF replaces payRun in tests.
func NewCmdPay(f *cmdutil.Factory, runF func(*PayOptions) error) *cobra.Command {
	opts := &PayOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "pay URL",
		Short: "Send one request to an x402 API and pay for it if asked",
		Long: `Send an HTTP request. When the server answers 402 Payment Required, read its
x402 challenge (the PAYMENT-REQUIRED header first, then the JSON body; x402
version 1 or 2), pick a way to pay the policy allows, sign an EIP-3009
transfer authorization with --key-file and retry once with the payment
header of the server's version. The response body goes to stdout, the
receipt (amount, payee, network, transaction, payer) to stderr.

A way to pay is accepted only when its scheme is "exact", its chain and token
are known (with the token's EIP-712 domain from obol's registry — a server
that names another domain is refused, never trusted), its price is at most
--max-amount token units, its payee is in --allow-pay-to (when given) and
its chain is --chain (when given). Otherwise nothing is signed and the
command says why. --max-amount defaults to 0.01 (one cent of USDC).

A free URL (no 402) is passed through untouched: nothing is signed.

Local development chain: while ` + "`obol dev`" + ` runs it writes a stack file
(default ~/.cache/obol/dev/stack.json, override with $OBOL_DEV_STACK) with
the chain id and its token's address and domain; this command reads it, so
paying ` + "`obol dev`" + ` needs no token flags. For another token not in the registry
pass --chain with --asset/--eip712-name/--eip712-version/--asset-decimals.

The authorization is valid from now-600s (clock skew) until now plus the
requirement's maxTimeoutSeconds, with a random 32-byte nonce.

The seller's receipt is its word until checked: with --confirm (on by
default when an RPC URL of the chain is known: --rpc-url, or the obol dev
stack file for its chain) the transaction is looked up and must be a
successful transfer of exactly the amount signed, from you to the payee,
spending the authorization sent. Unchecked, the output says "The seller
reports it settled" rather than "Paid".

A seller that took the payment but cannot tell yet whether it settled
answers 503 with reason settlement_pending: the same request is sent again
with the same payment (never a new one) after its Retry-After, for up to
3 minutes, with a line on stderr for each wait. If it is still pending then,
the payment may have been charged: check your balance or the seller's
settlement before paying again (a new run signs a new authorization).

Exit status: 0 paid or free 2xx; 1 request failed or HTTP >= 400; 2 bad
flags; 3 refused to pay (nothing signed); 4 the server rejected the payment;
5 the seller's receipt does not check out on chain.`,
		Example: `  # pay the running ` + "`obol dev`" + ` demo (it prints the buyer key file)
  obol buy pay 'http://127.0.0.1:8080/weather?city=Paris' --key-file ~/.cache/obol/dev/keys/buyer-1.key --max-amount 0.01

  # see what it would cost, sign nothing
  obol buy pay https://api.example.com/weather --dry-run

  # POST a body from a file, only to a known payee, only on Base, JSON output
  obol buy pay https://api.example.com/v1/chat -X POST -d @prompt.json -H 'Content-Type: application/json' \
    --key-file buyer.key --max-amount 0.05 --chain base --allow-pay-to 0x209693Bc6afc0C5328bA36FaF03C514EF312287C -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.URL = args[0]
			opts.Output = f.Global.Output
			opts.Now = f.Now
			opts.DevStackExplicit = cmd.Flags().Changed("dev-stack")
			opts.ConfirmSet = cmd.Flags().Changed("confirm")
			if opts.DevStack == "" && !opts.DevStackExplicit {
				opts.DevStack = stackfile.DefaultPath()
			}
			if runF != nil {
				return runF(opts)
			}
			// The root command's context ends on Ctrl-C.
			return payRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&opts.Method, "request", "X", "", "HTTP method (default GET, or POST with --data)")
	fl.StringVarP(&opts.Data, "data", "d", "", "request body: literal text, @FILE, or @- for stdin")
	fl.StringArrayVarP(&opts.Headers, "header", "H", nil, "request header 'Name: value' (repeatable)")
	fl.DurationVar(&opts.Timeout, "timeout", 2*time.Minute, "timeout of each HTTP request")
	fl.StringVar(&opts.KeyFile, "key-file", "", "signing key: a file with a hex private key or a keystore JSON, mode 0600 (required unless --dry-run)")
	fl.StringVar(&opts.PassphraseEnv, "passphrase-env", PassphraseEnvDefault, "environment variable holding the keystore passphrase")
	fl.StringVar(&opts.PassphraseFile, "passphrase-file", "", "file whose first line is the keystore passphrase")
	fl.StringVar(&opts.MaxAmount, "max-amount", buyer.DefaultMaxAmount, "most to pay for this call, in token units of the asset (e.g. 0.05 = 5 cents of USDC)")
	fl.DurationVar(&opts.MaxValidity, "max-validity", buyer.DefaultMaxValidity, "longest validity to sign (the seller's maxTimeoutSeconds); a seller asking for more is refused")
	fl.StringVar(&opts.Network, "chain", "", "only pay on this chain (name such as base-sepolia, or CAIP-2 such as eip155:84532)")
	fl.StringSliceVar(&opts.AllowPayTo, "allow-pay-to", nil, "only pay these addresses (repeatable or comma-separated)")
	fl.BoolVar(&opts.DryRun, "dry-run", false, "show what would be paid and stop: sign and send nothing")
	fl.StringVar(&opts.RPCURL, "rpc-url", "", "JSON-RPC URL of the payment's chain, to check the seller's receipt (see --confirm)")
	fl.BoolVar(&opts.Confirm, "confirm", false, "check the seller's receipt on chain: a transfer of the amount signed, from you to the payee, spending the authorization sent (default on when an RPC URL is known: --rpc-url, or the obol dev stack for its chain)")
	fl.DurationVar(&opts.ConfirmWait, "confirm-timeout", time.Minute, "how long --confirm waits for the transaction to be mined")
	fl.StringVar(&opts.DevStack, "dev-stack", "", "stack file of a running obol dev (default $OBOL_DEV_STACK or ~/.cache/obol/dev/stack.json, read when present)")
	fl.StringVar(&opts.TokenAddress, "asset", "", "register a token not in obol's registry on --chain: its contract address")
	fl.StringVar(&opts.TokenName, "eip712-name", "", "the token's EIP-712 domain name (with --asset)")
	fl.StringVar(&opts.TokenVersion, "eip712-version", "", "the token's EIP-712 domain version (with --asset)")
	fl.Uint8Var(&opts.TokenDecimals, "asset-decimals", 6, "the token's decimals (with --asset)")
	fl.StringVar(&opts.TokenSymbol, "asset-symbol", "TOKEN", "the token's symbol, for display (with --asset)")
	for old, name := range map[string]string{"network": "chain", "token-address": "asset", "token-name": "eip712-name",
		"token-version": "eip712-version", "token-decimals": "asset-decimals", "token-symbol": "asset-symbol"} {
		cmdutil.AliasFlag(fl, old, name, f.IO.ErrOut)
	}
	return cmd
}

// payOutput is the -o json/yaml document.
type payOutput struct {
	URL     string             `json:"url"`
	Status  int                `json:"status"`
	DryRun  bool               `json:"dryRun,omitempty"`
	Body    any                `json:"body"`
	Payment *buyer.PaymentView `json:"payment"`
	Receipt *buyer.Receipt     `json:"receipt"`
	// Confirmed is set when the receipt was checked on chain and holds.
	Confirmed *buyer.Confirmation `json:"confirmed,omitempty"`
	// PendingRetries counts the resends of the same payment while the
	// seller answered "settlement pending".
	PendingRetries int    `json:"pendingRetries,omitempty"`
	Error          string `json:"error,omitempty"`
}

func payRun(ctx context.Context, opts *PayOptions) error {
	if err := cmdutil.ValidateOutput(opts.Output, cmdutil.OutputTable, cmdutil.OutputJSON, cmdutil.OutputYAML); err != nil {
		return &cmdutil.FlagError{Err: err}
	}
	payer, err := buildPayer(opts)
	if err != nil {
		return err
	}
	req, err := buildRequest(ctx, opts)
	if err != nil {
		return err
	}

	var res *buyer.Result
	if opts.DryRun {
		res, err = payer.Preview(ctx, req)
	} else {
		res, err = payer.Do(ctx, req)
	}
	var chk *check
	if err == nil && res != nil && res.Signed != nil && res.Receipt != nil && res.Receipt.Success && res.Status < 400 {
		chk = confirm(ctx, opts, res)
	}
	return report(opts, res, err, chk)
}

// check is the outcome of checking a receipt on chain; nil: not checked.
type check struct {
	confirmed *buyer.Confirmation
	err       error
}

// confirm checks the receipt when --confirm is on (by default, when an RPC
// URL is known for the payment's chain).
func confirm(ctx context.Context, opts *PayOptions, res *buyer.Result) *check {
	rpc := opts.RPCURL
	if rpc == "" && opts.devRPC != "" && opts.devChain == res.Quote.Chain.CAIP2 {
		rpc = opts.devRPC
	}
	on := rpc != ""
	if opts.ConfirmSet {
		on = opts.Confirm
	}
	if !on {
		return nil
	}
	if rpc == "" {
		return &check{err: fmt.Errorf("%w: --confirm needs an RPC URL of %s (--rpc-url)", buyer.ErrUnconfirmed, res.Quote.Chain.Name)}
	}
	c, err := buyer.Confirm(ctx, rpc, res, opts.ConfirmWait)
	return &check{confirmed: c, err: err}
}

func buildPayer(opts *PayOptions) (*buyer.Payer, error) {
	if err := buyer.ValidateMaxAmount(opts.MaxAmount); err != nil {
		return nil, &cmdutil.FlagError{Err: fmt.Errorf("--max-amount: %w", err)}
	}
	reg := opts.Registry
	if reg == nil {
		reg = evm.NewRegistry()
	}
	if err := loadDevStack(opts, reg); err != nil {
		return nil, err
	}
	if err := registerToken(opts, reg); err != nil {
		return nil, err
	}
	if opts.Network != "" {
		if _, err := reg.Chain(opts.Network); err != nil {
			return nil, &cmdutil.FlagError{Err: fmt.Errorf("--chain: %w", err)}
		}
	}
	var allow []common.Address
	for _, a := range opts.AllowPayTo {
		a = strings.TrimSpace(a)
		if !common.IsHexAddress(a) {
			return nil, &cmdutil.FlagError{Err: fmt.Errorf("--allow-pay-to %q: want a 0x-prefixed 20-byte address", a)}
		}
		allow = append(allow, common.HexToAddress(a))
	}
	var key *ecdsa.PrivateKey
	if opts.KeyFile != "" {
		k, err := evm.LoadKey(opts.KeyFile, evm.KeyOptions{PassphraseEnv: opts.PassphraseEnv, PassphraseFile: opts.PassphraseFile, AllowInsecurePerms: opts.AllowInsecureKey})
		if err != nil {
			return nil, err
		}
		key = k
	} else if !opts.DryRun {
		return nil, &cmdutil.FlagError{Err: errors.New("--key-file is required to pay (or use --dry-run to see the price without a key)")}
	}
	client := opts.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: opts.Timeout}
	}
	// A header the user passed with -H was asked for by name: it reaches
	// the seller, credentials included.
	var asked []string
	for _, h := range opts.Headers {
		if name, _, ok := strings.Cut(h, ":"); ok {
			asked = append(asked, strings.TrimSpace(name))
		}
	}
	// Progress goes to stderr, so -o json keeps stdout one JSON document.
	pending := func(attempt int, wait time.Duration) {
		fmt.Fprintf(opts.IO.ErrOut, "settlement pending at the seller; asking again in %s (attempt %d)\n", wait.Round(time.Second), attempt)
	}
	return &buyer.Payer{Key: key, Registry: reg, HTTPClient: client, MaxAmount: opts.MaxAmount, MaxValidity: opts.MaxValidity,
		AllowPayTo: allow, Network: opts.Network, Now: opts.Now, Headers: buyer.HeaderPolicy{Allow: asked}, OnPending: pending}, nil
}

func loadDevStack(opts *PayOptions, reg *evm.Registry) error {
	if opts.DevStack == "" {
		return nil
	}
	info, err := stackfile.Read(opts.DevStack)
	if err != nil {
		if errors.Is(err, stackfile.ErrNotFound) && !opts.DevStackExplicit {
			return nil
		}
		return fmt.Errorf("--dev-stack: %w", err)
	}
	info.Register(reg)
	opts.devRPC, opts.devChain = info.RPCURL, info.Chain.CAIP2
	return nil
}

func registerToken(opts *PayOptions, reg *evm.Registry) error {
	if opts.TokenAddress == "" {
		if opts.TokenName != "" || opts.TokenVersion != "" {
			return &cmdutil.FlagError{Err: errors.New("--eip712-name/--eip712-version need --asset")}
		}
		return nil
	}
	if !common.IsHexAddress(opts.TokenAddress) {
		return &cmdutil.FlagError{Err: fmt.Errorf("--asset %q: want a 0x-prefixed 20-byte address", opts.TokenAddress)}
	}
	if opts.Network == "" || opts.TokenName == "" || opts.TokenVersion == "" {
		return &cmdutil.FlagError{Err: errors.New("--asset needs --chain, --eip712-name and --eip712-version (the token's EIP-712 domain; obol never guesses one)")}
	}
	err := reg.AddToken(evm.Token{Chain: opts.Network, Address: common.HexToAddress(opts.TokenAddress), Symbol: opts.TokenSymbol,
		Decimals: opts.TokenDecimals, EIP712Name: opts.TokenName, EIP712Version: opts.TokenVersion})
	if err != nil {
		return &cmdutil.FlagError{Err: fmt.Errorf("--asset: %w", err)}
	}
	return nil
}

func buildRequest(ctx context.Context, opts *PayOptions) (*http.Request, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, &cmdutil.FlagError{Err: fmt.Errorf("URL %q: want an absolute http:// or https:// URL", opts.URL)}
	}
	var body []byte
	hasBody := false
	switch {
	case opts.Data == "@-":
		body, err = io.ReadAll(opts.IO.In)
		if err != nil {
			return nil, fmt.Errorf("read --data from stdin: %w", err)
		}
		hasBody = true
	case strings.HasPrefix(opts.Data, "@"):
		body, err = os.ReadFile(opts.Data[1:])
		if err != nil {
			return nil, fmt.Errorf("--data %s: %w", opts.Data, err)
		}
		hasBody = true
	case opts.Data != "":
		body, hasBody = []byte(opts.Data), true
	}
	method := strings.ToUpper(opts.Method)
	if method == "" {
		method = http.MethodGet
		if hasBody {
			method = http.MethodPost
		}
	}
	var rd io.Reader
	if hasBody {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, &cmdutil.FlagError{Err: fmt.Errorf("build request: %w", err)}
	}
	for _, h := range opts.Headers {
		name, value, ok := strings.Cut(h, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" {
			return nil, &cmdutil.FlagError{Err: fmt.Errorf("--header %q: want 'Name: value'", h)}
		}
		value = strings.TrimSpace(value)
		if strings.EqualFold(name, "Host") {
			req.Host = value
			continue
		}
		req.Header.Add(name, value)
	}
	if hasBody && req.Header.Get("Content-Type") == "" && json.Valid(body) {
		req.Header.Set("Content-Type", "application/json")
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "obol-buy-pay")
	}
	return req, nil
}

func report(opts *PayOptions, res *buyer.Result, payErr error, chk *check) error {
	out := payOutput{URL: opts.URL, DryRun: opts.DryRun}
	if res != nil {
		out.Status = res.Status
		out.Body = buyer.BodyValue(res.Body)
		out.Receipt = res.Receipt
		out.Payment = res.View()
		out.PendingRetries = res.PendingRetries
	}
	err := classify(opts, res, payErr)
	if err == nil && chk != nil {
		if chk.err != nil {
			code := ExitUnconfirmed
			if !errors.Is(chk.err, buyer.ErrUnconfirmed) {
				code = ExitFailed // could not ask the chain
			}
			err = &cmdutil.ExitError{Code: code, Err: fmt.Errorf("the seller reports the payment settled, but: %w", chk.err)}
		}
		out.Confirmed = chk.confirmed
	}
	if err != nil {
		out.Error = err.Error()
	}
	structured := opts.Output == cmdutil.OutputJSON || opts.Output == cmdutil.OutputYAML
	if structured {
		if perr := cmdutil.PrintStructured(opts.IO.Out, opts.Output, out, nil); perr != nil {
			return perr
		}
		return err
	}
	if res == nil {
		return err
	}
	w := opts.IO.ErrOut
	switch {
	case opts.DryRun && res.Quote != nil && err == nil:
		q := res.Quote
		fmt.Fprintf(opts.IO.Out, "Would pay %s to %s on %s (%s) for %s\n", q.Display(), q.PayTo.Hex(), q.Chain.Name, q.Chain.CAIP2, opts.URL)
		fmt.Fprintf(opts.IO.Out, "  asset        %s (EIP-712 %q version %q)\n", q.Token.Address.Hex(), q.Token.EIP712Name, q.Token.EIP712Version)
		fmt.Fprintf(opts.IO.Out, "  x402         version %d, scheme %s, valid for %s\n", q.Version, q.Requirement.Scheme, q.Validity)
		fmt.Fprintln(opts.IO.Out, "Dry run: nothing was signed or sent.")
		return nil
	case opts.DryRun && res.Quote == nil && res.Status != http.StatusPaymentRequired:
		fmt.Fprintf(w, "No payment asked: HTTP %d. Nothing was signed.\n", res.Status)
	}
	// The body of a refused or rejected 402 is the challenge, not content.
	if res.Status != http.StatusPaymentRequired {
		if _, werr := opts.IO.Out.Write(res.Body); werr != nil {
			return werr
		}
	}
	if res.Signed != nil && res.Quote != nil {
		printReceipt(w, res, chk)
	}
	return err
}

func printReceipt(w io.Writer, res *buyer.Result, chk *check) {
	q, s, r := res.Quote, res.Signed, res.Receipt
	switch {
	case r != nil && r.Success && res.Status < 400 && chk != nil && chk.confirmed != nil:
		fmt.Fprintf(w, "Paid %s to %s on %s (%s), confirmed on chain in block %d\n", q.Display(), q.PayTo.Hex(), q.Chain.Name, q.Chain.CAIP2, chk.confirmed.Block)
	case r != nil && r.Success && res.Status < 400 && chk != nil:
		fmt.Fprintf(w, "The seller reports it settled %s to %s on %s (%s), but its receipt does NOT check out on chain\n", q.Display(), q.PayTo.Hex(), q.Chain.Name, q.Chain.CAIP2)
	case r != nil && r.Success && res.Status < 400:
		fmt.Fprintf(w, "The seller reports it settled %s to %s on %s (%s); not checked on chain (pass --rpc-url to check)\n", q.Display(), q.PayTo.Hex(), q.Chain.Name, q.Chain.CAIP2)
	case r != nil && !r.Success:
		fmt.Fprintf(w, "Payment of %s to %s on %s NOT settled: %s %s\n", q.Display(), q.PayTo.Hex(), q.Chain.Name, r.ErrorReason, r.ErrorMessage)
	default:
		fmt.Fprintf(w, "Sent a payment of %s to %s on %s; the server returned no settlement receipt\n", q.Display(), q.PayTo.Hex(), q.Chain.Name)
	}
	if r != nil && r.Transaction != "" {
		fmt.Fprintf(w, "  transaction  %s\n", r.Transaction)
	}
	payer := s.From
	if r != nil && r.Payer != "" {
		payer = r.Payer
	}
	fmt.Fprintf(w, "  payer        %s\n", payer)
	fmt.Fprintf(w, "  nonce        %s\n", s.Nonce)
	fmt.Fprintf(w, "  x402         version %d (%s)\n", q.Version, s.Header)
	if res.ReceiptErr != nil {
		fmt.Fprintf(w, "  receipt      unreadable: %v\n", res.ReceiptErr)
	}
}

// answerReason is the "reason" of a JSON error answer, "" if none.
func answerReason(body []byte) string {
	var b struct {
		Reason string `json:"reason"`
	}
	if json.Unmarshal(body, &b) != nil {
		return ""
	}
	return b.Reason
}

// classify turns the outcome into the command's error and exit code.
func classify(opts *PayOptions, res *buyer.Result, err error) error {
	switch {
	case errors.Is(err, buyer.ErrRefused):
		return &cmdutil.ExitError{Code: ExitRefused, Err: err}
	case errors.Is(err, buyer.ErrPaymentRejected):
		return &cmdutil.ExitError{Code: ExitRejected, Err: err}
	case err != nil:
		return &cmdutil.ExitError{Code: ExitFailed, Err: err}
	}
	if res.Status == http.StatusPaymentRequired && opts.DryRun {
		return nil
	}
	if res.Status >= 400 {
		msg := fmt.Sprintf("%s answered HTTP %d %s", opts.URL, res.Status, http.StatusText(res.Status))
		if res.Signed != nil {
			switch {
			case answerReason(res.Body) == x402.ReasonSettlementUnknown:
				msg += " after the payment: the seller could not tell whether the payment settled, so it may have been charged without an answer; check the payer's balance before paying again"
			case res.Receipt == nil || !res.Receipt.Success:
				msg += " after the payment; it sent no successful settlement, so the authorization should not have been charged"
			default:
				msg += " after the payment, although it reports the payment settled (transaction " + res.Receipt.Transaction + ")"
			}
		}
		return &cmdutil.ExitError{Code: ExitFailed, Err: errors.New(msg)}
	}
	if res.Signed != nil && (res.Receipt == nil || !res.Receipt.Success) {
		// Served but no receipt: say so, but the content arrived.
		fmt.Fprintln(opts.IO.ErrOut, "Warning: the server served the request without a successful settlement receipt.")
	}
	return nil
}
