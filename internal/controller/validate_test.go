package controller

import (
	"strings"
	"testing"

	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
)

func TestParseAddress(t *testing.T) {
	for _, tc := range []struct {
		in, err string
	}{
		{"0x70997970C51812dc3A010C7d01b50e0d17dc79C8", ""},
		{"0x70997970c51812dc3a010c7d01b50e0d17dc79c8", ""}, // all lower: no checksum to check
		{"0x70997970C51812DC3A010C7D01B50E0D17DC79C8", ""}, // all upper
		{"0x70997970C51812dc3A010C7d01b50e0d17dc79c8", "EIP-55"},
		{"70997970C51812dc3A010C7d01b50e0d17dc79C8", "not an address"},
		{"0x1234", "not an address"},
		{"", "no address"},
	} {
		_, err := ParseAddress(tc.in)
		if tc.err == "" && err != nil {
			t.Errorf("%q: %v", tc.in, err)
		}
		if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%q: err = %v, want %q", tc.in, err, tc.err)
		}
	}
}

func TestValidatePayment(t *testing.T) {
	reg := evm.NewRegistry()
	ok := v1alpha1.OfferPayment{Network: "base-sepolia", PayTo: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
		Price: v1alpha1.OfferPrice{PerRequest: "0.001"}}
	p, err := ValidatePayment(reg, ok)
	if err != nil {
		t.Fatal(err)
	}
	if p.Chain.CAIP2 != "eip155:84532" || p.PerRequest.Int64() != 1000 || p.Asset.Symbol != "USDC" || p.Asset.Decimals != 6 {
		t.Errorf("validated = %+v", p)
	}

	for name, tc := range map[string]struct {
		mutate func(*v1alpha1.OfferPayment)
		err    string
	}{
		"unknown chain": {func(p *v1alpha1.OfferPayment) { p.Network = "eip155:5" }, "unknown chain"},
		"zero payTo":    {func(p *v1alpha1.OfferPayment) { p.PayTo = "0x0000000000000000000000000000000000000000" }, "zero address"},
		"too precise":   {func(p *v1alpha1.OfferPayment) { p.Price.PerRequest = "0.0000001" }, "decimal places"},
		"not a number":  {func(p *v1alpha1.OfferPayment) { p.Price.PerRequest = "1e3" }, "not a decimal"},
		"no price":      {func(p *v1alpha1.OfferPayment) { p.Price = v1alpha1.OfferPrice{} }, "at least one"},
		"zero price":    {func(p *v1alpha1.OfferPayment) { p.Price.PerRequest = "0" }, "zero"},
		"bad scheme":    {func(p *v1alpha1.OfferPayment) { p.Scheme = "upto" }, "scheme"},
		"wrong decimals": {func(p *v1alpha1.OfferPayment) {
			p.Asset = &v1alpha1.OfferAsset{Address: "0x036CbD53842c5426634e7929541eC2318f3dCF7e", Decimals: 18}
		}, "decimals"},
		"unknown token, no domain": {func(p *v1alpha1.OfferPayment) {
			p.Asset = &v1alpha1.OfferAsset{Address: "0x1111111111111111111111111111111111111111", Decimals: 6}
		}, "eip712Name"},
	} {
		p := ok
		tc.mutate(&p)
		_, err := ValidatePayment(reg, p)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: err = %v, want %q", name, err, tc.err)
		}
	}

	// A token the registry does not know is fine when fully described.
	custom := ok
	custom.Asset = &v1alpha1.OfferAsset{Address: "0x1111111111111111111111111111111111111111", Decimals: 18,
		EIP712Name: "Token", EIP712Version: "1", Symbol: "TKN"}
	custom.Price.PerRequest = "0.000000000000000001"
	p, err = ValidatePayment(reg, custom)
	if err != nil {
		t.Fatal(err)
	}
	if p.PerRequest.Int64() != 1 || p.Asset.TransferMethod != v1alpha1.TransferEIP3009 {
		t.Errorf("custom token = %+v", p)
	}
}
