package verifier

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
)

// The benchmarks share one upstream on loopback; the baseline is a bare
// httputil.ReverseProxy in front of it, so the ratio shows what the gate
// adds. The facilitator is an in-process stub (benchmarks only): the
// figures measure the gate, not a chain.

func benchUpstream(b *testing.B) *url.URL {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"weather":"sunny","temperature":21}`)
	}))
	b.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u
}

func serveBench(b *testing.B, h http.Handler, newReq func(i int) *http.Request, want int) {
	b.Helper()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, newReq(i))
		if w.Code != want {
			b.Fatalf("status %d, want %d: %s", w.Code, want, w.Body)
		}
	}
}

func BenchmarkBaselineReverseProxy(b *testing.B) {
	up := benchUpstream(b)
	rp := httputil.NewSingleHostReverseProxy(up)
	serveBench(b, rp, func(int) *http.Request { return httptest.NewRequest(http.MethodGet, "/weather/today", nil) }, 200)
}

func BenchmarkGate402(b *testing.B) {
	up := benchUpstream(b)
	g := newGate(b, proxyDoc(up.String()))
	serveBench(b, g.h, func(int) *http.Request { return httptest.NewRequest(http.MethodGet, "/weather/today", nil) }, 402)
}

func BenchmarkGateFreeRoute(b *testing.B) {
	up := benchUpstream(b)
	g := newGate(b, proxyDoc(up.String()))
	serveBench(b, g.h, func(int) *http.Request { return httptest.NewRequest(http.MethodGet, "/health", nil) }, 200)
}

func BenchmarkGatePaidProxy(b *testing.B) {
	up := benchUpstream(b)
	g := newGate(b, proxyDoc(up.String()))
	req := challenge(b, g.h, "/weather/today")
	buyer := newBuyer(b)
	// Every iteration needs a fresh authorization (a used one is refused);
	// signing happens before the timer starts.
	names, values := make([]string, b.N), make([]string, b.N)
	for i := range names {
		names[i], values[i] = buyer.pay(b, g.evm, 2, req)
	}
	serveBench(b, g.h, func(i int) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/weather/today", nil)
		r.Header.Set(names[i], values[i])
		return r
	}, 200)
}
