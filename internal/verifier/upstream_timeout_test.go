package verifier

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// A paid request whose upstream hangs ends at the upstream timeout with a
// 504: not served, not settled, and the authorization is free again.
func TestHangingUpstreamIs504NotCharged(t *testing.T) {
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer hang.Close()
	defer close(release)
	g := newGate(t, proxyDoc(hang.URL))
	srv, err := New(Options{NewFacilitator: func(string) (Facilitator, error) { return g.fac, nil }, Registry: g.evm,
		UpstreamTimeout: 200 * time.Millisecond, Metrics: g.metrics, Gatherer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.ApplyConfig(g.srv.Config()); err != nil {
		t.Fatal(err)
	}
	name, value := newBuyer(t).pay(t, g.evm, 2, challenge(t, srv, "/joke"))
	r := httptest.NewRequest(http.MethodGet, "/joke", nil)
	r.Header.Set(name, value)
	start := time.Now()
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, r)
	if w.Code != http.StatusGatewayTimeout || !strings.Contains(w.Body.String(), "not charged") {
		t.Fatalf("hanging upstream: %d %s, want 504 not charged", w.Code, w.Body)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %s", d)
	}
	if _, settles := g.fac.calls(); settles != 0 {
		t.Fatalf("settled %d times for an answer never served", settles)
	}
	if srv.guard.usedLen() != 0 {
		t.Fatal("the authorization was remembered as used")
	}
}
