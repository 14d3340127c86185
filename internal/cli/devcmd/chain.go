package devcmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/devchain"
	"github.com/obolstack/obol/internal/evm"
)

// ChainOptions are the inputs of `obol dev chain`.
type ChainOptions struct {
	IO     *cmdutil.IOStreams
	Output string
	Logger *slog.Logger

	Listen       string
	ChainID      int64
	KeyDir       string
	TokenName    string
	TokenVersion string
	Buyers       int

	// Context ends the chain; the command cancels it on Ctrl-C or SIGTERM.
	Context context.Context
	// Ready, if set, is called once the chain's details are printed (tests).
	Ready func(*devchain.Chain)
}

// NewCmdChain builds `obol dev chain`; runF replaces chainRun in tests.
func NewCmdChain(f *cmdutil.Factory, runF func(*ChainOptions) error) *cobra.Command {
	opts := &ChainOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "chain",
		Short: "Run the development chain with obol's test USDC until Ctrl-C",
		Long: `Run an in-memory Ethereum development chain and serve its JSON-RPC over HTTP.

The chain seals a block for every transaction. On start it deploys ObolUSD,
obol's EIP-3009 token, which signs like USDC (EIP-712 name "USDC", version
"2" unless changed), and mints 1000 of it to each buyer account. All accounts
are deterministic and funded with ETH; their private keys are written, mode
0600, to the key directory (never printed). Point any client at the RPC URL:
obol facilitator serve, a wallet, curl.

Everything is discarded when the command stops.`,
		Example: `  # run on the usual port and ask for the chain id
  obol dev chain --listen 127.0.0.1:8545
  curl -s -X POST -H 'content-type: application/json' \
    --data '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' http://127.0.0.1:8545

  # machine-readable details, keys in ./dev-keys
  obol dev chain --key-dir ./dev-keys -o json

  # sign like mainnet USDC, on another chain id
  obol dev chain --chain-id 31337 --eip712-name "USD Coin"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Output = f.Global.Output
			opts.Logger = f.Logger
			if err := checkChainFlags(opts.ChainID, opts.Buyers); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			opts.Context = cmd.Context() // ends on SIGINT/SIGTERM (root.SignalContext)
			return chainRun(opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Listen, "listen", "127.0.0.1:8545", "host:port of the JSON-RPC HTTP server (port 0 picks a free port)")
	fl.Int64Var(&opts.ChainID, "chain-id", evm.DevChainID, "EIP-155 chain id")
	fl.StringVar(&opts.KeyDir, "key-dir", "", "directory for the accounts' key files (default: obol/dev/keys in the user cache directory)")
	fl.StringVar(&opts.TokenName, "eip712-name", evm.DevTokenName, `token name and EIP-712 domain name ("USDC" like Base Sepolia, "USD Coin" like mainnet)`)
	fl.StringVar(&opts.TokenVersion, "eip712-version", evm.DevTokenVersion, "EIP-712 domain version")
	cmdutil.AliasFlag(fl, "token-name", "eip712-name", f.IO.ErrOut)
	cmdutil.AliasFlag(fl, "token-version", "eip712-version", f.IO.ErrOut)
	fl.IntVar(&opts.Buyers, "buyers", devchain.DefaultBuyers, "number of buyer accounts, each minted 1000 tokens")
	return cmd
}

// checkChainFlags checks the chain flags `obol dev chain` and `obol dev
// keys` share.
func checkChainFlags(chainID int64, buyers int) error {
	if chainID <= 0 {
		return &cmdutil.FlagError{Err: fmt.Errorf("invalid --chain-id %d: want a positive integer", chainID)}
	}
	if buyers < 0 {
		return &cmdutil.FlagError{Err: fmt.Errorf("invalid --buyers %d: want 0 or more", buyers)}
	}
	return nil
}

// AccountInfo is one account in the command's output. It never holds key
// material, only the key file's path.
type AccountInfo struct {
	Name    string `json:"name"`
	Role    string `json:"role"`
	Address string `json:"address"`
	KeyFile string `json:"keyFile"`
	// Balance is the token balance in atomic units.
	Balance string `json:"balance,omitempty"`
}

// ChainInfo is what `obol dev chain` prints (the -o json object).
type ChainInfo struct {
	RPCURL   string        `json:"rpcUrl"`
	ChainID  int64         `json:"chainId"`
	Network  string        `json:"network"` // CAIP-2
	Token    evm.Token     `json:"token"`
	KeyDir   string        `json:"keyDir"`
	Accounts []AccountInfo `json:"accounts"`
}

// DefaultKeyDir is where `obol dev chain` writes keys without --key-dir:
// $XDG_CACHE_HOME/obol/dev/keys (usually ~/.cache/obol/dev/keys).
func DefaultKeyDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find a directory for dev keys: %w (pass --key-dir DIR)", err)
	}
	return filepath.Join(base, "obol", "dev", "keys"), nil
}

