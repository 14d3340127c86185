package facilitator

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/x402"
)

// TestScriptedPayment signs one payment with a buyer key and has a running
// facilitator verify and settle it (docs/facilitator.md). It runs only when
// OBOL_FACILITATOR_URL is set:
//
//	OBOL_FACILITATOR_URL  facilitator base URL, e.g. http://127.0.0.1:4021
//	OBOL_BUYER_KEY_FILE   the buyer's key file (hex or keystore, mode 0600)
//	OBOL_PAY_TO           the seller's address
//	OBOL_TOKEN            the token's address
//	OBOL_AMOUNT           atomic units (default 1000 = 0.001 of a 6-decimal token)
//	OBOL_CHAIN            CAIP-2 id (default eip155:1337)
//	OBOL_TOKEN_NAME, OBOL_TOKEN_VERSION  EIP-712 domain (default USDC, 2)
//	OBOL_X402_VERSION     1 or 2 (default 2)
func TestScriptedPayment(t *testing.T) {
	t.Parallel()
	base := os.Getenv("OBOL_FACILITATOR_URL")
	if base == "" {
		t.Skip("set OBOL_FACILITATOR_URL (and OBOL_BUYER_KEY_FILE, OBOL_PAY_TO, OBOL_TOKEN) to pay through a running facilitator; see docs/facilitator.md")
	}
	env := func(k, def string) string {
		if v := os.Getenv(k); v != "" {
			return v
		}
		return def
	}
	key, err := evm.LoadKey(os.Getenv("OBOL_BUYER_KEY_FILE"), evm.KeyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	chainID, ok := new(big.Int).SetString(env("OBOL_CHAIN", "eip155:1337")[len("eip155:"):], 10)
	if !ok {
		t.Fatalf("OBOL_CHAIN %q: want eip155:<id>", os.Getenv("OBOL_CHAIN"))
	}
	amount, err := evm.ParseAtomic(env("OBOL_AMOUNT", "1000"))
	if err != nil {
		t.Fatal(err)
	}
	version := x402.Version2
	if env("OBOL_X402_VERSION", "2") == "1" {
		version = x402.Version1
	}
	req := x402.Requirement{
		Scheme: x402.SchemeExact, Network: env("OBOL_CHAIN", "eip155:1337"), Amount: amount.String(),
		Asset: common.HexToAddress(os.Getenv("OBOL_TOKEN")).Hex(), PayTo: common.HexToAddress(os.Getenv("OBOL_PAY_TO")).Hex(),
		MaxTimeoutSeconds: 120, Extra: x402.Extra{Name: env("OBOL_TOKEN_NAME", "USDC"), Version: env("OBOL_TOKEN_VERSION", "2")},
	}
	a, err := evm.NewAuthorization(crypto.PubkeyToAddress(key.PublicKey), common.HexToAddress(req.PayTo), amount, time.Now(), 120*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	d := evm.Domain{Name: req.Extra.Name, Version: req.Extra.Version, ChainID: chainID, VerifyingContract: common.HexToAddress(req.Asset)}
	sig, err := evm.Sign(key, d, a)
	if err != nil {
		t.Fatal(err)
	}
	vr := buildRequest(t, version, req, req, x402.ExactEVMPayload{Signature: hexutil.Encode(sig), Authorization: a.Wire()})
	cl, err := NewClient(base)
	if err != nil {
		t.Fatal(err)
	}
	show := func(what string, v any) {
		b, _ := json.MarshalIndent(v, "", "  ")
		fmt.Printf("%s\n%s\n", what, b)
	}
	show("request:", vr)
	v, err := cl.Verify(context.Background(), vr)
	if err != nil {
		t.Fatal(err)
	}
	show("verify:", v)
	if !v.IsValid {
		t.Fatalf("not valid: %s %s", v.InvalidReason, v.InvalidMessage)
	}
	first := x402.WithIdempotencyKey(context.Background(), "demo-payment-1")
	s, err := cl.Settle(first, vr)
	if err != nil {
		t.Fatal(err)
	}
	show("settle (Idempotency-Key: demo-payment-1):", s)
	if !s.Success {
		t.Fatalf("not settled: %s %s", s.ErrorReason, s.ErrorMessage)
	}
	again, err := cl.Settle(first, vr)
	if err != nil {
		t.Fatal(err)
	}
	show("settle again, same key (a caller that lost the answer):", again)
	if !again.Success || again.Transaction != s.Transaction {
		t.Fatal("a repeat did not answer the same transaction")
	}
	s2, err := cl.Settle(x402.WithIdempotencyKey(context.Background(), "demo-payment-2"), vr)
	if err != nil {
		t.Fatal(err)
	}
	show("settle again, another key (a replay):", s2)
	if s2.Success {
		t.Fatal("a replay settled")
	}
}
