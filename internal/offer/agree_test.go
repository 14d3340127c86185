package offer_test

import (
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/obolstack/obol/internal/cli/sell"
	"github.com/obolstack/obol/internal/controller"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
	"github.com/obolstack/obol/internal/offer"
	"github.com/obolstack/obol/internal/verifier"
)

const (
	payTo  = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
	usdc   = "0x036CbD53842c5426634e7929541eC2318f3dCF7e" // USDC on base-sepolia
	custom = "0x1111111111111111111111111111111111111111" // not in the registry
	// payTo with one digit mistyped (79 → 78): its mixed case no longer
	// matches the EIP-55 checksum.
	typo = "0x70997970C51812dc3A010C7d01b50e0d17dc78C8"
)

// The three places that decide whether an offer can be sold — `obol sell
// create` (sell.BuildOffer), the controller's payment gate and the
// verifier's kube route source — agree on every offer of the table. An
// offer the CLI cannot express (it has no flags for a custom token's
// domain, and always writes scheme exact) is checked by the other two.
func TestCLIControllerAndVerifierAgree(t *testing.T) {
	reg := evm.NewRegistry()
	globals, err := verifier.ParseSpec("globals.yaml", []byte("facilitatorURL: http://127.0.0.1:4021\n"))
	if err != nil {
		t.Fatal(err)
	}
	gate := &controller.ServiceOfferReconciler{Registry: reg}
	pay := func(network, payTo, perRequest string) v1alpha1.OfferPayment {
		return v1alpha1.OfferPayment{Scheme: v1alpha1.SchemeExact, Network: network, PayTo: payTo,
			Price: v1alpha1.OfferPrice{PerRequest: perRequest}}
	}
	withAsset := func(p v1alpha1.OfferPayment, a v1alpha1.OfferAsset) v1alpha1.OfferPayment {
		p.Asset = &a
		return p
	}
	with := func(p v1alpha1.OfferPayment, f func(*v1alpha1.OfferPayment)) v1alpha1.OfferPayment {
		f(&p)
		return p
	}
	for _, tc := range []struct {
		name  string
		pay   v1alpha1.OfferPayment
		noCLI bool // the CLI cannot express this offer
		ok    bool
	}{
		{"checksummed payTo", pay("base-sepolia", payTo, "0.001"), false, true},
		{"lower-case payTo, CAIP-2 chain", pay("eip155:84532", strings.ToLower(payTo), "0.001"), false, true},
		{"upper-case payTo", pay("base-sepolia", "0x"+strings.ToUpper(payTo[2:]), "1"), false, true},
		{"USDC by address", withAsset(pay("base-sepolia", payTo, "0.000001"), v1alpha1.OfferAsset{Address: usdc, Decimals: 6}), false, true},
		{"custom token, fully described", withAsset(pay("base-sepolia", payTo, "0.000000000000000001"),
			v1alpha1.OfferAsset{Address: custom, Decimals: 18, EIP712Name: "Token", EIP712Version: "1"}), true, true},

		{"payTo with a typo", pay("base-sepolia", typo, "0.001"), false, false},
		{"zero payTo", pay("base-sepolia", "0x0000000000000000000000000000000000000000", "0.001"), false, false},
		{"short payTo", pay("base-sepolia", "0x1234", "0.001"), false, false},
		{"no payTo", pay("base-sepolia", "", "0.001"), false, false},
		{"unknown chain", pay("base-goerli", payTo, "0.001"), false, false},
		{"too many decimals", pay("base-sepolia", payTo, "0.0000001"), false, false},
		{"not a decimal", pay("base-sepolia", payTo, "1e3"), false, false},
		{"negative", pay("base-sepolia", payTo, "-1"), false, false},
		{"zero price", pay("base-sepolia", payTo, "0"), false, false},
		{"no price per request", pay("base-sepolia", payTo, ""), false, false},
		{"zero per request, priced per token", with(pay("base-sepolia", payTo, "0"),
			func(p *v1alpha1.OfferPayment) { p.Price.PerMTok = "1" }), true, false},
		{"priced per token only", with(pay("base-sepolia", payTo, ""),
			func(p *v1alpha1.OfferPayment) { p.Price.PerMTok = "1" }), true, false},
		{"USDC with the wrong decimals", withAsset(pay("base-sepolia", payTo, "0.001"), v1alpha1.OfferAsset{Address: usdc, Decimals: 18}), true, false},
		{"unknown token without domain", withAsset(pay("base-sepolia", payTo, "0.001"), v1alpha1.OfferAsset{Address: custom, Decimals: 6}), false, false},
		{"asset address with a typo", withAsset(pay("base-sepolia", payTo, "0.001"), v1alpha1.OfferAsset{Address: strings.Replace(usdc, "CbD", "Cbd", 1), Decimals: 6}), false, false},
		{"scheme upto", with(pay("base-sepolia", payTo, "0.001"), func(p *v1alpha1.OfferPayment) { p.Scheme = "upto" }), true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := map[string]error{}
			if !tc.noCLI {
				r := offer.Request{Name: "weather", Upstream: "weather-api:8080", Chain: tc.pay.Network, PayTo: tc.pay.PayTo, Price: tc.pay.Price.PerRequest}
				if tc.pay.Asset != nil {
					r.Asset = tc.pay.Asset.Address
				}
				_, errs["cli"] = sell.BuildOffer(&sell.CreateOptions{Registry: reg, Request: r}, "demo")
			}
			_, errs["controller"] = gate.PaymentTerms(tc.pay)
			so := &v1alpha1.ServiceOffer{
				ObjectMeta: metav1.ObjectMeta{Name: "weather", Namespace: "demo"},
				Spec: v1alpha1.ServiceOfferSpec{
					Upstream: v1alpha1.OfferUpstream{Service: "weather-api", Port: 8080},
					Payment:  tc.pay,
				},
			}
			_, errs["verifier"] = verifier.CompileOffer(globals, reg, verifier.Environment{}, so)
			for site, err := range errs {
				if (err == nil) != tc.ok {
					t.Errorf("%s: ok = %t, want %t (err: %v)", site, err == nil, tc.ok, err)
				}
			}
		})
	}
}

