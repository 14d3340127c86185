// Package facilitatorcmd implements `obol facilitator`: an x402 facilitator
// server that verifies and settles exact/EIP-3009 payments on one EVM chain.
package facilitatorcmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/facilitator"
)

// NewCmdFacilitator is the `obol facilitator` group.
func NewCmdFacilitator(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "facilitator",
		Short: "Run an x402 facilitator that verifies and settles payments on an EVM chain",
		Long: `A facilitator checks x402 payments (exact scheme, EIP-3009
transferWithAuthorization) for sellers and settles them on chain from its own
fee-payer account, which pays the gas.`,
	}
	cmd.AddCommand(NewCmdServe(f, nil))
	return cmd
}

// ServeOptions are the inputs of `obol facilitator serve`.
type ServeOptions struct {
	IO     *cmdutil.IOStreams
	Logger func() *slog.Logger
	Output string

	RPCURL         string
	Chain          string
	KeyFile        string
	PassphraseEnv  string
	PassphraseFile string
	Listen         string

	TokenAddress  string
	TokenName     string
	TokenVersion  string
	TokenDecimals uint8
	TokenSymbol   string

	RPCTimeout      time.Duration
	ReceiptTimeout  time.Duration
	ShutdownTimeout time.Duration

	// Test hooks.
	Registry *evm.Registry
	// AllowInsecureKeyPerms skips the key file mode check (tests).
	AllowInsecureKeyPerms bool
	// Started receives the base URL once the server accepts connections.
	Started chan<- string
	// Stop ends the server like Ctrl-C when closed (nil: signals only).
	Stop <-chan struct{}
}

