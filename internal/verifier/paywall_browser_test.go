package verifier

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/obolstack/obol/internal/testenv"
	"github.com/obolstack/obol/internal/x402"
)

// seen records what the gate answered each request for one path.
type seen struct {
	mu      sync.Mutex
	path    string
	status  []int
	accepts []string
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (s *seen) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		if r.URL.Path != s.path {
			return
		}
		s.mu.Lock()
		s.status = append(s.status, sw.status)
		s.accepts = append(s.accepts, r.Header.Get("Accept"))
		s.mu.Unlock()
	})
}

// TestPaywallInHeadlessChromium loads a priced route in a real browser:
// the page renders, shows what is sold and its price, and the gate answered
// the browser's own request with 402.
func TestPaywallInHeadlessChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("headless browser test skipped with -short")
	}
	up := newUpstream(t)
	g := newGate(t, proxyDoc(up.URL))
	rec := &seen{path: "/weather/today"}
	srv := httptest.NewServer(rec.wrap(g.h)) // loopback
	t.Cleanup(srv.Close)
	url := srv.URL + "/weather/today?city=Paris"

	dom := testenv.HeadlessDOM(t, url)

	for _, want := range []string{
		"<title>Payment required: 0.001 USDC for /weather/today</title>",
		"<h1>Payment required</h1>",
		"Weather now costs <strong>0.001 USDC</strong> per request, paid on base-sepolia.",
		"0x209693Bc6afc0C5328bA36FaF03C514EF312287C",
		"obol buy pay '" + url + "' --key-file buyer.key --max-amount 0.001 --chain base-sepolia",
	} {
		// The DOM is serialized again by the browser: quotes in text are
		// no longer entities.
		if !strings.Contains(dom, want) {
			t.Errorf("rendered page lacks %q; chromium's DOM:\n%s", want, dom)
		}
	}
	if up.hits.Load() != 0 {
		t.Fatal("the browser's unpaid request reached the upstream")
	}

	rec.mu.Lock()
	status, accepts := append([]int(nil), rec.status...), append([]string(nil), rec.accepts...)
	rec.mu.Unlock()
	if len(status) != 1 || status[0] != http.StatusPaymentRequired {
		t.Fatalf("the gate answered chromium's requests for %s with %v, want one 402", rec.path, status)
	}
	if !prefersHTML([]string{accepts[0]}) {
		t.Fatalf("chromium sent Accept %q, which the gate does not read as preferring HTML", accepts[0])
	}
	// The same request from Go, with chromium's Accept header.
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", accepts[0])
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = res.Body.Close()
	if res.StatusCode != http.StatusPaymentRequired || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") || res.Header.Get(x402.HeaderPaymentRequired) == "" {
		t.Fatalf("with chromium's Accept: %d %q, PAYMENT-REQUIRED %q", res.StatusCode, res.Header.Get("Content-Type"), res.Header.Get(x402.HeaderPaymentRequired))
	}
	t.Logf("chromium sent Accept: %s", accepts[0])
}
