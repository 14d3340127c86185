// Package chains implements `obol chains`.
package chains

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/evm"
)

// Options are the inputs of `obol chains`.
type Options struct {
	IO       *cmdutil.IOStreams
	Output   string
	Registry *evm.Registry
}

// Entry is one chain with its tokens, the JSON form.
type Entry struct {
	evm.Chain
	Tokens []evm.Token `json:"tokens"`
}

// NewCmdChains builds `obol chains`.
func NewCmdChains(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	opts := &Options{IO: f.IO, Registry: evm.NewRegistry()}
	return &cobra.Command{
		Use:   "chains",
		Short: "List the chains and stablecoins obol knows",
		Long: `List the EVM chains obol can charge on, with their CAIP-2 ids, the names and
aliases accepted wherever a chain is typed, and each chain's USDC with its
EIP-712 domain. The development chain's token is known once obol dev runs.`,
		Example: "  obol chains\n  obol chains -o json | jq '.[].caip2'",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Output = f.Global.Output
			if runF != nil {
				return runF(opts)
			}
			return chainsRun(opts)
		},
	}
}

func chainsRun(opts *Options) error {
	var entries []Entry
	for _, c := range opts.Registry.Chains() {
		toks, _ := opts.Registry.Tokens(c.CAIP2)
		if toks == nil {
			toks = []evm.Token{}
		}
		entries = append(entries, Entry{Chain: c, Tokens: toks})
	}
	return cmdutil.PrintStructured(opts.IO.Out, opts.Output, entries, func(w io.Writer) error {
		t := cmdutil.NewTable(w, "NAME", "CAIP-2", "ALIASES", "TOKEN", "ADDRESS", "EIP-712 DOMAIN")
		for _, e := range entries {
			name := e.Name
			if e.Testnet {
				name += " (testnet)"
			}
			if e.Dev {
				name = e.Name + " (local)"
			}
			aliases := strings.Join(e.Aliases, ",")
			if len(e.Tokens) == 0 {
				t.Row(name, e.CAIP2, aliases, "-", "set when `obol dev` runs", "-")
				continue
			}
			for _, tok := range e.Tokens {
				t.Row(name, e.CAIP2, aliases, fmt.Sprintf("%s (%d dp)", tok.Symbol, tok.Decimals), tok.Address.Hex(), fmt.Sprintf("%q v%s", tok.EIP712Name, tok.EIP712Version))
			}
		}
		return t.Flush()
	})
}
