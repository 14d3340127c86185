// Package x402cmd implements `obol x402`, tools for debugging payments.
package x402cmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/x402"
)

// NewCmdX402 is the `obol x402` parent command.
func NewCmdX402(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "x402",
		Short: "Inspect x402 protocol messages",
	}
	cmd.AddCommand(NewCmdDecode(f, nil))
	return cmd
}

// DecodeOptions are the inputs of `obol x402 decode`.
type DecodeOptions struct {
	IO       *cmdutil.IOStreams
	Output   string
	Value    string
	Registry *evm.Registry
	Domain   evm.DomainOverride
}

// NewCmdDecode builds `obol x402 decode`.
func NewCmdDecode(f *cmdutil.Factory, runF func(*DecodeOptions) error) *cobra.Command {
	opts := &DecodeOptions{IO: f.IO, Registry: evm.NewRegistry()}
	cmd := &cobra.Command{
		Use:   "decode [VALUE|-]",
		Short: "Decode an x402 header value and check its signature",
		Long: `Decode any x402 header value: PAYMENT-REQUIRED, PAYMENT-SIGNATURE, X-PAYMENT,
PAYMENT-RESPONSE or X-PAYMENT-RESPONSE. The value is read from the argument, or
from standard input when the argument is "-" or missing.

For an exact/EIP-3009 payment the signer is recovered with the token's EIP-712
domain from the chain registry (or from the payment itself, or the flags) and
compared with the authorization's "from". The command exits 1 when they differ.`,
		Example: `  # a payment header copied from a request log
  obol x402 decode eyJ4NDAyVmVyc2lvbiI6Mi...

  # from a file or a pipe, as JSON
  obol x402 decode - -o json < header.txt

  # a token the registry does not know
  obol x402 decode "$HDR" --chain-id 1337 --asset 0x2b1894172E4e079140C3DaE53394356262b7e258 --eip712-name USDC --eip712-version 2`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Output = f.Global.Output
			if len(args) == 1 && args[0] != "-" {
				opts.Value = args[0]
			} else {
				if len(args) == 0 && f.IO.IsStdinTTY() {
					return &cmdutil.FlagError{Err: errors.New("give a header value as the argument, or pipe it in with '-'")}
				}
				b, err := io.ReadAll(io.LimitReader(f.IO.In, 4*x402.MaxHeaderBytes))
				if err != nil {
					return fmt.Errorf("read standard input: %w", err)
				}
				opts.Value = string(b)
			}
			if runF != nil {
				return runF(opts)
			}
			return DecodeRun(opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Domain.Name, "eip712-name", "", "EIP-712 domain name to verify with (default: from the registry)")
	fl.StringVar(&opts.Domain.Version, "eip712-version", "", "EIP-712 domain version (default: from the registry)")
	fl.Int64Var(&opts.Domain.ChainID, "chain-id", 0, "chain id of the domain (default: from the payment's network)")
	fl.StringVar(&opts.Domain.Asset, "asset", "", "token contract, the domain's verifyingContract (default: the payment's asset)")
	return cmd
}

// Decoded is the JSON form of a decoded header.
type Decoded struct {
	Kind    string           `json:"kind"` // paymentRequired | payment | settlementResponse | unknown
	Version int              `json:"x402Version,omitempty"`
	Value   json.RawMessage  `json:"value"`
	Signer  *evm.SignerCheck `json:"signer,omitempty"`
	Problem string           `json:"problem,omitempty"`
}

// Decode classifies and decodes a header value.
func Decode(reg *evm.Registry, value string, o evm.DomainOverride) (*Decoded, error) {
	raw, err := x402.DecodeHeaderJSON("header value", strings.TrimSpace(value))
	if err != nil {
		return nil, err
	}
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(raw, &keys); err != nil {
		return nil, fmt.Errorf("decoded value is not a JSON object: %w", err)
	}
	d := &Decoded{Kind: "unknown", Value: raw}
	if v, ok := keys["x402Version"]; ok {
		_ = json.Unmarshal(v, &d.Version)
	}
	_, hasAccepts := keys["accepts"]
	_, hasPayload := keys["payload"]
	_, hasSuccess := keys["success"]
	switch {
	case hasAccepts:
		d.Kind = "paymentRequired"
		if _, err := x402.ParseChallenge(nil, raw); err != nil {
			d.Problem = err.Error()
		}
	case hasPayload:
		d.Kind = "payment"
		p, err := x402.ParsePaymentJSON("payment", raw)
		if err != nil {
			d.Problem = err.Error()
			break
		}
		if p.Exact != nil {
			check, err := evm.CheckPaymentSigner(reg, p, o)
			if err != nil {
				d.Problem = "cannot check signature: " + err.Error()
			} else {
				d.Signer = check
			}
		}
	case hasSuccess:
		d.Kind = "settlementResponse"
	}
	return d, nil
}

// DecodeRun decodes and prints.
func DecodeRun(opts *DecodeOptions) error {
	d, err := Decode(opts.Registry, opts.Value, opts.Domain)
	if err != nil {
		return err
	}
	err = cmdutil.PrintStructured(opts.IO.Out, opts.Output, d, func(w io.Writer) error { return printHuman(w, d) })
	if err != nil {
		return err
	}
	if d.Signer != nil && !d.Signer.Matches {
		return &cmdutil.ExitError{Code: 1, Err: cmdutil.ErrSilent}
	}
	return nil
}

var kindTitle = map[string]string{
	"paymentRequired":    "402 challenge (PAYMENT-REQUIRED)",
	"payment":            "payment (PAYMENT-SIGNATURE / X-PAYMENT)",
	"settlementResponse": "settlement result (PAYMENT-RESPONSE / X-PAYMENT-RESPONSE)",
	"unknown":            "unrecognised JSON",
}

func printHuman(w io.Writer, d *Decoded) error {
	fmt.Fprintf(w, "Kind:     %s\n", kindTitle[d.Kind])
	if d.Version != 0 {
		fmt.Fprintf(w, "Version:  x402 v%d\n", d.Version)
	}
	var pretty any
	_ = json.Unmarshal(d.Value, &pretty)
	b, _ := json.MarshalIndent(pretty, "", "  ")
	fmt.Fprintf(w, "\n%s\n", b)
	if d.Problem != "" {
		fmt.Fprintf(w, "\nProblem:  %s\n", d.Problem)
	}
	if s := d.Signer; s != nil {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "Signature check (EIP-712 domain from %s)\n", s.DomainFrom)
		fmt.Fprintf(w, "  domain:     name=%q version=%q chainId=%d verifyingContract=%s\n", s.Domain.Name, s.Domain.Version, s.Domain.ChainID, s.Domain.VerifyingContract)
		if s.Amount != "" {
			fmt.Fprintf(w, "  amount:     %s %s\n", s.Amount, s.TokenSymbol)
		}
		fmt.Fprintf(w, "  from:       %s\n", s.From.Hex())
		fmt.Fprintf(w, "  recovered:  %s\n", s.Recovered.Hex())
		if s.Matches {
			fmt.Fprintln(w, "  result:     OK, the signature matches from")
		} else {
			fmt.Fprintln(w, "  result:     MISMATCH, the signature does not recover to from (wrong EIP-712 domain, or a forged payment)")
		}
	}
	return nil
}
