package x402

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

func sampleRequirement() Requirement {
	return Requirement{
		Scheme: SchemeExact, Network: "eip155:84532", NetworkV1: "base-sepolia",
		Amount: "10000", Asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
		PayTo: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C", MaxTimeoutSeconds: 60,
		Extra:    Extra{Name: "USDC", Version: "2"},
		Resource: ResourceInfo{URL: "https://api.example.com/weather", Description: "weather", MimeType: "application/json"},
	}
}

func sampleExact() ExactEVMPayload {
	return ExactEVMPayload{
		Signature: "0x2d6a7588d6acca505cbf0d9a4a227e0c52c6c34008c8e8986a1283259764173608a2ce6496642e377d6da8dbbf5836e9bd15092f9ecab05ded3d6293af148b571c",
		Authorization: EIP3009Authorization{
			From: "0x857b06519E91e3A54538791bDbb0E22373e36b66", To: "0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
			Value: "10000", ValidAfter: "1740672089", ValidBefore: "1740672154",
			Nonce: "0xf3746613c2d920b5fdabc0856f2aeb2d4f88ee6037b8cc5d04a71a4462f13480",
		},
	}
}

func TestPaymentRoundTripBothVersions(t *testing.T) {
	for _, version := range []int{Version1, Version2} {
		p, err := NewExactPayment(version, sampleRequirement(), sampleExact())
		if err != nil {
			t.Fatal(err)
		}
		name, value, err := p.Encode()
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{}
		h.Set(name, value)
		got, err := PaymentFromHeader(h)
		if err != nil {
			t.Fatalf("v%d: %v", version, err)
		}
		if got.Version != version || got.Exact == nil || got.Exact.Authorization != sampleExact().Authorization {
			t.Fatalf("v%d: round trip lost data: %+v", version, got)
		}
		wantNet := map[int]string{1: "base-sepolia", 2: "eip155:84532"}[version]
		if got.Network != wantNet {
			t.Fatalf("v%d network %q, want %q", version, got.Network, wantNet)
		}
		vr, err := NewVerifyRequest(got, sampleRequirement())
		if err != nil {
			t.Fatal(err)
		}
		p2, req, err := ParseVerifyRequest(vr)
		if err != nil {
			t.Fatal(err)
		}
		if p2.Version != version || req.Amount != "10000" || req.Extra.Name != "USDC" {
			t.Fatalf("v%d verify request round trip: %+v %+v", version, p2, req)
		}
	}
}

func TestChallengeHeaderFirstThenBody(t *testing.T) {
	body, hv, err := PaymentRequired(Version2, "payment required", []Requirement{sampleRequirement()})
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set(HeaderPaymentRequired, hv)
	c, err := ParseChallenge(h, []byte("not json"))
	if err != nil || c.Version != 2 || c.Requirements[0].Amount != "10000" {
		t.Fatalf("header challenge: %v %+v", err, c)
	}
	c, err = ParseChallenge(http.Header{}, body)
	if err != nil || c.Version != 2 {
		t.Fatalf("body challenge: %v", err)
	}
	body1, _, _ := PaymentRequired(Version1, "payment required", []Requirement{sampleRequirement()})
	c, err = ParseChallenge(http.Header{}, body1)
	if err != nil || c.Version != 1 || c.Requirements[0].Network != "base-sepolia" || c.Requirements[0].Amount != "10000" {
		t.Fatalf("v1 body challenge: %v %+v", err, c)
	}
	if !strings.Contains(string(body1), `"maxAmountRequired":"10000"`) {
		t.Fatalf("v1 body: %s", body1)
	}
}

func TestMalformedPaymentNamesField(t *testing.T) {
	h := http.Header{}
	v, _ := EncodeHeader(map[string]any{"x402Version": 2, "accepted": map[string]any{"scheme": "exact", "network": "eip155:84532"}, "payload": map[string]any{"signature": "0x00", "authorization": map[string]any{"from": "0x1"}}})
	h.Set(HeaderPaymentSignature, v)
	_, err := PaymentFromHeader(h)
	var de *DecodeError
	if !errors.As(err, &de) || de.Field != "payload.authorization.to" {
		t.Fatalf("want field error on payload.authorization.to, got %v", err)
	}
	h.Set(HeaderPaymentSignature, strings.Repeat("A", MaxHeaderBytes+1))
	if _, err := PaymentFromHeader(h); !errors.Is(err, ErrHeaderTooLarge) {
		t.Fatalf("want too large, got %v", err)
	}
	if _, err := PaymentFromHeader(http.Header{}); !errors.Is(err, ErrNoPayment) {
		t.Fatalf("want ErrNoPayment, got %v", err)
	}
}
