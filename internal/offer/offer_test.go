package offer

import (
	"strings"
	"testing"

	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
)

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