// After a typo in a mixed-case address, its "checksummed form" is the
// checksum of the wrong address: no site may suggest it, or a seller who
// copies it is paid at an address nobody holds.
func TestNoSiteSuggestsTheChecksumOfATypo(t *testing.T) {
	reg := evm.NewRegistry()
	wrong := common.HexToAddress(typo).Hex()
	if wrong == typo || strings.EqualFold(wrong, payTo) {
		t.Fatalf("test data: %s", wrong)
	}
	globals, err := verifier.ParseSpec("globals.yaml", []byte("facilitatorURL: http://127.0.0.1:4021\n"))
	if err != nil {
		t.Fatal(err)
	}
	p := v1alpha1.OfferPayment{Network: "base-sepolia", PayTo: typo, Price: v1alpha1.OfferPrice{PerRequest: "0.001"}}
	_, cliErr := sell.BuildOffer(&sell.CreateOptions{Registry: reg, Request: offer.Request{Name: "weather",
		Upstream: "weather-api:8080", Chain: p.Network, PayTo: typo, Price: "0.001"}}, "demo")
	_, gateErr := (&controller.ServiceOfferReconciler{Registry: reg}).PaymentTerms(p)
	_, routeErr := verifier.CompileOffer(globals, reg, verifier.Environment{}, &v1alpha1.ServiceOffer{
		ObjectMeta: metav1.ObjectMeta{Name: "weather", Namespace: "demo"},
		Spec:       v1alpha1.ServiceOfferSpec{Upstream: v1alpha1.OfferUpstream{Service: "weather-api", Port: 8080}, Payment: p}})
	_, fileErr := verifier.ParseAndCompile("pricing.yaml", []byte("payTo: "+typo+`
chain: base-sepolia
facilitatorURL: http://127.0.0.1:4021
upstream: http://127.0.0.1:9999
routes:
  - {pattern: /a, price: "1"}
`), reg, verifier.Environment{})
	for site, err := range map[string]error{"cli": cliErr, "controller": gateErr, "verifier route source": routeErr, "pricing file": fileErr} {
		if err == nil {
			t.Errorf("%s accepts %s", site, typo)
			continue
		}
		if !strings.Contains(err.Error(), "EIP-55") {
			t.Errorf("%s: %v does not say the checksum failed", site, err)
		}
		if strings.Contains(err.Error(), wrong) {
			t.Errorf("%s suggests %s, the checksum of the mistyped address: %v", site, wrong, err)
		}
	}
}
