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

// A route's upstreamTimeout bounds the whole answer (after-response) or the
// time to the headers (on-headers); a stream whose headers came in time
// may take longer for its body. Beyond the bound: 504, nothing settled.
func TestRouteUpstreamTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow-body" {
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			time.Sleep(400 * time.Millisecond)
			_, _ = w.Write([]byte("done"))
			return
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer up.Close()
	doc := `payTo: 0x209693Bc6afc0C5328bA36FaF03C514EF312287C
chain: base-sepolia
facilitatorURL: http://127.0.0.1:4021
upstream: ` + up.URL + `
routes:
  - {pattern: /hang, price: "0.01", upstreamTimeout: 200ms}
  - {pattern: /hang-stream, price: "0.01", settle: on-headers, upstreamTimeout: 200ms}
  - {pattern: /slow-body, price: "0.01", settle: on-headers, upstreamTimeout: 200ms}
`
	g := newGate(t, doc)
	b := newBuyer(t)
	for _, tc := range []struct {
		path   string
		status int
		settle int
	}{{"/hang", 504, 0}, {"/hang-stream", 504, 0}, {"/slow-body", 200, 1}} {
		_, before := g.fac.calls()
		name, value := b.pay(t, g.evm, 2, challenge(t, g.h, tc.path))
		r := httptest.NewRequest(http.MethodGet, tc.path, nil)
		r.Header.Set(name, value)
		start := time.Now()
		w := g.do(r)
		if w.Code != tc.status {
			t.Fatalf("%s: %d %s, want %d", tc.path, w.Code, w.Body, tc.status)
		}
		if tc.status == 504 && (!strings.Contains(w.Body.String(), "within 200ms: not served, not charged") || time.Since(start) > 10*time.Second) {
			t.Fatalf("%s: %s after %s", tc.path, w.Body, time.Since(start))
		}
		if _, after := g.fac.calls(); after-before != tc.settle {
			t.Fatalf("%s: %d settlements, want %d", tc.path, after-before, tc.settle)
		}
	}
	if _, err := ParseAndCompile("p.yaml", []byte(strings.Replace(doc, "upstreamTimeout: 200ms}", "upstreamTimeout: soon}", 1)), g.evm, Environment{}); err == nil || !strings.Contains(err.Error(), `routes[0].upstreamTimeout: "soon" is not a positive duration`) {
		t.Fatalf("bad upstreamTimeout: %v", err)
	}
}
