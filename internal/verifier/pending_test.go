package verifier

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/obolstack/obol/internal/testenv/wait"
	"github.com/obolstack/obol/internal/x402"
)

// Settle outcomes a pendingFacilitator gives.
const (
	outcomeUnknown int32 = iota
	outcomeSettled
	outcomeRefused
	outcomeExpired // refused as expired
)

// pendingGate is a gate whose facilitator's settle outcome the test sets:
// unknown (an error) until the test says settled or refused.
func pendingGate(t *testing.T, doc string) (*testGate, *atomic.Int32) {
	t.Helper()
	g := newGate(t, "facilitatorTimeout: 50ms\n"+doc)
	var outcome atomic.Int32
	g.fac.settleCtx = func(context.Context, x402.SettleRequest) (*x402.SettleResponse, error) {
		switch outcome.Load() {
		case outcomeSettled:
			return &x402.SettleResponse{Success: true, Transaction: "0x" + strings.Repeat("cd", 32), Network: "eip155:84532"}, nil
		case outcomeRefused:
			return &x402.SettleResponse{ErrorReason: x402.ReasonInsufficientFunds, ErrorMessage: "balance too low", Network: "eip155:84532"}, nil
		case outcomeExpired:
			return &x402.SettleResponse{ErrorReason: x402.ReasonValidBefore, ErrorMessage: "authorization expired", Network: "eip155:84532"}, nil
		}
		return nil, errors.New("connection reset by peer")
	}
	return g, &outcome
}

// paidRequest is a paid request for target on g, signed once; each call of
// the returned function is the same request again.
func paidRequest(t *testing.T, g *testGate, target string) func(string) *http.Request {
	name, value := newBuyer(t).pay(t, g.evm, x402.Version2, challenge(t, g.h, target))
	return func(path string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, path, nil)
		r.Header.Set(name, value)
		return r
	}
}

// startPending is a proxy gate whose facilitator cannot tell, and a paid
// GET /joke already answered settlement_pending; req sends it again.
func startPending(t *testing.T) (*testGate, *atomic.Int32, *upstream, func(string) *http.Request) {
	t.Helper()
	up := newUpstream(t)
	g, outcome := pendingGate(t, proxyDoc(up.URL))
	req := paidRequest(t, g, "/joke")
	if w := g.do(req("/joke")); !isPending(w) {
		t.Fatalf("unknown outcome: %d %s, want 503 settlement_pending", w.Code, w.Body)
	}
	return g, outcome, up, req
}

func isPending(w *httptest.ResponseRecorder) bool {
	return w.Code == http.StatusServiceUnavailable && strings.Contains(w.Body.String(), `"reason":"`+ReasonSettlementPending+`"`)
}

// collect asks again until the pending payment is answered.
func collect(t *testing.T, g *testGate, req func() *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	var w *httptest.ResponseRecorder
	wait.Until(t, 30*time.Second, "the pending payment to be answered", func() bool {
		w = g.do(req())
		return !isPending(w)
	})
	return w
}