func chainRun(opts *ChainOptions) error {
	ctx := opts.Context
	if ctx == nil {
		ctx = context.Background()
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
	buyers := opts.Buyers
	if buyers == 0 {
		buyers = -1 // devchain: 0 means default, negative means none
	}
	chain, err := devchain.Start(ctx, devchain.Config{
		ListenAddr:   opts.Listen,
		ChainID:      opts.ChainID,
		TokenName:    opts.TokenName,
		TokenVersion: opts.TokenVersion,
		Buyers:       buyers,
		KeyDir:       keyDir,
		Logger:       opts.Logger,
	})
	if err != nil {
		return fmt.Errorf("start the development chain: %w", err)
	}
	defer chain.Close()

	info, err := describe(ctx, chain, keyDir)
	if err != nil {
		return err
	}
	err = cmdutil.PrintStructured(opts.IO.Out, opts.Output, info, func(w io.Writer) error { return printTable(w, info) })
	if err != nil {
		return err
	}
	fmt.Fprintln(opts.IO.ErrOut, "Development chain running. Press Ctrl-C to stop; everything on it is discarded.")
	if opts.Ready != nil {
		opts.Ready(chain)
	}
	<-ctx.Done()
	fmt.Fprintln(opts.IO.ErrOut, "Stopping the development chain.")
	if err := chain.Close(); err != nil {
		return fmt.Errorf("stop the development chain: %w", err)
	}
	return nil
}

func describe(ctx context.Context, c *devchain.Chain, keyDir string) (ChainInfo, error) {
	info := ChainInfo{RPCURL: c.RPCURL, ChainID: c.ChainID, Network: c.CAIP2(), Token: c.Token, KeyDir: keyDir}
	add := func(role string, a devchain.Account) error {
		bal, err := c.BalanceOf(ctx, a.Address)
		if err != nil {
			return fmt.Errorf("read balance of %s: %w", a.Name, err)
		}
		info.Accounts = append(info.Accounts, AccountInfo{Name: a.Name, Role: role, Address: a.Address.Hex(), KeyFile: a.KeyFile, Balance: bal.String()})
		return nil
	}
	errs := []error{add("deployer", c.Deployer), add("facilitator", c.Facilitator), add("seller", c.Seller)}
	for _, b := range c.Buyers {
		errs = append(errs, add("buyer", b))
	}
	return info, errors.Join(errs...)
}

func printTable(w io.Writer, info ChainInfo) error {
	tok := info.Token
	fmt.Fprintf(w, "RPC URL:   %s\n", info.RPCURL)
	fmt.Fprintf(w, "Chain:     %s, chain id %d (%s)\n", info.Network, info.ChainID, evm.DevChainName)
	fmt.Fprintf(w, "Token:     %s %s, %d decimals, EIP-712 name %q version %q\n", tok.Symbol, tok.Address.Hex(), tok.Decimals, tok.EIP712Name, tok.EIP712Version)
	fmt.Fprintf(w, "Key files: %s (mode 0600)\n\n", info.KeyDir)
	t := cmdutil.NewTable(w, "ACCOUNT", "ROLE", "ADDRESS", tok.Symbol, "KEY FILE")
	for _, a := range info.Accounts {
		bal, _ := evm.ParseAtomic(a.Balance)
		t.Row(a.Name, role(a.Role), a.Address, evm.FormatAmount(bal, tok.Decimals), a.KeyFile)
	}
	return t.Flush()
}

func role(r string) string {
	switch r {
	case "deployer":
		return "token owner (mints)"
	case "facilitator":
		return "pays gas for settlements"
	case "seller":
		return "receives payments"
	case "buyer":
		return "pays"
	}
	return r
}
