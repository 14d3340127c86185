package evm

import (
	"crypto/ecdsa"
	"errors"
	"math/big"
	"net/http"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/obolstack/obol/internal/x402"
)

// Sign → encode → decode → recover, for both protocol versions.
func TestSignEncodeDecodeRecover(t *testing.T) {
	key, _ := crypto.GenerateKey()
	from := crypto.PubkeyToAddress(key.PublicKey)
	reg := NewRegistry()
	tok, err := reg.Token("base-sepolia", "")
	if err != nil {
		t.Fatal(err)
	}
	payTo := crypto.PubkeyToAddress(mustKey(t).PublicKey)
	price, _ := ParseAmount("0.001", tok.Decimals)
	now := time.Unix(1_800_000_000, 0)
	req := x402.Requirement{
		Scheme: x402.SchemeExact, Network: "eip155:84532", NetworkV1: "base-sepolia", Amount: price.String(),
		Asset: tok.Address.Hex(), PayTo: payTo.Hex(), MaxTimeoutSeconds: 60,
		Extra: x402.Extra{Name: tok.EIP712Name, Version: tok.EIP712Version},
	}
	for _, version := range []int{x402.Version1, x402.Version2} {
		auth, err := NewAuthorization(from, payTo, price, now, 60*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := Sign(key, tok.Domain(84532), auth)
		if err != nil {
			t.Fatal(err)
		}
		if len(sig) != 65 || (sig[64] != 27 && sig[64] != 28) {
			t.Fatalf("signature shape: len %d v %d", len(sig), sig[64])
		}
		p, err := x402.NewExactPayment(version, req, x402.ExactEVMPayload{Signature: hexutil.Encode(sig), Authorization: auth.Wire()})
		if err != nil {
			t.Fatal(err)
		}
		name, value, err := p.Encode()
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{}
		h.Set(name, value)
		got, err := x402.PaymentFromHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		check, err := CheckPaymentSigner(reg, got, DomainOverride{})
		if err != nil {
			t.Fatal(err)
		}
		if !check.Matches || check.Recovered != from {
			t.Fatalf("v%d: recovered %s, want %s", version, check.Recovered.Hex(), from.Hex())
		}
		a2, _ := AuthorizationFromWire(got.Exact.Authorization)
		if a2.ValidAfter.Int64() != now.Unix()-600 || a2.ValidBefore.Int64() != now.Unix()+60 {
			t.Fatalf("validity window %v..%v", a2.ValidAfter, a2.ValidBefore)
		}
		if err := CheckWindow(a2, now, 6*time.Second); err != nil {
			t.Fatalf("window at now: %v", err)
		}
		if err := CheckWindow(a2, now.Add(55*time.Second), 6*time.Second); !errors.Is(err, ErrExpired) {
			t.Fatalf("window near expiry: want ErrExpired, got %v", err)
		}
		if err := CheckWindow(a2, now.Add(-601*time.Second), 6*time.Second); !errors.Is(err, ErrNotYetValid) {
			t.Fatalf("window before validAfter: want ErrNotYetValid, got %v", err)
		}
	}
}

func TestRecoverRejectsBadSignatures(t *testing.T) {
	a := Authorization{Value: big.NewInt(1), ValidAfter: big.NewInt(0), ValidBefore: big.NewInt(1)}
	d := Domain{Name: "USDC", Version: "2", ChainID: big.NewInt(1)}
	if _, err := Recover(d, a, make([]byte, 64)); !errors.Is(err, ErrSignatureLength) {
		t.Fatalf("64 bytes: %v", err)
	}
	if _, err := Recover(d, a, make([]byte, 130)); !errors.Is(err, ErrSignatureLength) {
		t.Fatalf("smart-wallet length: %v", err)
	}
	sig := make([]byte, 65)
	sig[64] = 30
	if _, err := Recover(d, a, sig); err == nil {
		t.Fatal("v=30 must be rejected")
	}
}

func TestAuthorizationFromWireNamesField(t *testing.T) {
	w := Authorization{From: [20]byte{1}, To: [20]byte{2}, Value: big.NewInt(1), ValidAfter: big.NewInt(0), ValidBefore: big.NewInt(9)}.Wire()
	for field, mutate := range map[string]func(*x402.EIP3009Authorization){
		"from":        func(a *x402.EIP3009Authorization) { a.From = "0x12" },
		"to":          func(a *x402.EIP3009Authorization) { a.To = "nope" },
		"value":       func(a *x402.EIP3009Authorization) { a.Value = "-5" },
		"validBefore": func(a *x402.EIP3009Authorization) { a.ValidBefore = "1.5" },
		"nonce":       func(a *x402.EIP3009Authorization) { a.Nonce = "0x1234" },
	} {
		bad := w
		mutate(&bad)
		_, err := AuthorizationFromWire(bad)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("%s: got %v", field, err)
		}
	}
}

func mustKey(t *testing.T) *ecdsa.PrivateKey {
	k, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}
