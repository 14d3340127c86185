package devcmd

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/devstack"
)

func TestDevFlags(t *testing.T) {
	t.Parallel()
	f, _ := cmdutil.NewTestFactory()
	var got *RunOptions
	cmd := &cobra.Command{Use: "dev"}
	bindRun(f, cmd, func(o *RunOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"--pay", "5", "--exit-after", "--listen", "127.0.0.1:0"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got.Pay != 5 || !got.ExitAfter || got.Listen != "127.0.0.1:0" || got.Price != "0.001" {
		t.Fatalf("options %+v", got)
	}
	cmd = &cobra.Command{Use: "dev"}
	bindRun(f, cmd, func(o *RunOptions) error { return nil })
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetArgs([]string{"--pay", "-1"})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "--pay") {
		t.Fatalf("negative --pay: %v", err)
	}
}

func TestDevPayExitAfter(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ios, _, out, errOut := cmdutil.Test()
	var ready *devstack.Stack
	err := devRun(&RunOptions{IO: ios, Output: cmdutil.OutputTable, LogLevel: "info",
		Listen: "127.0.0.1:0", Pay: 3, ExitAfter: true, Price: "0.0025",
		KeyDir: filepath.Join(dir, "keys"), StackFile: filepath.Join(dir, "stack.json"),
		Ready: func(s *devstack.Stack) { ready = s },
	})
	if err != nil {
		t.Fatalf("obol dev: %v\n%s\n%s", err, out, errOut)
	}
	text := out.String()
	for _, want := range []string{
		"✓ dev chain", "✓ facilitator", "✓ verifier", "Ready in",
		"Price           0.0025 USDC per call (offer default/demo)",
		"Buyer key file  " + filepath.Join(dir, "keys", "buyer-1.key"),
		"#3", "paid 0.0025 USDC",
		"default/demo", "obol-dev (eip155:1337)", "0.0075 USDC", "0s ago", "50%",
		"Stopped the verifier, upstream, facilitator and chain",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// Charged calls column: exactly 3.
	if !regexp.MustCompile(`default/demo\s+obol-dev \(eip155:1337\)\s+3\s+0\.0075 USDC`).MatchString(text) {
		t.Errorf("summary row wrong:\n%s", text)
	}
	if ready == nil {
		t.Fatal("Ready not called")
	}
	if t.Failed() {
		t.Logf("output:\n%s\nstderr:\n%s", text, errOut)
	}
}

func TestDevJSON(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ios, _, out, errOut := cmdutil.Test()
	err := devRun(&RunOptions{IO: ios, Output: cmdutil.OutputJSON, Listen: "127.0.0.1:0", Pay: 2, ExitAfter: true, Price: "0.001",
		KeyDir: filepath.Join(dir, "keys"), StackFile: filepath.Join(dir, "stack.json")})
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut)
	}
	var doc struct {
		Stack struct {
			VerifierURL string `json:"verifierURL"`
		} `json:"stack"`
		Calls    []devstack.Call `json:"calls"`
		Earnings struct {
			Offers []struct {
				ChargedCalls struct{ Lifetime int64 }    `json:"chargedCalls"`
				Revenue      []struct{ Lifetime string } `json:"revenue"`
			} `json:"offers"`
		} `json:"earnings"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("stdout is not one JSON document: %v\n%s", err, out)
	}
	if len(doc.Calls) != 2 || len(doc.Earnings.Offers) != 1 || doc.Earnings.Offers[0].ChargedCalls.Lifetime != 2 ||
		doc.Earnings.Offers[0].Revenue[0].Lifetime != "0.002" || doc.Stack.VerifierURL == "" {
		t.Fatalf("document %s", out)
	}
	// Calls print body, payment and receipt as `obol buy pay -o json` does.
	var raw struct {
		Calls []map[string]json.RawMessage `json:"calls"`
	}
	if err := json.Unmarshal(out.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	var pay struct {
		Amount       string `json:"amount"`
		AmountAtomic string `json:"amountAtomic"`
		Symbol       string `json:"symbol"`
		Network      string `json:"network"`
		Signed       bool   `json:"signed"`
	}
	var receipt struct {
		Success     bool   `json:"success"`
		Transaction string `json:"transaction"`
	}
	c := raw.Calls[0]
	if err := json.Unmarshal(c["payment"], &pay); err != nil || pay.Amount != "0.001" || pay.AmountAtomic != "1000" ||
		pay.Symbol != "USDC" || pay.Network != "eip155:1337" || !pay.Signed {
		t.Errorf("calls[0].payment = %s (%v), want buy pay's payment shape", c["payment"], err)
	}
	if err := json.Unmarshal(c["receipt"], &receipt); err != nil || !receipt.Success || len(receipt.Transaction) != 66 {
		t.Errorf("calls[0].receipt = %s (%v), want buy pay's receipt shape", c["receipt"], err)
	}
	if b := bytes.TrimSpace(c["body"]); len(b) == 0 || b[0] != '{' {
		t.Errorf("calls[0].body = %s, want the upstream's JSON embedded as JSON", c["body"])
	}
	if !bytes.Contains(errOut.Bytes(), []byte("✓ verifier")) {
		t.Fatalf("progress should go to stderr with -o json:\n%s", errOut)
	}
}
