// Package devcmd implements `obol dev`: the local development loop, and
// `obol dev chain`, which runs only the development chain.
package devcmd

import (
	"github.com/spf13/cobra"

	"github.com/obolstack/obol/internal/cli/cmdutil"
)

// NewCmdDev builds `obol dev` with its subcommands.
func NewCmdDev(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run x402 payments locally on a development chain",
		Long: `Run obol's payment loop on this machine, on an in-memory development chain
with obol's own EIP-3009 token (ObolUSD, signing like USDC), so you can see
money move without a cluster or a public chain.

obol dev starts the chain and token, a facilitator, a verifier in proxy mode
in front of a small demo JSON API (/weather, /joke), and funds a buyer whose
key file it prints. With --pay N it makes N paid calls and prints the
earnings read from the verifier's own /metrics. It writes the stack's
details to a stack file that ` + "`obol buy pay`" + ` reads, so paying it from
another terminal needs only the buyer's key file.

Subcommands run single parts of the loop.`,
		Example: `  # the whole loop: chain, facilitator, verifier, demo API; 5 paid calls, then the earnings
  obol dev --pay 5 --exit-after

  # keep it running and pay it from another terminal with obol buy pay
  obol dev

  # run the development chain and its JSON-RPC endpoint until Ctrl-C
  obol dev chain --listen 127.0.0.1:8545`,
		Args: cobra.NoArgs,
	}
	// `obol dev` itself: the whole loop (run.go).
	bindRun(f, cmd, nil)
	cmd.AddCommand(NewCmdChain(f, nil), NewCmdKeys(f, nil), NewCmdUpstream(f, nil), NewCmdForward(f, nil))
	return cmd
}
