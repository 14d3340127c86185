// Package root assembles the obol command tree.
package root

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/obolstack/obol/internal/cli/buy"
	"github.com/obolstack/obol/internal/cli/buyercmd"
	"github.com/obolstack/obol/internal/cli/chains"
	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/cli/controllercmd"
	"github.com/obolstack/obol/internal/cli/devcmd"
	earningscmd "github.com/obolstack/obol/internal/cli/earnings"
	"github.com/obolstack/obol/internal/cli/facilitatorcmd"
	"github.com/obolstack/obol/internal/cli/sell"
	"github.com/obolstack/obol/internal/cli/stackcmd"
	"github.com/obolstack/obol/internal/cli/verifiercmd"
	"github.com/obolstack/obol/internal/cli/version"
	"github.com/obolstack/obol/internal/cli/x402cmd"
)

// NewCmdRoot builds the root command and every subcommand on f.
func NewCmdRoot(f *cmdutil.Factory) *cobra.Command {
	g := f.Global
	cmd := &cobra.Command{
		Use:   "obol",
		Short: "Sell and buy API access with x402 on a Kubernetes stack",
		Long: `obol lets the operator of a Kubernetes stack sell and buy API access with
x402 (HTTP 402 "Payment Required" answered by a signed stablecoin transfer)
and see the money move.`,
		Example: `  # run the whole payment loop on this machine
  obol dev --pay 5

  # pay for one call to an x402 API
  obol buy pay https://api.example.com/weather --key-file buyer.key --max-amount 0.01`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			lvl, err := cmdutil.ParseLogLevel(g.LogLevel)
			if err != nil {
				return err
			}
			f.Logger = slog.New(slog.NewTextHandler(f.IO.ErrOut, &slog.HandlerOptions{Level: lvl}))
			return cmdutil.ValidateOutput(g.Output)
		},
	}
	cmd.SetIn(f.IO.In)
	cmd.SetOut(f.IO.Out)
	cmd.SetErr(f.IO.ErrOut)
	cmd.SuggestionsMinimumDistance = 2

	pf := cmd.PersistentFlags()
	pf.StringVar(&g.Kubeconfig, "kubeconfig", "", "path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	pf.StringVar(&g.Context, "context", "", "kubeconfig context to use")
	pf.StringVarP(&g.Namespace, "namespace", "n", "", "Kubernetes namespace (default: the context's namespace)")
	pf.StringVarP(&g.Output, "output", "o", cmdutil.OutputTable, "output format: table, json or yaml")
	pf.StringVar(&g.LogLevel, "log-level", "info", "log level: debug, info, warn or error")

	cmd.AddCommand(
		version.NewCmdVersion(f, nil),
		newCmdCompletion(f),
		x402cmd.NewCmdX402(f),
		chains.NewCmdChains(f, nil),
		buy.NewCmdBuy(f),
		buyercmd.NewCmdBuyer(f),
		facilitatorcmd.NewCmdFacilitator(f),
		earningscmd.NewCmdEarnings(f, nil),
		sell.NewCmdSell(f),
		controllercmd.NewCmdController(f, nil),
		verifiercmd.NewCmdVerifier(f),
		stackcmd.NewCmdStack(f),
		devcmd.NewCmdDev(f),
	)
	rejectUnknownSubcommands(cmd)
	return cmd
}

// rejectUnknownSubcommands makes every command group below the root (obol
// buy, obol stack, ...) fail on an unknown subcommand, with suggestions,
// instead of cobra's default of printing the group's help and exiting 0 —
// which hides a typo such as `obol buy py URL` from scripts.
func rejectUnknownSubcommands(root *cobra.Command) {
	for _, c := range root.Commands() {
		rejectUnknownSubcommands(c)
		if !c.HasSubCommands() || c.Runnable() {
			continue
		}
		c.SuggestionsMinimumDistance = 2
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			var names []string
			for _, sub := range cmd.Commands() {
				if sub.IsAvailableCommand() {
					names = append(names, sub.Name())
				}
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += "\n\nDid you mean this?\n\t" + strings.Join(s, "\n\t")
			}
			return fmt.Errorf("%s\nAvailable commands: %s\nRun '%s --help' for details", msg, strings.Join(names, ", "), cmd.CommandPath())
		}
	}
}

// SignalContext is the root context of the obol process: the first SIGINT
// or SIGTERM ends it (servers stop accepting and drain); after that the
// default handling is back, so a second Ctrl-C stops the process at once.
func SignalContext() (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	return ctx, stop
}

// Main runs obol with args and returns the process exit code.
func Main(args []string, in io.Reader, out, errOut io.Writer) int {
	return MainContext(context.Background(), args, in, out, errOut)
}

// MainContext runs obol with args under ctx, the one context every command
// gets from cmd.Context(): main ends it on SIGINT or SIGTERM, and the
// servers then drain their running requests and return.
func MainContext(ctx context.Context, args []string, in io.Reader, out, errOut io.Writer) int {
	f := &cmdutil.Factory{
		IO:     cmdutil.System(in, out, errOut),
		Global: &cmdutil.GlobalOptions{},
		Now:    time.Now,
		Logger: slog.New(slog.NewTextHandler(errOut, nil)),
	}
	cmd := NewCmdRoot(f)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	return handleError(cmd, errOut, err)
}

func handleError(root *cobra.Command, errOut io.Writer, err error) int {
	if err == nil {
		return 0
	}
	var exit *cmdutil.ExitError
	code := 1
	if errors.As(err, &exit) {
		code = exit.Code
	}
	if errors.Is(err, cmdutil.ErrSilent) {
		return code
	}
	msg := err.Error()
	fmt.Fprintf(errOut, "Error: %s\n", strings.TrimRight(msg, "\n"))
	if strings.HasPrefix(msg, "unknown command") && strings.Contains(msg, fmt.Sprintf("for %q", root.CommandPath())) && !strings.Contains(msg, "Did you mean") {
		var names []string
		for _, c := range root.Commands() {
			if c.IsAvailableCommand() {
				names = append(names, c.Name())
			}
		}
		fmt.Fprintf(errOut, "Available commands: %s\nRun '%s --help' for details.\n", strings.Join(names, ", "), root.CommandPath())
	}
	var flagErr *cmdutil.FlagError
	if errors.As(err, &flagErr) || strings.HasPrefix(msg, "unknown flag") || strings.HasPrefix(msg, "unknown shorthand flag") || strings.Contains(msg, "flag needs an argument") || isArgCountError(msg) {
		fmt.Fprintln(errOut, "Run 'obol --help' or add --help to the command for usage.")
		if code == 1 {
			code = 2
		}
	}
	return code
}

// isArgCountError recognises cobra's positional-argument errors ("accepts 1
// arg(s), received 0", "requires at least 1 arg(s)"): usage errors, like a
// bad flag.
func isArgCountError(msg string) bool {
	return strings.Contains(msg, " arg(s), received ") || strings.HasPrefix(msg, "requires at least ") || strings.HasPrefix(msg, "requires at most ")
}
