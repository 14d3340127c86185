package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/obolstack/obol/internal/buyer/buyertest"
	"github.com/obolstack/obol/internal/x402"
)

// A paid request still running when a reload removes its upstream must not
// re-create the series that reload deleted.
func TestInFlightRequestCannotResurrectPrunedSeries(t *testing.T) {
	s, _ := buyertest.New(t, x402.Version2, buyertest.USDCBaseSepolia("1000", seller))
	paidArrived, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(x402.HeaderPaymentSignature) != "" {
			close(paidArrived)
			<-release
		}
		s.ServeHTTP(w, r)
	}))
	defer srv.Close()
	defer once.Do(func() { close(release) })
	dir := t.TempDir()
	writePool(t, dir, "jokes", srv.URL, 2, nil)
	reg := prometheus.NewRegistry()
	p := newProxy(t, dir, Options{Registerer: reg})
	done := make(chan int, 1)
	go func() {
		w := httptest.NewRecorder()
		p.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/upstream/jokes/x", nil))
		done <- w.Code
	}()
	<-paidArrived
	if err := os.Remove(filepath.Join(dir, "jokes.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := p.Reload(); err != nil {
		t.Fatal(err)
	}
	once.Do(func() { close(release) })
	if code := <-done; code != 200 {
		t.Fatalf("in-flight request: %d", code)
	}
	scrape := httptest.NewServer(promhttpHandler(reg))
	defer scrape.Close()
	resp, err := http.Get(scrape.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), `upstream="jokes"`) {
		t.Fatalf("series of the removed upstream came back:\n%s", body)
	}
}

// Registering twice on one registry is an error, not a panic.
func TestMetricsRegistrationConflictIsAnError(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := NewMetrics(reg); err == nil || !strings.Contains(err.Error(), "register buyer metrics") {
		t.Fatalf("second registration: %v", err)
	}
}
