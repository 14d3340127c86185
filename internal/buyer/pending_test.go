package buyer

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/obolstack/obol/internal/buyer/buyertest"
	"github.com/obolstack/obol/internal/x402"
)

// pendingSeller serves a buyertest seller behind a verifier that answers
// "settlement pending" to the first times paid requests (< 0: always).
func pendingSeller(t *testing.T, times int, retryAfter, reason string) (*buyertest.Seller, *buyertest.Pending, string) {
	t.Helper()
	s := &buyertest.Seller{Version: x402.Version2, Requirements: []x402.Requirement{usdcReq("1000")}}
	pd := &buyertest.Pending{Seller: s, Times: times, RetryAfter: retryAfter, Reason: reason}
	srv := httptest.NewServer(pd)
	t.Cleanup(srv.Close)
	return s, pd, srv.URL
}

// countingPay signs with p's policy and key, counting the signatures.
func countingPay(p *Payer, signs *atomic.Int32) PayFunc {
	return func(_ context.Context, ch *x402.Challenge, _ *url.URL) (string, string, error) {
		q, err := p.Choose(ch)
		if err != nil {
			return "", "", err
		}
		payment, _, err := p.sign(q)
		if err != nil {
			return "", "", err
		}
		signs.Add(1)
		return payment.Encode()
	}
}

type waits struct {
	mu       sync.Mutex
	attempts []int
	delays   []time.Duration
}

func (w *waits) record(attempt int, d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.attempts = append(w.attempts, attempt)
	w.delays = append(w.delays, d)
}

// replayablePost is a POST the engine can send more than once.
func replayablePost(t *testing.T, url, body string) *http.Request {
	t.Helper()
	req := post(t, url, body)
	if err := replayable(req, 1<<20); err != nil {
		t.Fatal(err)
	}
	return req
}

func allSame(t *testing.T, headers []string) {
	t.Helper()
	for i, h := range headers {
		if h == "" || h != headers[0] {
			t.Fatalf("paid request %d carried another payment header than the first:\n%.60s…\n%.60s…", i+1, h, headers[0])
		}
	}
}

func TestPendingSettlementResendsSamePayment(t *testing.T) {
	s, pd, base := pendingSeller(t, 2, "1", "")
	s.WantBody = `{"city":"Lisbon"}`
	p := newPayer(t)
	var signs atomic.Int32
	w := &waits{}
	eng := p.engine()
	eng.OnPending = w.record
	ex, err := eng.Do(context.Background(), replayablePost(t, base+"/weather", s.WantBody), countingPay(p, &signs))
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	defer ex.Response.Body.Close()
	body, _ := io.ReadAll(ex.Response.Body)
	t.Logf("status %d body %s, resends %d, waits %v at attempts %v, signatures %d", ex.Response.StatusCode, body, ex.PendingRetries, w.delays, w.attempts, signs.Load())
	if ex.Response.StatusCode != 200 || string(body) != `{"forecast":"sunny"}` {
		t.Fatalf("final answer %d %q, want the paid 200", ex.Response.StatusCode, body)
	}
	if ex.PendingRetries != 2 {
		t.Fatalf("PendingRetries = %d, want 2", ex.PendingRetries)
	}
	if ex.Receipt == nil || !ex.Receipt.Success {
		t.Fatalf("receipt %+v, want the seller's successful settlement", ex.Receipt)
	}
	if n := signs.Load(); n != 1 {
		t.Fatalf("signed %d payments, want 1", n)
	}
	headers := pd.PaymentHeaders()
	if len(headers) != 3 {
		t.Fatalf("seller got %d paid requests, want 3", len(headers))
	}
	allSame(t, headers)
	if got := s.Payments(); len(got) != 1 || got[0].Reason != "" {
		t.Fatalf("seller checked payments %+v, want one accepted", got)
	}
	if len(w.attempts) != 2 || w.attempts[0] != 2 || w.attempts[1] != 3 || w.delays[0] != time.Second || w.delays[1] != time.Second {
		t.Fatalf("waits %v before attempts %v, want 1s before attempts 2 and 3", w.delays, w.attempts)
	}
}

