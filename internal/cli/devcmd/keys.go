package devcmd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/devchain"
	"github.com/obolstack/obol/internal/evm"
)

// KeysOptions are the inputs of `obol dev keys`.
type KeysOptions struct {
	IO     *cmdutil.IOStreams
	Output string

	KeyDir       string
	ChainID      int64
	TokenName    string
	TokenVersion string
	Buyers       int
	// WaitRPC, if set, is a chain's JSON-RPC URL to wait for (up to
	// WaitTimeout) after writing the keys, so a client started next finds
	// the chain answering.
	WaitRPC     string
	WaitTimeout time.Duration
	Context     context.Context
}

// NewCmdKeys builds `obol dev keys`; runF replaces keysRun in tests.
func NewCmdKeys(f *cmdutil.Factory, runF func(*KeysOptions) error) *cobra.Command {
	opts := &KeysOptions{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Write the development chain's account keys and print its accounts and token",
		Long: `Write the key files of the development chain's accounts and print the
accounts and the token, without running a chain.

Every development chain (obol dev, obol dev chain, the devnet that
obol stack install --devnet runs in a cluster) has the same accounts, derived
from their names, and deploys its token at the same address. This command
gives a client of a chain running elsewhere what it needs: the facilitator's
key for obol facilitator serve, a funded buyer's key for obol buy, the seller's
address and the token. The keys are public knowledge: never use them on a
real chain.`,
		Example: `  # the keys of a cluster devnet's accounts, and its token, as JSON
  obol dev keys --key-dir ./devnet-keys -o json

  # write the keys, then wait until the chain answers (an init container)
  obol dev keys --key-dir /keys --wait-rpc http://obol-devchain.obol-system.svc:8545`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Output = f.Global.Output
			if opts.KeyDir == "" {
				return &cmdutil.FlagError{Err: fmt.Errorf("--key-dir is required: the directory to write the key files to")}
			}
			if err := checkChainFlags(opts.ChainID, opts.Buyers); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			opts.Context = cmd.Context() // ends on SIGINT/SIGTERM (root.SignalContext)
			return keysRun(opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.KeyDir, "key-dir", "", "directory for the accounts' key files (created 0700; files 0600)")
	fl.Int64Var(&opts.ChainID, "chain-id", evm.DevChainID, "EIP-155 chain id of the chain")
	fl.StringVar(&opts.TokenName, "eip712-name", evm.DevTokenName, "the chain's token name and EIP-712 domain name")
	fl.StringVar(&opts.TokenVersion, "eip712-version", evm.DevTokenVersion, "EIP-712 domain version")
	cmdutil.AliasFlag(fl, "token-name", "eip712-name", f.IO.ErrOut)
	cmdutil.AliasFlag(fl, "token-version", "eip712-version", f.IO.ErrOut)
	fl.IntVar(&opts.Buyers, "buyers", devchain.DefaultBuyers, "number of buyer accounts")
	fl.StringVar(&opts.WaitRPC, "wait-rpc", "", "after writing the keys, wait until the chain at this JSON-RPC URL answers eth_chainId")
	fl.DurationVar(&opts.WaitTimeout, "wait-timeout", 2*time.Minute, "how long --wait-rpc waits")
	return cmd
}

// KeysInfo is what `obol dev keys` prints (the -o json object).
type KeysInfo struct {
	ChainID  int64         `json:"chainId"`
	Network  string        `json:"network"` // CAIP-2
	Token    evm.Token     `json:"token"`
	KeyDir   string        `json:"keyDir"`
	Accounts []AccountInfo `json:"accounts"`
}

func keysRun(opts *KeysOptions) error {
	keyDir, err := filepath.Abs(opts.KeyDir)
	if err != nil {
		return err
	}
	buyers := opts.Buyers
	if buyers == 0 {
		buyers = -1 // devchain: 0 means default, negative means none
	}
	c, err := devchain.Layout(devchain.Config{
		ChainID: opts.ChainID, TokenName: opts.TokenName, TokenVersion: opts.TokenVersion,
		Buyers: buyers, KeyDir: keyDir,
	})
	if err != nil {
		return err
	}
	info := KeysInfo{ChainID: c.ChainID, Network: c.CAIP2(), Token: c.Token, KeyDir: keyDir}
	add := func(role string, a devchain.Account) {
		info.Accounts = append(info.Accounts, AccountInfo{Name: a.Name, Role: role, Address: a.Address.Hex(), KeyFile: a.KeyFile})
	}
	add("deployer", c.Deployer)
	add("facilitator", c.Facilitator)
	add("seller", c.Seller)
	for _, b := range c.Buyers {
		add("buyer", b)
	}
	err = cmdutil.PrintStructured(opts.IO.Out, opts.Output, info, func(w io.Writer) error {
		tok := info.Token
		fmt.Fprintf(w, "Chain:     %s, chain id %d (%s)\n", info.Network, info.ChainID, evm.DevChainName)
		fmt.Fprintf(w, "Token:     %s %s, %d decimals, EIP-712 name %q version %q\n", tok.Symbol, tok.Address.Hex(), tok.Decimals, tok.EIP712Name, tok.EIP712Version)
		fmt.Fprintf(w, "Key files: %s (mode 0600)\n\n", info.KeyDir)
		t := cmdutil.NewTable(w, "ACCOUNT", "ROLE", "ADDRESS", "KEY FILE")
		for _, a := range info.Accounts {
			t.Row(a.Name, role(a.Role), a.Address, a.KeyFile)
		}
		return t.Flush()
	})
	if err != nil || opts.WaitRPC == "" {
		return err
	}
	return waitRPC(opts.Context, opts.IO.ErrOut, opts.WaitRPC, opts.WaitTimeout, c.ChainID)
}

// waitRPC polls eth_chainId at url until it answers with chainID, or the
// timeout passes.
func waitRPC(ctx context.Context, errOut io.Writer, url string, timeout time.Duration, chainID int64) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	want := "0x" + strconv.FormatInt(chainID, 16)
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		got, err := chainIDOf(ctx, client, url)
		if err == nil && got == want {
			fmt.Fprintf(errOut, "chain at %s answers (chain id %d)\n", url, chainID)
			return nil
		}
		if err == nil {
			err = fmt.Errorf("chain id %s, want %s", got, want)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the chain at %s: %w (last: %v)", url, ctx.Err(), last)
		case <-tick.C:
		}
	}
}

func chainIDOf(ctx context.Context, client *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}`))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HTTP %s", resp.Status)
	}
	var out struct {
		Result string `json:"result"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&out); err != nil {
		return "", err
	}
	return out.Result, nil
}
