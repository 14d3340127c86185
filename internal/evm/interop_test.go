package evm

import (
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/obolstack/obol/internal/x402"
)

// Conformance of the EIP-712/EIP-3009 layer against the x402
// specification's signed vector, read from the published header values in
// testdata/x402/interop.

func specPayment(t *testing.T, file, header string) *x402.Payment {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "x402", "interop", file))
	if err != nil {
		t.Fatal(err)
	}
	p, err := x402.DecodePayment(header, string(b))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestInteropSpecHeadersRecoverWithRegistryDomain(t *testing.T) {
	reg := NewRegistry()
	for _, tc := range []struct{ file, header string }{
		{"v2-payment-signature.header", x402.HeaderPaymentSignature},
		{"v1-x-payment.header", x402.HeaderXPayment},
	} {
		p := specPayment(t, tc.file, tc.header)
		// The domain comes from the registry: chain from the payment's
		// network (v1 name or CAIP-2), token from the asset.
		chain, err := reg.Chain(p.Network)
		if err != nil || chain.CAIP2 != "eip155:84532" || chain.ChainID != 84532 {
			t.Fatalf("%s: network %q → %+v %v", tc.file, p.Network, chain, err)
		}
		tok, err := reg.Token(chain.CAIP2, "0x036CbD53842c5426634e7929541eC2318f3dCF7e")
		if err != nil {
			t.Fatal(err)
		}
		d := tok.Domain(chain.ChainID)
		if d.Name != "USDC" || d.Version != "2" || d.VerifyingContract != common.HexToAddress("0x036CbD53842c5426634e7929541eC2318f3dCF7e") {
			t.Fatalf("base-sepolia USDC domain %+v", d)
		}
		if p.Version == x402.Version2 {
			// ...and agrees with what the requirement's extra says.
			if e := p.V2.Accepted.Extra; e == nil || e.Name != d.Name || e.Version != d.Version {
				t.Fatalf("extra %+v vs registry domain %+v", e, d)
			}
		}
		a, err := AuthorizationFromWire(p.Exact.Authorization)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := DecodeSignature(p.Exact.Signature)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := Recover(d, a, sig); err != nil || got != a.From {
			t.Fatalf("%s: recovered %s (%v), want %s", tc.file, got.Hex(), err, a.From.Hex())
		}
		// Expired since February 2025: only an injected clock accepts it.
		if err := CheckWindow(a, time.Unix(1740672100, 0), 6*time.Second); err != nil {
			t.Fatalf("window at signing time: %v", err)
		}
		if err := CheckWindow(a, time.Unix(1740672150, 0), 6*time.Second); err == nil {
			t.Fatal("less than 6 s left must be refused")
		}
		// Our wire rendering of the parsed authorization is the spec's.
		if a.Wire() != p.Exact.Authorization {
			t.Fatalf("wire %+v, want %+v", a.Wire(), p.Exact.Authorization)
		}
	}
	// Base mainnet USDC signs as "USD Coin".
	tok, err := reg.Token("base", "")
	if err != nil || tok.EIP712Name != "USD Coin" || tok.EIP712Version != "2" {
		t.Fatalf("base USDC: %+v %v", tok, err)
	}
}

func TestInteropSignatureForms(t *testing.T) {
	p := specPayment(t, "v2-payment-signature.header", x402.HeaderPaymentSignature)
	a, _ := AuthorizationFromWire(p.Exact.Authorization)
	d := Domain{Name: "USDC", Version: "2", ChainID: big.NewInt(84532), VerifyingContract: common.HexToAddress("0x036CbD53842c5426634e7929541eC2318f3dCF7e")}
	sig, _ := DecodeSignature(p.Exact.Signature)
	if sig[64] != 27 && sig[64] != 28 {
		t.Fatalf("the spec's signature has v=%d", sig[64])
	}

	// v as 0/1 (some signers emit it) recovers the same address.
	low := append([]byte(nil), sig...)
	low[64] -= 27
	if got, err := Recover(d, a, low); err != nil || got != a.From {
		t.Fatalf("v=%d: %s %v", low[64], got.Hex(), err)
	}
	// Any other v is refused.
	bad := append([]byte(nil), sig...)
	bad[64] = 29
	if _, err := Recover(d, a, bad); err == nil {
		t.Fatal("v=29 accepted")
	}
	// Upper-case hex and a 0X prefix decode to the same bytes.
	up, err := DecodeSignature("0X" + strings.ToUpper(p.Exact.Signature[2:]))
	if err != nil || string(up) != string(sig) {
		t.Fatalf("0X/upper-case signature: %v", err)
	}
	// An all-lower-case or all-upper-case address is the same address.
	w := p.Exact.Authorization
	w.From, w.To = strings.ToLower(w.From), "0x"+strings.ToUpper(w.To[2:])
	w.Nonce = "0x" + strings.ToUpper(w.Nonce[2:])
	b, err := AuthorizationFromWire(w)
	if err != nil || b.From != a.From || b.To != a.To || b.Nonce != a.Nonce {
		t.Fatalf("case-insensitive addresses/nonce: %+v %v", b, err)
	}
	// The nonce must be exactly 32 bytes of 0x-hex; a decimal or short
	// nonce would make one authorization look like several.
	for _, n := range []string{"12345", "0x" + strings.Repeat("ab", 31), p.Exact.Authorization.Nonce[2:]} {
		w := p.Exact.Authorization
		w.Nonce = n
		if _, err := AuthorizationFromWire(w); err == nil {
			t.Fatalf("nonce %q accepted", n)
		}
	}
}