func TestPendingForeverGivesUpAfterBound(t *testing.T) {
	s, pd, base := pendingSeller(t, -1, "1", "")
	p := newPayer(t)
	var signs atomic.Int32
	eng := p.engine()
	eng.MaxPendingWait = 1500 * time.Millisecond
	// A safety net for a broken bound: the test must not hang.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	ex, err := eng.Do(ctx, replayablePost(t, base+"/weather", "{}"), countingPay(p, &signs))
	took := time.Since(start)
	if ex == nil {
		t.Fatalf("Do: %v", err)
	}
	defer ex.Response.Body.Close()
	body, _ := io.ReadAll(ex.Response.Body)
	t.Logf("after %s: %v; status %d body %s; resends %d, signatures %d", took.Round(time.Millisecond), err, ex.Response.StatusCode, body, ex.PendingRetries, signs.Load())
	if !errors.Is(err, ErrSettlementPending) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrSettlementPending once MaxPendingWait passed", err)
	}
	if !strings.Contains(err.Error(), "may have been charged") || !strings.Contains(err.Error(), "before paying again") {
		t.Fatalf("error does not tell what to do: %v", err)
	}
	if took < eng.MaxPendingWait {
		t.Fatalf("gave up after %s, before MaxPendingWait %s", took, eng.MaxPendingWait)
	}
	if ex.Response.StatusCode != 503 || !strings.Contains(string(body), "settlement_pending") {
		t.Fatalf("final answer %d %q, want the last 503 readable", ex.Response.StatusCode, body)
	}
	if n := signs.Load(); n != 1 {
		t.Fatalf("signed %d payments, want 1", n)
	}
	headers := pd.PaymentHeaders()
	if ex.PendingRetries < 1 || len(headers) != 1+ex.PendingRetries {
		t.Fatalf("%d paid requests for %d resends", len(headers), ex.PendingRetries)
	}
	allSame(t, headers)
	if len(s.Payments()) != 0 {
		t.Fatal("the seller behind the pending verifier saw the payment")
	}
}

func TestPendingWaitEndsWithContext(t *testing.T) {
	_, pd, base := pendingSeller(t, -1, "30", "")
	p := newPayer(t)
	var signs atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	eng := p.engine()
	eng.OnPending = func(int, time.Duration) { cancel() } // the caller gives up during the wait
	ex, err := eng.Do(ctx, replayablePost(t, base+"/weather", "{}"), countingPay(p, &signs))
	if !errors.Is(err, ErrSettlementPending) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want ErrSettlementPending and context.Canceled", err)
	}
	ex.Response.Body.Close()
	if ex.PendingRetries != 0 || len(pd.PaymentHeaders()) != 1 {
		t.Fatalf("resends %d, paid requests %d: want none after the context ended", ex.PendingRetries, len(pd.PaymentHeaders()))
	}
}

func TestServiceUnavailableWithoutPendingReasonIsAnswer(t *testing.T) {
	_, pd, base := pendingSeller(t, -1, "1", "upstream_down")
	p := newPayer(t)
	var signs atomic.Int32
	w := &waits{}
	// A wait must not begin; if one does, end it at once so a broken
	// engine fails fast instead of waiting out the default bound.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	eng := p.engine()
	eng.OnPending = func(attempt int, d time.Duration) { w.record(attempt, d); cancel() }
	ex, err := eng.Do(ctx, replayablePost(t, base+"/weather", "{}"), countingPay(p, &signs))
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	defer ex.Response.Body.Close()
	body, _ := io.ReadAll(ex.Response.Body)
	t.Logf("status %d body %s, resends %d", ex.Response.StatusCode, body, ex.PendingRetries)
	if ex.Response.StatusCode != 503 || !strings.Contains(string(body), `"reason":"upstream_down"`) {
		t.Fatalf("answer %d %q, want the seller's 503 with its body intact", ex.Response.StatusCode, body)
	}
	if ex.PendingRetries != 0 || len(pd.PaymentHeaders()) != 1 || len(w.attempts) != 0 {
		t.Fatalf("resends %d, paid requests %d, waits %d: a 503 that is not settlement_pending must be returned at once", ex.PendingRetries, len(pd.PaymentHeaders()), len(w.attempts))
	}
}

func TestPayerReportsUnconfirmedPayment(t *testing.T) {
	_, _, base := pendingSeller(t, -1, "1", "")
	p := newPayer(t)
	p.MaxPendingWait = 500 * time.Millisecond
	res, err := p.Do(context.Background(), post(t, base+"/weather", "{}"))
	t.Logf("%v", err)
	if !errors.Is(err, ErrSettlementPending) || res == nil || res.Signed == nil || !strings.Contains(err.Error(), res.Signed.Nonce) {
		t.Fatalf("err = %v, want ErrSettlementPending naming the authorization sent", err)
	}
	if res.Status != 503 || res.Paid() || res.PendingRetries != 1 {
		t.Fatalf("result status %d paid %v resends %d", res.Status, res.Paid(), res.PendingRetries)
	}
}
