// Package buy implements `obol buy`: paying for x402 APIs from this machine
// (`obol buy pay`) and, later, pre-authorized purchases for the cluster.
package buy

import (
	"github.com/spf13/cobra"

	"github.com/obolstack/obol/internal/cli/cmdutil"
)

// NewCmdBuy builds the `obol buy` command group.
func NewCmdBuy(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "buy",
		Short: "Pay for x402 APIs",
		Long: `Pay for APIs that answer HTTP 402 with an x402 challenge, using a key on
this machine and a per-payment cap you set.`,
		Example: `  # pay for one call, at most 0.01 USDC
  obol buy pay https://api.example.com/weather --key-file buyer.key --max-amount 0.01

  # what does a seller sell, at what price?
  obol buy discover https://api.example.com`,
	}
	cmd.AddCommand(NewCmdPay(f, nil), NewCmdCreate(f, nil), NewCmdRefill(f, nil), NewCmdList(f, nil), NewCmdStatus(f, nil), NewCmdDelete(f, nil), NewCmdDiscover(f, nil))
	return cmd
}
