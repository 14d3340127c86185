package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/obolstack/obol/internal/buyer/buyertest"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/x402"
)

// recorder wraps a seller and keeps the headers of every request it got.
type recorder struct {
	mu      sync.Mutex
	headers []http.Header
	next    http.Handler
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.headers = append(r.headers, req.Header.Clone())
	r.mu.Unlock()
	r.next.ServeHTTP(w, req)
}

func newProxy(t *testing.T, dir string, opts Options) *Server {
	t.Helper()
	st, err := LoadState(filepath.Join(t.TempDir(), "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	opts.ConfigDir, opts.State, opts.Registry = dir, st, evm.NewRegistry()
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A caller's credentials are its own: they never reach a third-party seller,
// neither on the unpaid request nor on the paid one.
func TestCallerCredentialsNeverReachTheSeller(t *testing.T) {
	t.Parallel()
	s, _ := buyertest.New(t, x402.Version2, buyertest.USDCBaseSepolia("1000", seller))
	rec := &recorder{next: s}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	dir := t.TempDir()
	writePool(t, dir, "weather", srv.URL, 1, nil)
	p := newProxy(t, dir, Options{StripHeaders: []string{"X-Internal-Token"}})
	r := httptest.NewRequest(http.MethodGet, "/upstream/weather/x", nil)
	r.Header.Set("Authorization", "Bearer in-cluster-secret")
	r.Header.Set("Cookie", "session=abc")
	r.Header.Set("Proxy-Authorization", "Basic eA==")
	r.Header.Set("X-Internal-Token", "t")
	r.Header.Set("Connection", "X-Hop")
	r.Header.Set("X-Hop", "1")
	r.Header.Set("X-Request-Id", "kept")
	w := httptest.NewRecorder()
	p.Handler().ServeHTTP(w, r)
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if len(rec.headers) != 2 {
		t.Fatalf("seller got %d requests, want the unpaid and the paid one", len(rec.headers))
	}
	for i, h := range rec.headers {
		for _, name := range []string{"Authorization", "Cookie", "Proxy-Authorization", "X-Internal-Token", "X-Hop"} {
			if v := h.Get(name); v != "" {
				t.Errorf("request %d: %s %q reached the seller", i, name, v)
			}
		}
		if h.Get("X-Request-Id") != "kept" {
			t.Errorf("request %d: an ordinary header was dropped", i)
		}
	}
}

// An upstream that needs a credential names it in forwardHeaders.
func TestUpstreamMayAllowACredential(t *testing.T) {
	t.Parallel()
	s, _ := buyertest.New(t, x402.Version2, buyertest.USDCBaseSepolia("1000", seller))
	rec := &recorder{next: s}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	dir := t.TempDir()
	writePool(t, dir, "weather", srv.URL, 1, func(u *UpstreamConfig) { u.ForwardHeaders = []string{"authorization"} })
	p := newProxy(t, dir, Options{})
	r := httptest.NewRequest(http.MethodGet, "/upstream/weather/x", nil)
	r.Header.Set("Authorization", "Bearer for-the-seller")
	r.Header.Set("Cookie", "session=abc")
	w := httptest.NewRecorder()
	p.Handler().ServeHTTP(w, r)
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	for i, h := range rec.headers {
		if h.Get("Authorization") != "Bearer for-the-seller" || h.Get("Cookie") != "" {
			t.Fatalf("request %d: Authorization %q, Cookie %q", i, h.Get("Authorization"), h.Get("Cookie"))
		}
	}
}

// A seller that redirects the paid request elsewhere: the payment header
// (a spendable authorization) must not follow, and neither does the request.
func TestPaymentNeverFollowsARedirectToAnotherOrigin(t *testing.T) {
	t.Parallel()
	var reached, paidThere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		if r.Header.Get(x402.HeaderPaymentSignature) != "" || r.Header.Get(x402.HeaderXPayment) != "" {
			paidThere.Add(1)
		}
		_, _ = io.WriteString(w, "elsewhere")
	}))
	defer other.Close()
	s, _ := buyertest.New(t, x402.Version2, buyertest.USDCBaseSepolia("1000", seller))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(x402.HeaderPaymentSignature) != "" {
			http.Redirect(w, r, other.URL+"/steal", http.StatusTemporaryRedirect)
			return
		}
		s.ServeHTTP(w, r)
	}))
	defer srv.Close()
	dir := t.TempDir()
	writePool(t, dir, "weather", srv.URL, 1, nil)
	p := newProxy(t, dir, Options{})
	w := httptest.NewRecorder()
	p.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/upstream/weather/x", nil))
	if n := paidThere.Load(); n != 0 {
		t.Fatalf("the payment header followed the redirect to another origin %d time(s)", n)
	}
	if n := reached.Load(); n != 0 {
		t.Fatalf("the paid request followed a redirect to another origin (%d request(s))", n)
	}
	if w.Code != http.StatusTemporaryRedirect {
		t.Fatalf("caller got %d, want the seller's redirect", w.Code)
	}
}
