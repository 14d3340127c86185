package evm

import (
	"math/big"
	"testing"

	"github.com/ethereum/go-ethereum/common"

	"github.com/obolstack/obol/internal/x402"
)

// The signed example of the x402 specification's transport pages.
func TestSpecVectorRecovers(t *testing.T) {
	w := x402.EIP3009Authorization{
		From:        "0x857b06519E91e3A54538791bDbb0E22373e36b66",
		To:          "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
		Value:       "10000",
		ValidAfter:  "1740672089",
		ValidBefore: "1740672154",
		Nonce:       "0xf3746613c2d920b5fdabc0856f2aeb2d4f88ee6037b8cc5d04a71a4462f13480",
	}
	a, err := AuthorizationFromWire(w)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := DecodeSignature("0x2d6a7588d6acca505cbf0d9a4a227e0c52c6c34008c8e8986a1283259764173608a2ce6496642e377d6da8dbbf5836e9bd15092f9ecab05ded3d6293af148b571c")
	if err != nil {
		t.Fatal(err)
	}
	token := common.HexToAddress("0x036CbD53842c5426634e7929541eC2318f3dCF7e")
	good := Domain{Name: "USDC", Version: "2", ChainID: big.NewInt(84532), VerifyingContract: token}
	got, err := Recover(good, a, sig)
	if err != nil {
		t.Fatal(err)
	}
	if got != a.From {
		t.Fatalf("recovered %s, want %s", got.Hex(), a.From.Hex())
	}
	bad := good
	bad.Name = "USD Coin"
	got, err = Recover(bad, a, sig)
	if err != nil {
		t.Fatal(err)
	}
	if got == a.From {
		t.Fatal("the wrong domain name must not recover to from")
	}
}
