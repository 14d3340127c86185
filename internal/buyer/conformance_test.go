package buyer

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/x402"
)

// Conformance of `buy pay` against sellers that answer exactly as the x402
// specification and x402-rs publish (testdata/x402/interop; see its README).
// The fake seller is strict the way reference servers are: it finds the
// requirement a v2 payment answers by comparing `accepted` with what it
// offered.

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "x402", "interop", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type specSeller struct {
	t         *testing.T
	version   int
	challenge []byte // v2: the PAYMENT-REQUIRED value; v1: the 402 body
	lowerCase bool   // send header names in lower case
	receipt   []byte // settlement header value

	mu  sync.Mutex
	got []byte // decoded payment JSON
	hdr string // header it came in
}

func (s *specSeller) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	set := func(name, value string) {
		if s.lowerCase {
			w.Header()[string(bytes.ToLower([]byte(name)))] = []string{value}
			return
		}
		w.Header().Set(name, value)
	}
	name := x402.HeaderPaymentSignature
	if s.version == x402.Version1 {
		name = x402.HeaderXPayment
	}
	v := r.Header.Get(name)
	if v == "" {
		w.Header().Set("Content-Type", "application/json")
		if s.version == x402.Version2 {
			set(x402.HeaderPaymentRequired, string(s.challenge))
			w.WriteHeader(http.StatusPaymentRequired)
			_, _ = w.Write([]byte("{}"))
			return
		}
		w.WriteHeader(http.StatusPaymentRequired)
		_, _ = w.Write(s.challenge)
		return
	}
	raw, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		http.Error(w, "payment header is not standard base64", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.got, s.hdr = raw, name
	s.mu.Unlock()
	if s.version == x402.Version2 {
		var offered struct {
			Accepts []any `json:"accepts"`
		}
		c, _ := base64.StdEncoding.DecodeString(string(s.challenge))
		_ = json.Unmarshal(c, &offered)
		var paid struct {
			Accepted any `json:"accepted"`
		}
		_ = json.Unmarshal(raw, &paid)
		a, _ := json.Marshal(paid.Accepted)
		o, _ := json.Marshal(offered.Accepts[0]) // map keys marshal sorted
		if !bytes.Equal(a, o) {
			s.t.Errorf("accepted does not deep-equal the offer:\n paid %s\noffer %s", a, o)
			w.WriteHeader(http.StatusPaymentRequired)
			return
		}
	}
	set(x402.ResponseHeaderName(s.version), string(s.receipt))
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"data":"premium market data response"}`))
}

func TestConformancePaysSpecSellers(t *testing.T) {
	for _, tc := range []struct {
		name      string
		version   int
		challenge string
		lowerCase bool
		receipt   string
		maxAmount string
		network   string
		amount    string
	}{
		{"spec v2", x402.Version2, "v2-payment-required.header", false, "v2-payment-response-success.header", "0.01", "eip155:84532", "10000"},
		{"x402-rs v2 lower-case", x402.Version2, "x402rs-v2-payment-required.header", true, "v2-payment-response-success.header", "0.1", "eip155:84532", "100000"},
		{"spec v1", x402.Version1, "v1-payment-required.json", false, "v1-x-payment-response-success.header", "0.01", "base-sepolia", "10000"},
		{"x402-rs v1", x402.Version1, "x402rs-v1-payment-required.json", false, "v1-x-payment-response-success.header", "0.01", "base-sepolia", "1000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &specSeller{t: t, version: tc.version, challenge: bytes.TrimSpace(fixture(t, tc.challenge)), lowerCase: tc.lowerCase, receipt: fixture(t, tc.receipt)}
			srv := httptest.NewServer(s)
			defer srv.Close()
			p := &Payer{Key: testKey(t), Registry: evm.NewRegistry(), MaxAmount: tc.maxAmount}
			req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, srv.URL+"/premium-data", nil)
			res, err := p.Do(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if !res.Paid() || res.Receipt == nil || res.Receipt.Transaction == "" || res.Status != http.StatusOK {
				t.Fatalf("not paid: status %d receipt %+v (%v)", res.Status, res.Receipt, res.ReceiptErr)
			}
			s.mu.Lock()
			got, hdr := s.got, s.hdr
			s.mu.Unlock()
			pay, err := x402.ParsePaymentJSON(hdr, got)
			if err != nil {
				t.Fatalf("the seller could not parse our payment: %v\n%s", err, got)
			}
			if pay.Version != tc.version || pay.Scheme != x402.SchemeExact || pay.Network != tc.network || pay.Exact.Authorization.Value != tc.amount {
				t.Fatalf("payment %+v", pay)
			}
			// Signed with the registry's domain for the offered chain/token.
			reg := evm.NewRegistry()
			chain, _ := reg.Chain(tc.network)
			tok, _ := reg.Token(chain.CAIP2, "0x036CbD53842c5426634e7929541eC2318f3dCF7e")
			a, err := evm.AuthorizationFromWire(pay.Exact.Authorization)
			if err != nil {
				t.Fatal(err)
			}
			sig, _ := evm.DecodeSignature(pay.Exact.Signature)
			if signer, err := evm.Recover(tok.Domain(chain.ChainID), a, sig); err != nil || signer != a.From {
				t.Fatalf("signature recovers to %s (%v), want %s", signer.Hex(), err, a.From.Hex())
			}
			if len(sig) != 65 || (sig[64] != 27 && sig[64] != 28) {
				t.Fatalf("signature %d bytes, v=%d", len(sig), sig[len(sig)-1])
			}
		})
	}
}