// NewCmdServe builds `obol facilitator serve`; runF replaces serveRun in tests.
func NewCmdServe(f *cmdutil.Factory, runF func(*ServeOptions) error) *cobra.Command {
	opts := &ServeOptions{IO: f.IO, Logger: func() *slog.Logger { return f.Logger }}
	cmd := &cobra.Command{
		Use:   "serve --rpc URL --chain NAME --key-file FILE",
		Short: "Serve POST /verify, POST /settle and GET /supported for one chain",
		Long: `Serve the x402 facilitator HTTP API for the "exact" scheme on one EVM chain.

Endpoints:
  POST /verify     check a payment: scheme, network, recipient, amount, validity
                   window, EIP-712 signature, then an eth_call simulation of
                   transferWithAuthorization (catches used nonces, short balances)
  POST /settle     verify again, then send transferWithAuthorization from the
                   fee-payer key and wait for the receipt
  GET  /supported  the kinds served (x402 v1 and v2, exact, this chain) and the fee payer
  GET  /healthz    the process is up
  GET  /metrics    Prometheus metrics (obol_facilitator_*)

The node behind --rpc must serve --chain (its eth_chainId is checked at start).
The fee-payer key (--key-file: 64 hex digits or a keystore JSON, mode 0600) needs
native currency for gas; it never holds the payments, which go from buyer to seller.

Tokens: USDC of the chain is known. Another EIP-3009 token, such as the one
'obol dev chain' deploys, is registered with --asset and its EIP-712
domain (--eip712-name, --eip712-version) and decimals.`,
		Example: `  # on the development chain (obol dev chain prints the RPC URL, token and key files)
  obol facilitator serve --rpc http://127.0.0.1:8545 --chain dev \
    --key-file ~/.cache/obol/dev/keys/facilitator.key \
    --asset 0x2b1894172E4e079140C3DaE53394356262b7e258

  # on Base Sepolia with its USDC, key in a keystore
  OBOL_KEY_PASSPHRASE=... obol facilitator serve --rpc https://sepolia.base.org \
    --chain base-sepolia --key-file fee-payer.json --passphrase-env OBOL_KEY_PASSPHRASE \
    --listen 0.0.0.0:4021

  # ask it what it settles
  curl -s http://127.0.0.1:4021/supported`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Output = f.Global.Output
			if err := cmdutil.ValidateOutput(opts.Output, cmdutil.OutputTable, cmdutil.OutputJSON); err != nil {
				return err
			}
			if opts.RPCURL == "" {
				return &cmdutil.FlagError{Err: errors.New("--rpc is required: the chain's JSON-RPC URL (for the dev chain, the URL `obol dev chain` prints)")}
			}
			if opts.Chain == "" {
				return &cmdutil.FlagError{Err: errors.New("--chain is required: a chain name or CAIP-2 id such as base-sepolia, eip155:84532 or dev (see `obol chains`)")}
			}
			if opts.KeyFile == "" {
				return &cmdutil.FlagError{Err: errors.New("--key-file is required: the fee payer's private key (hex or keystore JSON, mode 0600)")}
			}
			if opts.TokenAddress != "" && !common.IsHexAddress(opts.TokenAddress) {
				return &cmdutil.FlagError{Err: fmt.Errorf("invalid --asset %q: want the token contract's 0x-prefixed address", opts.TokenAddress)}
			}
			if opts.TokenAddress == "" {
				for _, name := range []string{"eip712-name", "eip712-version", "asset-decimals", "asset-symbol"} {
					if cmd.Flags().Changed(name) {
						return &cmdutil.FlagError{Err: fmt.Errorf("--%s needs --asset: the token contract it describes", name)}
					}
				}
			}
			if runF != nil {
				return runF(opts)
			}
			return serveRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.RPCURL, "rpc", "", "JSON-RPC URL of a node of the chain (http or https)")
	fl.StringVar(&opts.Chain, "chain", "", "chain to settle on: name or CAIP-2 id (base, base-sepolia, eip155:8453, dev, ...)")
	fl.StringVar(&opts.KeyFile, "key-file", "", "fee payer's private key: 64 hex digits or a keystore JSON, mode 0600")
	fl.StringVar(&opts.PassphraseEnv, "passphrase-env", "", "environment variable holding the keystore passphrase")
	fl.StringVar(&opts.PassphraseFile, "passphrase-file", "", "file whose first line is the keystore passphrase")
	cmdutil.AliasFlag(fl, "key-passphrase-env", "passphrase-env", f.IO.ErrOut)
	cmdutil.AliasFlag(fl, "key-passphrase-file", "passphrase-file", f.IO.ErrOut)
	fl.StringVar(&opts.Listen, "listen", "127.0.0.1:4021", "address to listen on")
	fl.StringVar(&opts.TokenAddress, "asset", "", "register this EIP-3009 token on the chain (required for the dev chain)")
	fl.StringVar(&opts.TokenName, "eip712-name", evm.DevTokenName, "EIP-712 domain name of --asset")
	fl.StringVar(&opts.TokenVersion, "eip712-version", evm.DevTokenVersion, "EIP-712 domain version of --asset")
	fl.Uint8Var(&opts.TokenDecimals, "asset-decimals", 6, "decimals of --asset")
	fl.StringVar(&opts.TokenSymbol, "asset-symbol", evm.DevTokenSymbol, "symbol of --asset")
	for old, name := range map[string]string{"token-address": "asset", "token-name": "eip712-name",
		"token-version": "eip712-version", "token-decimals": "asset-decimals", "token-symbol": "asset-symbol"} {
		cmdutil.AliasFlag(fl, old, name, f.IO.ErrOut)
	}
	fl.DurationVar(&opts.RPCTimeout, "rpc-timeout", facilitator.DefaultRPCTimeout, "timeout of each JSON-RPC call")
	fl.DurationVar(&opts.ReceiptTimeout, "receipt-timeout", facilitator.DefaultReceiptTimeout, "how long to wait for a settlement's receipt")
	fl.DurationVar(&opts.ShutdownTimeout, "shutdown-timeout", time.Minute, "how long to let running settlements finish on Ctrl-C / SIGTERM")
	return cmd
}

