package x402cmd

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/evm"
)

func vector(t *testing.T, name string) string {
	b, err := os.ReadFile("../../../testdata/x402/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func run(t *testing.T, args []string, stdin string) (string, error) {
	f, ios := cmdutil.NewTestFactory()
	ios.In = strings.NewReader(stdin)
	f.Global.Output = "table"
	cmd := NewCmdDecode(f, nil)
	for i, a := range args {
		if a == "-o" && i+1 < len(args) {
			f.Global.Output = args[i+1]
			args = append(args[:i:i], args[i+2:]...)
			break
		}
	}
	cmd.SetArgs(args)
	cmd.SetOut(ios.Out)
	cmd.SetErr(ios.ErrOut)
	err := cmd.Execute()
	return ios.Out.(interface{ String() string }).String(), err
}

func TestDecodeSpecVectorMatchesFrom(t *testing.T) {
	for _, name := range []string{"spec-v2-payment-signature.txt", "spec-v1-x-payment.txt"} {
		out, err := run(t, []string{vector(t, name)}, "")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !strings.Contains(out, "OK, the signature matches from") || !strings.Contains(out, "0.01 USDC") {
			t.Fatalf("%s output:\n%s", name, out)
		}
	}
}

func TestDecodeWrongDomainExitsNonZero(t *testing.T) {
	out, err := run(t, []string{"--eip712-name", "USD Coin", vector(t, "spec-v2-payment-signature.txt")}, "")
	var exit *cmdutil.ExitError
	if !errors.As(err, &exit) || exit.Code != 1 {
		t.Fatalf("want exit 1, got %v", err)
	}
	if !strings.Contains(out, "MISMATCH") {
		t.Fatalf("output:\n%s", out)
	}
}

func TestDecodeStdinJSON(t *testing.T) {
	out, err := run(t, []string{"-", "-o", "json"}, vector(t, "spec-v2-payment-signature.txt")+"\n")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Kind    string `json:"kind"`
		Version int    `json:"x402Version"`
		Value   map[string]any
		Signer  *evm.SignerCheck
	}
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if d.Kind != "payment" || d.Version != 2 || d.Signer == nil || !d.Signer.Matches || d.Value["accepted"] == nil {
		t.Fatalf("decoded: %+v", d)
	}
}

func TestDecodeMalformed(t *testing.T) {
	_, err := run(t, []string{"!!!not-base64"}, "")
	if err == nil || !strings.Contains(err.Error(), "not base64") {
		t.Fatalf("want a clear base64 error, got %v", err)
	}
}

func TestDecodeChallengeAndSettlement(t *testing.T) {
	// {"x402Version":1,"error":"x","accepts":[]} is a challenge with nothing to pay.
	out, err := run(t, []string{"eyJ4NDAyVmVyc2lvbiI6MSwiZXJyb3IiOiJ4IiwiYWNjZXB0cyI6W119"}, "")
	if err != nil || !strings.Contains(out, "402 challenge") || !strings.Contains(out, "Problem:") {
		t.Fatalf("challenge: %v\n%s", err, out)
	}
	// {"success":true,"transaction":"0xab","network":"eip155:8453"}
	out, err = run(t, []string{"eyJzdWNjZXNzIjp0cnVlLCJ0cmFuc2FjdGlvbiI6IjB4YWIiLCJuZXR3b3JrIjoiZWlwMTU1Ojg0NTMifQ=="}, "")
	if err != nil || !strings.Contains(out, "settlement result") {
		t.Fatalf("settlement: %v\n%s", err, out)
	}
}