func TestPendingPaymentIsCollectedOnceWithItsKeptAnswer(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	g, outcome := pendingGate(t, proxyDoc(up.URL))
	req := paidRequest(t, g, "/joke")

	w := g.do(req("/joke"))
	if !isPending(w) || w.Header().Get("Retry-After") == "" || strings.Contains(w.Body.String(), "sunny") {
		t.Fatalf("unknown outcome: %d Retry-After %q %s, want 503 settlement_pending with Retry-After and no answer", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	if got := testutil.ToFloat64(g.metrics.SettlementsPending); got != 1 {
		t.Fatalf("settlements_pending = %v, want 1", got)
	}
	verifies, _ := g.fac.calls()
	if w := g.do(req("/joke")); !isPending(w) {
		t.Fatalf("asked again while unknown: %d %s, want 503 settlement_pending", w.Code, w.Body)
	}
	outcome.Store(outcomeSettled)
	w = collect(t, g, func() *http.Request { return req("/joke") })
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "sunny") {
		t.Fatalf("collected: %d %s, want 200 and the kept answer", w.Code, w.Body)
	}
	sr, err := x402.DecodeSettleResponse(x402.HeaderPaymentResponse, w.Header().Get(x402.HeaderPaymentResponse))
	if err != nil || !sr.Success || sr.Transaction == "" {
		t.Fatalf("payment response of the collected answer: %+v %v", sr, err)
	}
	if up.hits.Load() != 1 {
		t.Fatalf("upstream called %d times, want once", up.hits.Load())
	}
	if v, _ := g.fac.calls(); v != verifies {
		t.Fatalf("verified %d more times while pending, want no verify of a pending payment", v-verifies)
	}
	if got := testutil.ToFloat64(g.metrics.Settlements.WithLabelValues(SettleResultSettledLate)); got != 1 {
		t.Errorf("settlements{settled_late} = %v, want 1", got)
	}
	if got := counter(t, g, "charged", "jokes"); got != 1 {
		t.Errorf("charged = %v, want 1", got)
	}
	if got := testutil.ToFloat64(g.metrics.SettlementsPending); got != 0 {
		t.Errorf("settlements_pending = %v, want 0", got)
	}
	if w := g.do(req("/joke")); w.Code != http.StatusPaymentRequired || up.hits.Load() != 1 {
		t.Fatalf("the collected payment again: %d %s, want 402 (answered once)", w.Code, w.Body)
	}
}

func TestPendingPaymentWithoutKeptAnswerGoesUpstreamOnceMore(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	g, outcome := pendingGate(t, proxyDoc(up.URL))
	g.srv.pending.maxBytes = 1 // no room for the answer
	req := paidRequest(t, g, "/joke")
	if w := g.do(req("/joke")); !isPending(w) {
		t.Fatalf("unknown outcome: %d %s, want 503 settlement_pending", w.Code, w.Body)
	}
	outcome.Store(outcomeSettled)
	wait.Until(t, 30*time.Second, "the facilitator's answer to the gate's question", func() bool {
		return testutil.ToFloat64(g.metrics.Settlements.WithLabelValues(SettleResultSettledLate)) == 1
	})
	_, settles := g.fac.calls()
	w := g.do(req("/joke"))
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "sunny") || w.Header().Get(x402.HeaderPaymentResponse) == "" {
		t.Fatalf("collected without a kept answer: %d %s, want 200 from the upstream with the payment response", w.Code, w.Body)
	}
	if _, s := g.fac.calls(); s != settles || up.hits.Load() != 2 {
		t.Fatalf("settles %d → %d, upstream hits %d: want no second settlement and one more upstream call", settles, s, up.hits.Load())
	}
}

func TestPendingPaymentRefusedIsNotCharged(t *testing.T) {
	t.Parallel()
	g, outcome, _, req := startPending(t)
	outcome.Store(outcomeRefused)
	w := collect(t, g, func() *http.Request { return req("/joke") })
	if w.Code != http.StatusPaymentRequired || strings.Contains(w.Body.String(), "sunny") {
		t.Fatalf("refused: %d %s, want 402 without the answer", w.Code, w.Body)
	}
	sr, err := x402.DecodeSettleResponse(x402.HeaderPaymentResponse, w.Header().Get(x402.HeaderPaymentResponse))
	if err != nil || sr.Success || sr.ErrorReason != x402.ReasonInsufficientFunds {
		t.Fatalf("payment response of the refusal: %+v %v", sr, err)
	}
	if got := counter(t, g, "charged", "jokes"); got != 0 {
		t.Errorf("charged = %v, want 0", got)
	}
	if w := g.do(req("/joke")); w.Code != http.StatusPaymentRequired || !strings.Contains(w.Body.String(), ReasonAuthorizationReused) {
		t.Fatalf("the refused payment again: %d %s, want 402 authorization_reused", w.Code, w.Body)
	}
}

func TestPendingPaymentIsForItsOwnRequestOnly(t *testing.T) {
	t.Parallel()
	g, _, _, req := startPending(t)
	if w := g.do(req("/joke?other=1")); w.Code != http.StatusPaymentRequired || !strings.Contains(w.Body.String(), ReasonAuthorizationReused) {
		t.Fatalf("the pending payment on another URL: %d %s, want 402 authorization_reused", w.Code, w.Body)
	}
	if w := g.do(req("/joke")); !isPending(w) {
		t.Fatalf("its own request after that: %d %s, want still pending", w.Code, w.Body)
	}
}