// registerToken adds --asset to the registry, or checks that the
// chain has a token when none is given.
func registerToken(reg *evm.Registry, opts *ServeOptions) (evm.Chain, error) {
	chain, err := reg.Chain(opts.Chain)
	if err != nil {
		return chain, &cmdutil.FlagError{Err: fmt.Errorf("--chain: %w", err)}
	}
	if opts.TokenAddress == "" {
		if toks, _ := reg.Tokens(chain.CAIP2); len(toks) == 0 {
			if chain.Dev {
				return chain, &cmdutil.FlagError{Err: fmt.Errorf("--chain %s is the development chain, whose token obol cannot know in advance: pass --asset (the Token line of `obol dev chain`)", opts.Chain)}
			}
			return chain, &cmdutil.FlagError{Err: fmt.Errorf("no token is known on %s: pass --asset with --eip712-name/--eip712-version/--asset-decimals", chain.Name)}
		}
		return chain, nil
	}
	tok := evm.Token{
		Chain: chain.CAIP2, Address: common.HexToAddress(opts.TokenAddress), Symbol: opts.TokenSymbol,
		Decimals: opts.TokenDecimals, EIP712Name: opts.TokenName, EIP712Version: opts.TokenVersion,
		TransferMethod: "eip3009",
	}
	if tok.EIP712Name == "" || tok.EIP712Version == "" {
		return chain, &cmdutil.FlagError{Err: errors.New("--eip712-name and --eip712-version must not be empty: they are the token's EIP-712 domain, which buyers sign")}
	}
	if chain.Dev {
		reg.SetDevChain(chain.ChainID, tok)
		return chain, nil
	}
	if err := reg.AddToken(tok); err != nil {
		return chain, err
	}
	return chain, nil
}

// startInfo is what serve prints once it listens.
type startInfo struct {
	URL      string      `json:"url"`
	Chain    string      `json:"chain"`
	CAIP2    string      `json:"caip2"`
	FeePayer string      `json:"feePayer"`
	Tokens   []evm.Token `json:"tokens"`
}

func serveRun(parent context.Context, opts *ServeOptions) error {
	if parent == nil {
		parent = context.Background()
	}
	log := opts.Logger()
	if log == nil {
		log = slog.New(slog.NewTextHandler(opts.IO.ErrOut, nil))
	}
	reg := opts.Registry
	if reg == nil {
		reg = evm.NewRegistry()
	}
	chain, err := registerToken(reg, opts)
	if err != nil {
		return err
	}
	key, err := evm.LoadKey(opts.KeyFile, evm.KeyOptions{PassphraseEnv: opts.PassphraseEnv, PassphraseFile: opts.PassphraseFile, AllowInsecurePerms: opts.AllowInsecureKeyPerms})
	if err != nil {
		return fmt.Errorf("load the fee-payer key: %w", err)
	}

	// The root command's context ends on SIGINT or SIGTERM.
	ctx, stop := context.WithCancel(parent)
	defer stop()
	if opts.Stop != nil {
		go func() {
			select {
			case <-opts.Stop:
				stop()
			case <-ctx.Done():
			}
		}()
	}

	promReg := prometheus.NewRegistry()
	promReg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv, err := facilitator.NewServer(ctx, facilitator.Config{
		RPCURL: opts.RPCURL, Chain: chain.CAIP2, Registry: reg, Key: key, Registerer: promReg,
		RPCTimeout: opts.RPCTimeout, ReceiptTimeout: opts.ReceiptTimeout, Logger: log,
	})
	if err != nil {
		return err
	}
	defer srv.Close()

	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another process using the port? pick one with --listen)", opts.Listen, err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}

	toks, _ := reg.Tokens(chain.CAIP2)
	info := startInfo{URL: "http://" + ln.Addr().String(), Chain: chain.Name, CAIP2: chain.CAIP2, FeePayer: srv.FeePayer().Hex(), Tokens: toks}
	if err := cmdutil.PrintStructured(opts.IO.Out, opts.Output, info, func(w io.Writer) error {
		fmt.Fprintf(w, "facilitator listening on %s\n", info.URL)
		fmt.Fprintf(w, "  chain:      %s (%s)\n", info.Chain, info.CAIP2)
		fmt.Fprintf(w, "  fee payer:  %s\n", info.FeePayer)
		for _, t := range toks {
			fmt.Fprintf(w, "  token:      %s %s (EIP-712 %q version %q, %d decimals)\n", t.Symbol, t.Address.Hex(), t.EIP712Name, t.EIP712Version, t.Decimals)
		}
		_, err := fmt.Fprintln(w, "press Ctrl-C to stop")
		return err
	}); err != nil {
		return err
	}
	if opts.Started != nil {
		opts.Started <- info.URL
	}

	return cmdutil.Serve(ctx, hs, ln, opts.ShutdownTimeout, log)
}
