package buy

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/obolstack/obol/internal/verifier/verifiertest"
	"github.com/obolstack/obol/internal/x402"
)

// unreachableUntil is a facilitator that verifies every payment and cannot
// settle (an error, as an unreachable one) until settled is set.
type unreachableUntil struct {
	settled atomic.Bool
	mu      sync.Mutex
	nonces  map[string]bool // authorizations settle was asked about
}

func (f *unreachableUntil) Verify(_ context.Context, req x402.VerifyRequest) (*x402.VerifyResponse, error) {
	p, _, err := x402.ParseVerifyRequest(req)
	if err != nil || p.Exact == nil {
		return &x402.VerifyResponse{InvalidReason: x402.ReasonInvalidPayload}, nil
	}
	return &x402.VerifyResponse{IsValid: true, Payer: p.Exact.Authorization.From}, nil
}

func (f *unreachableUntil) Settle(_ context.Context, req x402.SettleRequest) (*x402.SettleResponse, error) {
	if p, _, err := x402.ParseVerifyRequest(req); err == nil && p.Exact != nil {
		f.mu.Lock()
		f.nonces[p.Exact.Authorization.Nonce] = true
		f.mu.Unlock()
	}
	if !f.settled.Load() {
		return nil, errors.New("connection refused")
	}
	return &x402.SettleResponse{Success: true, Transaction: "0x" + strings.Repeat("ab", 32), Network: "eip155:84532"}, nil
}

// The real verifier answers settlement_pending while its facilitator is
// unreachable; `obol buy pay` waits it out with the one payment it signed
// and prints the paid answer once the settlement is confirmed.
func TestBuyPayCollectsPendingSettlementFromVerifier(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"forecast":"sunny"}`)
	}))
	t.Cleanup(upstream.Close)
	fac := &unreachableUntil{nonces: map[string]bool{}}
	srv := verifiertest.New(t, `payTo: `+payTo.Hex()+`
chain: base-sepolia
facilitatorURL: http://127.0.0.1:4021
facilitatorTimeout: 50ms
upstream: `+upstream.URL+`
routes:
  - pattern: /weather
    price: "0.001"
`, fac)
	// The facilitator comes back once the verifier has told the buyer its
	// payment is pending.
	var pendingAnswers atomic.Int32
	h := srv.Handler()
	gate := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code == http.StatusServiceUnavailable && strings.Contains(rec.Body.String(), `"reason":"settlement_pending"`) {
			pendingAnswers.Add(1)
			fac.settled.Store(true)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(gate.Close)

	key, addr := keyFile(t)
	r := pay(t, gate.URL+"/weather", "--key-file", key, "-o", "json")
	t.Logf("stderr:\n%s\nstdout: %s", r.errOut, r.out)
	if r.err != nil {
		t.Fatalf("buy pay: %v", r.err)
	}
	var doc struct {
		Status int `json:"status"`
		Body   struct {
			Forecast string `json:"forecast"`
		} `json:"body"`
		PendingRetries int `json:"pendingRetries"`
		Receipt        struct {
			Success bool   `json:"success"`
			Payer   string `json:"payer"`
		} `json:"receipt"`
	}
	if err := json.Unmarshal([]byte(r.out), &doc); err != nil {
		t.Fatalf("stdout is not one JSON document: %v", err)
	}
	if doc.Status != 200 || doc.Body.Forecast != "sunny" || !doc.Receipt.Success {
		t.Fatalf("got %d %+v receipt %+v, want the paid answer with a successful receipt", doc.Status, doc.Body, doc.Receipt)
	}
	if doc.PendingRetries < 1 || pendingAnswers.Load() != int32(doc.PendingRetries) {
		t.Fatalf("pendingRetries %d, verifier answered pending %d times", doc.PendingRetries, pendingAnswers.Load())
	}
	if !strings.Contains(r.errOut, "settlement pending at the seller; asking again in") {
		t.Fatalf("no progress line on stderr")
	}
	fac.mu.Lock()
	defer fac.mu.Unlock()
	if len(fac.nonces) != 1 {
		t.Fatalf("the facilitator was asked to settle %d authorizations, want the one signed by %s", len(fac.nonces), addr.Hex())
	}
}
