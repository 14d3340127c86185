package proxy

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/obolstack/obol/internal/buyer/buyertest"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/x402"
)

// A seller whose settlement is pending twice is asked again with the same
// authorization: one taken from the pool, one spend, one success.
func TestSettlementPendingSpendsOnce(t *testing.T) {
	s := &buyertest.Seller{Version: x402.Version2, Requirements: []x402.Requirement{buyertest.USDCBaseSepolia("1000", seller)}}
	pd := &buyertest.Pending{Seller: s, Times: 2, RetryAfter: "1"}
	srv := httptest.NewServer(pd)
	t.Cleanup(srv.Close)
	f := &fixture{t: t, dir: t.TempDir(), seller: s, srv: srv, clock: &clock{t: time.Now()}}
	f.state = filepath.Join(t.TempDir(), "state.json")
	f.writeUpstream("weather", "1000", 3, "")
	reg := prometheus.NewRegistry()
	p := f.server(reg)

	w := call(t, p.Handler(), "/upstream/weather/forecast", "")
	t.Logf("status %d body %s", w.Code, w.Body)
	if w.Code != 200 || w.Body.String() != `{"forecast":"sunny"}` || w.Header().Get(x402.HeaderPaymentResponse) == "" {
		t.Fatalf("got %d %q, want the paid answer with its settlement header", w.Code, w.Body)
	}
	h := pd.PaymentHeaders()
	if len(h) != 3 || h[0] != h[1] || h[1] != h[2] {
		t.Fatalf("%d paid requests (first two the same: %v, last two: %v), want 3 all with the same authorization", len(h), len(h) > 1 && h[0] == h[1], len(h) > 2 && h[1] == h[2])
	}
	l := labels(p.snap.Load().upstreams["weather"].cfg)
	taken, settled, spent := p.opts.State.Counts("weather")
	attempts, success, failure := testutil.ToFloat64(p.metrics.attempts.With(l)), testutil.ToFloat64(p.metrics.success.With(l)), testutil.ToFloat64(p.metrics.failure.With(l))
	t.Logf("taken %d settled %d spent %s; attempts %v success %v failure %v; remaining %v", taken, settled, spent, attempts, success, failure, testutil.ToFloat64(p.metrics.remaining.With(l)))
	if taken != 1 || settled != 1 || spent.String() != "1000" || attempts != 1 || success != 1 || failure != 0 {
		t.Fatal("want one authorization taken, settled and counted once")
	}
	if v := testutil.ToFloat64(p.metrics.remaining.With(l)); v != 2 {
		t.Fatalf("remaining %v, want 2", v)
	}
}

// A seller that never confirms: the caller is told the payment may have
// been charged, and the authorization stays pending, never offered again.
func TestSettlementNeverConfirmedStaysPending(t *testing.T) {
	s := &buyertest.Seller{Version: x402.Version2, Requirements: []x402.Requirement{buyertest.USDCBaseSepolia("1000", seller)}}
	pd := &buyertest.Pending{Seller: s, Times: -1, RetryAfter: "1"}
	srv := httptest.NewServer(pd)
	t.Cleanup(srv.Close)
	f := &fixture{t: t, dir: t.TempDir(), seller: s, srv: srv, clock: &clock{t: time.Now()}}
	f.state = filepath.Join(t.TempDir(), "state.json")
	f.writeUpstream("weather", "1000", 3, "")
	st, err := LoadState(f.state)
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Options{ConfigDir: f.dir, State: st, Now: f.clock.now, Registry: evm.NewRegistry(), MaxPendingWait: time.Second})
	if err != nil {
		t.Fatal(err)
	}

	w := call(t, p.Handler(), "/upstream/weather/forecast", "")
	t.Logf("status %d body %s", w.Code, w.Body)
	if w.Code != http.StatusBadGateway || !strings.Contains(w.Body.String(), "may have been charged") {
		t.Fatalf("got %d %s, want 502 saying the payment may have been charged", w.Code, w.Body)
	}
	h := pd.PaymentHeaders()
	if len(h) < 2 || h[0] != h[len(h)-1] {
		t.Fatalf("%d paid requests, want the same authorization resent", len(h))
	}
	var nonce string
	for _, a := range p.snap.Load().upstreams["weather"].cfg.PreSignedAuths {
		if st.Used(a.Authorization.From, a.Authorization.Nonce) {
			nonce = a.Authorization.Nonce
			if use, _ := st.Lookup(a.Authorization.From, nonce); use.Outcome != "pending" {
				t.Fatalf("outcome %q, want pending: the seller may still settle it", use.Outcome)
			}
		}
	}
	l := labels(p.snap.Load().upstreams["weather"].cfg)
	taken, settled, _ := st.Counts("weather")
	if nonce == "" || taken != 1 || settled != 0 || testutil.ToFloat64(p.metrics.failure.With(l)) != 1 || testutil.ToFloat64(p.metrics.success.With(l)) != 0 {
		t.Fatalf("taken %d settled %d failure %v success %v, want one taken, none settled, one failure", taken, settled,
			testutil.ToFloat64(p.metrics.failure.With(l)), testutil.ToFloat64(p.metrics.success.With(l)))
	}
}