func TestPendingPaymentInForwardAuth(t *testing.T) {
	t.Parallel()
	g, outcome := pendingGate(t, forwardAuthDoc("forwardAuth: settle-first\n"))
	unpaid := g.do(faRequest("/joke"))
	ch, err := x402.ParseChallenge(unpaid.Header(), unpaid.Body.Bytes())
	if err != nil {
		t.Fatalf("forward-auth challenge: %d %v", unpaid.Code, err)
	}
	name, value := newBuyer(t).pay(t, g.evm, x402.Version2, ch.Requirements[0])
	req := func() *http.Request {
		r := faRequest("/joke")
		r.Header.Set(name, value)
		return r
	}
	if w := g.do(req()); !isPending(w) {
		t.Fatalf("unknown outcome: %d %s, want 503 settlement_pending", w.Code, w.Body)
	}
	outcome.Store(outcomeSettled)
	w := collect(t, g, req)
	if w.Code != http.StatusOK || w.Header().Get(x402.HeaderPaymentResponse) == "" {
		t.Fatalf("collected in forward-auth mode: %d %s, want 200 with the payment response", w.Code, w.Body)
	}
	if w := g.do(req()); w.Code != http.StatusPaymentRequired {
		t.Fatalf("again: %d, want 402", w.Code)
	}
}

func TestPendingSetFullAnswersAsBefore(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	g, _ := pendingGate(t, proxyDoc(up.URL))
	g.srv.pending.max = 1
	if w := g.do(paidRequest(t, g, "/joke")("/joke")); !isPending(w) {
		t.Fatalf("first unknown outcome: %d %s, want pending", w.Code, w.Body)
	}
	w := g.do(paidRequest(t, g, "/joke")("/joke"))
	if w.Code == http.StatusOK || isPending(w) || !strings.Contains(w.Body.String(), "could not tell") || !strings.Contains(w.Body.String(), `"reason":"`+ReasonSettlementUnknown+`"`) {
		t.Fatalf("second with the set full: %d %s, want the withheld answer", w.Code, w.Body)
	}
}

// A facilitator that refuses the pending payment as expired says nothing
// of whether it settled earlier: it stays pending, and is collected once
// the facilitator says it settled.
func TestPendingPaymentRefusedAsExpiredStaysUnknown(t *testing.T) {
	t.Parallel()
	g, outcome, _, req := startPending(t)
	_, settles := g.fac.calls()
	outcome.Store(outcomeExpired)
	wait.Until(t, 30*time.Second, "the gate to ask again", func() bool {
		_, s := g.fac.calls()
		return s > settles
	})
	if w := g.do(req("/joke")); !isPending(w) {
		t.Fatalf("after a refusal as expired: %d %s, want still pending", w.Code, w.Body)
	}
	outcome.Store(outcomeSettled)
	if w := collect(t, g, func() *http.Request { return req("/joke") }); w.Code != http.StatusOK {
		t.Fatalf("collected: %d %s, want 200", w.Code, w.Body)
	}
}

// A pending payment is answered as it was made, also after a reload that
// changed its route's price: the buyer paid the old price.
func TestPendingPaymentCollectedAfterAPriceChange(t *testing.T) {
	t.Parallel()
	g, outcome, up, req := startPending(t)
	doc := strings.Replace(proxyDoc(up.URL), `price: "0.01"`, `price: "0.02"`, 1)
	if err := g.srv.ApplyConfig(compileYAML(t, g.evm, "facilitatorTimeout: 50ms\n"+doc)); err != nil {
		t.Fatal(err)
	}
	outcome.Store(outcomeSettled)
	w := collect(t, g, func() *http.Request { return req("/joke") })
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "sunny") {
		t.Fatalf("collected after a price change: %d %s, want 200 and the kept answer", w.Code, w.Body)
	}
}
