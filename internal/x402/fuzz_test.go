package x402

import (
	"encoding/base64"
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

// seeds returns header values from the repository's spec vectors plus a
// few edge cases; the fuzzers' on-disk corpora live in testdata/fuzz.
func seeds(t testing.TB) []string {
	out := []string{"", "e30=", "bnVsbA==", "W10=", "eyJ4NDAyVmVyc2lvbiI6M30="}
	for _, name := range []string{"spec-v1-x-payment.txt", "spec-v2-payment-signature.txt"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "x402", name))
		if err != nil {
			t.Fatalf("read vector: %v", err)
		}
		out = append(out, string(b))
	}
	body, hv, _ := PaymentRequired(Version2, "payment required", []Requirement{sampleRequirement()})
	out = append(out, hv, base64.StdEncoding.EncodeToString(body))
	s, _ := EncodeSettleResponse(SettleResponse{Success: true, Transaction: "0xabc", Network: "eip155:84532", Payer: "0x1"})
	return append(out, s)
}

func FuzzDecodePayment(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		for _, name := range []string{HeaderPaymentSignature, HeaderXPayment} {
			h := http.Header{}
			h.Set(name, v)
			p, err := PaymentFromHeader(h)
			if err != nil {
				continue
			}
			if p.Version != Version1 && p.Version != Version2 {
				t.Fatalf("accepted version %d", p.Version)
			}
			if p.Scheme == SchemeExact && p.Exact == nil {
				t.Fatal("exact payment without parsed payload")
			}
			if _, _, err := p.Encode(); err != nil {
				t.Fatalf("re-encode: %v", err)
			}
		}
	})
}

func FuzzParseChallenge(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s, []byte(`{"x402Version":1,"accepts":[]}`))
	}
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		h := http.Header{}
		if header != "" {
			h.Set(HeaderPaymentRequired, header)
		}
		c, err := ParseChallenge(h, body)
		if err != nil {
			return
		}
		if len(c.Requirements) == 0 {
			t.Fatal("challenge without requirements accepted")
		}
		// A payment answering any parsed requirement (v2: echoing the
		// server's JSON) parses back to the same terms.
		for _, r := range c.Requirements {
			if r.Scheme != SchemeExact || r.Network == "" {
				continue
			}
			p, err := NewExactPayment(c.Version, r, sampleExact())
			if err != nil {
				t.Fatalf("build payment: %v", err)
			}
			back, err := ParsePaymentJSON(HeaderPaymentSignature, p.Raw)
			if err != nil {
				t.Fatalf("our payment does not parse: %v\n%s", err, p.Raw)
			}
			if c.Version == Version2 && (back.V2.Accepted.Amount != r.Amount || back.V2.Accepted.PayTo != r.PayTo || back.V2.Accepted.Asset != r.Asset) {
				t.Fatalf("echoed terms differ: %+v vs %+v", back.V2.Accepted, r)
			}
		}
	})
}

func FuzzDecodeSettleResponse(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		for _, name := range []string{HeaderPaymentResponse, HeaderXPaymentResponse} {
			_, _ = DecodeSettleResponse(name, v)
		}
	})
}

func FuzzParseVerifyRequest(f *testing.F) {
	f.Add(1, []byte(`{"x402Version":1,"scheme":"exact","network":"base","payload":{}}`), []byte(`{}`))
	f.Add(2, []byte(`{"x402Version":2,"accepted":{"scheme":"exact","network":"eip155:8453"},"payload":{"signature":"0x","authorization":{}}}`), []byte(`{"extra":{"name":1}}`))
	f.Fuzz(func(t *testing.T, version int, payload, reqs []byte) {
		_, _, _ = ParseVerifyRequest(VerifyRequest{X402Version: version, PaymentPayload: payload, PaymentRequirements: reqs})
	})
}
