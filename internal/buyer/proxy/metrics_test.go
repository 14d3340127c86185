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

	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/obolstack/obol/internal/buyer/buyertest"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/x402"
)

// A paid request still running when a reload removes its upstream must not
// re-create the series that reload deleted.
func TestInFlightRequestCannotResurrectPrunedSeries(t *testing.T) {
	t.Parallel()
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
	t.Parallel()
	reg := prometheus.NewRegistry()
	if _, err := NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := NewMetrics(reg); err == nil || !strings.Contains(err.Error(), "register buyer metrics") {
		t.Fatalf("second registration: %v", err)
	}
}

// scrape returns the text exposition of reg through the real handler.
func scrape(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	srv := httptest.NewServer(promhttpHandler(reg))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// throughHook puts a server in front of the fixture's seller that runs fn
// when a paid request arrives, and rewrites upstream name to use it.
func (f *fixture) throughHook(name string, fn func()) {
	f.t.Helper()
	inner := f.seller
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(x402.HeaderPaymentSignature) != "" || r.Header.Get(x402.HeaderXPayment) != "" {
			fn()
		}
		inner.ServeHTTP(w, r)
	}))
	f.t.Cleanup(hook.Close)
	orig := f.srv
	f.srv = hook
	f.writeUpstream(name, "1000", 2, "")
	f.srv = orig
}

// breakJournal closes the upstream's journal file under its lock, so the
// next line written to it fails (as a full or failed disk would).
func breakJournal(t *testing.T, st *State, upstream string) {
	st.mu.Lock()
	u := st.ups[upstream]
	st.mu.Unlock()
	if u == nil {
		t.Error("no journal for " + upstream)
		return
	}
	u.io.Lock()
	defer u.io.Unlock()
	if u.f != nil {
		u.f.Close()
	}
}

// A paid 2xx without a settlement header is an unsettled confirmation,
// not a success (anchor: obol_x402_buyer_payment_unsettled_confirmations_total).
func TestPaidAnswerWithoutSettlementHeaderIsUnsettled(t *testing.T) {
	t.Parallel()
	f := newFixture(t, x402.Version2, "1000", 2, "")
	f.seller.NoSettlementHeader = true
	reg := prometheus.NewRegistry()
	s := f.server(reg)
	if w := call(t, s.Handler(), "/upstream/weather/x", ""); w.Code != 200 {
		t.Fatalf("paid call: %d %s", w.Code, w.Body)
	}
	body := scrape(t, reg)
	for _, want := range []string{
		`obol_x402_buyer_payment_unsettled_confirmations_total{chain="eip155:84532",remote_model="qwen3",upstream="weather"} 1`,
		`obol_x402_buyer_payment_attempts_total{chain="eip155:84532",remote_model="qwen3",upstream="weather"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("want %s in:\n%s", want, body)
		}
	}
	if strings.Contains(body, "obol_x402_buyer_payment_success_total{") {
		t.Errorf("an unsettled answer was counted as a success:\n%s", body)
	}
	// The authorization is spent all the same: never offered again.
	a := f.seller.Payments()[0]
	if !s.opts.State.Used(a.From.Hex(), hexutil.Encode(a.Nonce[:])) {
		t.Fatal("the unsettled authorization is not recorded as used")
	}
}

// A payment whose outcome cannot be journaled is counted
// (anchor: obol_x402_buyer_confirm_spend_failure_total); the answer still
// reaches the caller.
func TestJournalFailureCountsConfirmSpendFailure(t *testing.T) {
	t.Parallel()
	f := newFixture(t, x402.Version2, "1000", 2, "")
	st, err := LoadState(f.state)
	if err != nil {
		t.Fatal(err)
	}
	f.throughHook("weather", func() { breakJournal(t, st, "weather") })
	reg := prometheus.NewRegistry()
	s, err := New(Options{ConfigDir: f.dir, State: st, Registerer: reg, Registry: evm.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if w := call(t, s.Handler(), "/upstream/weather/x", ""); w.Code != 200 {
		t.Fatalf("paid call: %d %s", w.Code, w.Body)
	}
	body := scrape(t, reg)
	for _, want := range []string{
		`obol_x402_buyer_confirm_spend_failure_total{chain="eip155:84532",remote_model="qwen3",upstream="weather"} 1`,
		`obol_x402_buyer_payment_success_total{chain="eip155:84532",remote_model="qwen3",upstream="weather"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("want %s in:\n%s", want, body)
		}
	}
}

// Both families are pruned with the others when an upstream goes away.
func TestReloadPrunesUnsettledAndConfirmFailureSeries(t *testing.T) {
	t.Parallel()
	f := newFixture(t, x402.Version2, "1000", 2, "")
	f.seller.NoSettlementHeader = true
	st, err := LoadState(f.state)
	if err != nil {
		t.Fatal(err)
	}
	f.throughHook("jokes", func() { breakJournal(t, st, "jokes") })
	reg := prometheus.NewRegistry()
	s, err := New(Options{ConfigDir: f.dir, State: st, Registerer: reg, Registry: evm.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"weather", "jokes"} {
		if w := call(t, s.Handler(), "/upstream/"+u+"/x", ""); w.Code != 200 {
			t.Fatalf("%s: %d %s", u, w.Code, w.Body)
		}
	}
	jokes := []string{
		`obol_x402_buyer_payment_unsettled_confirmations_total{chain="eip155:84532",remote_model="qwen3",upstream="jokes"} 1`,
		`obol_x402_buyer_confirm_spend_failure_total{chain="eip155:84532",remote_model="qwen3",upstream="jokes"} 1`,
	}
	body := scrape(t, reg)
	for _, want := range jokes {
		if !strings.Contains(body, want) {
			t.Fatalf("before reload, want %s in:\n%s", want, body)
		}
	}
	if err := os.Remove(filepath.Join(f.dir, "jokes.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	body = scrape(t, reg)
	if strings.Contains(body, `upstream="jokes"`) {
		t.Fatalf("series of the removed upstream remain:\n%s", body)
	}
	if !strings.Contains(body, `obol_x402_buyer_payment_unsettled_confirmations_total{chain="eip155:84532",remote_model="qwen3",upstream="weather"} 1`) {
		t.Fatalf("kept upstream lost its series:\n%s", body)
	}
}
