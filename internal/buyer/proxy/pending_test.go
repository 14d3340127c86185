package proxy

import (
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/obolstack/obol/internal/buyer/buyertest"
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
