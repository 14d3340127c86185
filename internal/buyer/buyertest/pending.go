package buyertest

import (
	"io"
	"net/http"
	"sync"

	"github.com/obolstack/obol/internal/x402"
)

// Pending stands in front of a Seller as a verifier whose settlement
// outcome is not known yet: it answers the first Times paid requests (or
// every one, with Times < 0) with 503, Retry-After and reason
// settlement_pending, then lets the Seller check and serve the payment.
// Unpaid requests go to the Seller (its 402).
type Pending struct {
	Seller     *Seller
	Times      int
	RetryAfter string // "" sends no Retry-After
	// Reason is the JSON reason of the 503 (default settlement_pending).
	Reason string

	mu   sync.Mutex
	sent []string
}

// PaymentHeaders lists the payment header values of the paid requests
// received, in order (the pending ones included).
func (p *Pending) PaymentHeaders() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.sent...)
}

func (p *Pending) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v := r.Header.Get(x402.HeaderPaymentSignature)
	if v == "" {
		v = r.Header.Get(x402.HeaderXPayment)
	}
	if v == "" {
		p.Seller.ServeHTTP(w, r)
		return
	}
	p.mu.Lock()
	p.sent = append(p.sent, v)
	n := len(p.sent)
	p.mu.Unlock()
	if p.Times >= 0 && n > p.Times {
		p.Seller.ServeHTTP(w, r)
		return
	}
	_, _ = io.Copy(io.Discard, r.Body)
	reason := p.Reason
	if reason == "" {
		reason = "settlement_pending"
	}
	if p.RetryAfter != "" {
		w.Header().Set("Retry-After", p.RetryAfter)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = io.WriteString(w, `{"error":"answer of the pending test verifier","reason":"`+reason+`"}`)
}
