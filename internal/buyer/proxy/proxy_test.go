package proxy

import (
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"sigs.k8s.io/yaml"

	"github.com/obolstack/obol/internal/buyer/buyertest"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/x402"
)

var seller = common.HexToAddress("0x209693Bc6afc0C5328bA36FaF03C514EF312287C")

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

type fixture struct {
	t      *testing.T
	dir    string
	state  string
	seller *buyertest.Seller
	srv    *httptest.Server
	clock  *clock
}

// newFixture starts a v-version seller charging price and writes an upstream
// file with n authorizations pre-signed for it.
func newFixture(t *testing.T, version int, price string, n int, dailyCap string) *fixture {
	t.Helper()
	s, srv := buyertest.New(t, version, buyertest.USDCBaseSepolia(price, seller))
	f := &fixture{t: t, dir: t.TempDir(), seller: s, srv: srv, clock: &clock{t: time.Now()}}
	f.state = filepath.Join(t.TempDir(), "state.json")
	f.writeUpstream("weather", price, n, dailyCap)
	return f
}

func (f *fixture) writeUpstream(name, price string, n int, dailyCap string) {
	f.t.Helper()
	key, _ := crypto.GenerateKey()
	reg := evm.NewRegistry()
	tok, _ := reg.Token("base-sepolia", "")
	p, _ := new(big.Int).SetString(price, 10)
	auths, err := PreSign(key, tok, 84532, seller, p, n, time.Now(), 48*time.Hour)
	if err != nil {
		f.t.Fatal(err)
	}
	u := UpstreamConfig{Name: name, Endpoint: f.srv.URL, RemoteModel: "qwen3", Models: []string{name + "-local"},
		Network: "base-sepolia", PayTo: seller.Hex(), Asset: tok.Address.Hex(), Price: price,
		EIP712Name: "USDC", EIP712Version: "2", MaxSpendPerDay: dailyCap, PreSignedAuths: auths}
	b, _ := yaml.Marshal(u)
	if err := os.WriteFile(filepath.Join(f.dir, name+".yaml"), b, 0o600); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) server(reg prometheus.Registerer) *Server {
	f.t.Helper()
	st, err := LoadState(f.state)
	if err != nil {
		f.t.Fatal(err)
	}
	s, err := New(Options{ConfigDir: f.dir, State: st, Registerer: reg, Now: f.clock.now, Registry: evm.NewRegistry()})
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func call(t *testing.T, h http.Handler, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	method := http.MethodGet
	if body != "" {
		method = http.MethodPost
	}
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func accepted(s *buyertest.Seller) (ok, refused int) {
	for _, p := range s.Payments() {
		if p.Reason == "" {
			ok++
		} else {
			refused++
		}
	}
	return
}

func TestPaysFromPoolUntilEmpty(t *testing.T) {
	t.Parallel()
	for _, version := range []int{x402.Version1, x402.Version2} {
		f := newFixture(t, version, "1000", 3, "")
		reg := prometheus.NewRegistry()
		s := f.server(reg)
		for i := 0; i < 3; i++ {
			w := call(t, s.Handler(), "/upstream/weather/forecast", "")
			if w.Code != 200 || !strings.Contains(w.Body.String(), "sunny") {
				t.Fatalf("v%d call %d: %d %s", version, i, w.Code, w.Body)
			}
			if w.Header().Get(x402.ResponseHeaderName(version)) == "" {
				t.Fatalf("v%d: settlement header not passed back", version)
			}
		}
		before := f.seller.Requests()
		w := call(t, s.Handler(), "/upstream/weather/forecast", "")
		if w.Code != http.StatusPaymentRequired || !strings.Contains(w.Body.String(), "refill") {
			t.Fatalf("v%d 4th call: %d %s", version, w.Code, w.Body)
		}
		if got := f.seller.Requests() - before; got != 1 {
			t.Fatalf("v%d: the refused call should reach the seller once, unpaid; got %d requests", version, got)
		}
		if ok, refused := accepted(f.seller); ok != 3 || refused != 0 {
			t.Fatalf("v%d: seller accepted %d, refused %d", version, ok, refused)
		}
		l := prometheus.Labels{"upstream": "weather", "remote_model": "qwen3", "chain": "eip155:84532"}
		if v := testutil.ToFloat64(s.metrics.success.With(l)); v != 3 {
			t.Fatalf("payment_success_total = %v", v)
		}
		if v := testutil.ToFloat64(s.metrics.remaining.With(l)); v != 0 {
			t.Fatalf("auth_remaining = %v", v)
		}
		if v := testutil.ToFloat64(s.metrics.requests.With(l)); v != 4 {
			t.Fatalf("requests_total = %v", v)
		}
	}
}

func TestRestartNeverReusesAnAuthorization(t *testing.T) {
	t.Parallel()
	f := newFixture(t, x402.Version2, "1000", 4, "")
	s1 := f.server(nil)
	for i := 0; i < 2; i++ {
		if w := call(t, s1.Handler(), "/upstream/weather/x", ""); w.Code != 200 {
			t.Fatalf("call %d: %d %s", i, w.Code, w.Body)
		}
	}
	// A new process on the same state file.
	s2 := f.server(nil)
	for i := 0; i < 2; i++ {
		if w := call(t, s2.Handler(), "/upstream/weather/x", ""); w.Code != 200 {
			t.Fatalf("after restart call %d: %d %s", i, w.Code, w.Body)
		}
	}
	if w := call(t, s2.Handler(), "/upstream/weather/x", ""); w.Code != http.StatusPaymentRequired {
		t.Fatalf("5th call must be refused: %d", w.Code)
	}
	ok, refused := accepted(f.seller)
	if ok != 4 || refused != 0 {
		t.Fatalf("seller accepted %d, refused %d (a refusal would be a reused nonce)", ok, refused)
	}
}

func TestDailyCap(t *testing.T) {
	t.Parallel()
	f := newFixture(t, x402.Version2, "1000", 5, "2000")
	s := f.server(nil)
	for i := 0; i < 2; i++ {
		if w := call(t, s.Handler(), "/upstream/weather/x", ""); w.Code != 200 {
			t.Fatalf("call %d: %d %s", i, w.Code, w.Body)
		}
	}
	w := call(t, s.Handler(), "/upstream/weather/x", "")
	if w.Code != http.StatusTooManyRequests || !strings.Contains(w.Body.String(), "daily spend cap") {
		t.Fatalf("third call in a day: %d %s", w.Code, w.Body)
	}
	if ok, _ := accepted(f.seller); ok != 2 {
		t.Fatalf("nothing may be spent past the cap; seller accepted %d", ok)
	}
	f.clock.add(24*time.Hour + time.Second)
	if w := call(t, s.Handler(), "/upstream/weather/x", ""); w.Code != 200 {
		t.Fatalf("next day: %d %s", w.Code, w.Body)
	}
}

func TestPriceRaiseIsNotPaid(t *testing.T) {
	t.Parallel()
	f := newFixture(t, x402.Version2, "1000", 2, "")
	f.seller.Requirements = []x402.Requirement{buyertest.USDCBaseSepolia("2000", seller)}
	reg := prometheus.NewRegistry()
	s := f.server(reg)
	w := call(t, s.Handler(), "/upstream/weather/x", "")
	if w.Code != http.StatusPaymentRequired || !strings.Contains(w.Body.String(), "price 2000, ours 1000") {
		t.Fatalf("raised price: %d %s", w.Code, w.Body)
	}
	if len(f.seller.Payments()) != 0 {
		t.Fatal("a payment was sent for a price the buyer never agreed to")
	}
	st := s.Status()
	if st[0].Remaining != 2 || st[0].Used != 0 {
		t.Fatalf("pool touched: %+v", st[0])
	}
}

func TestOpenAIModelMapping(t *testing.T) {
	t.Parallel()
	f := newFixture(t, x402.Version2, "1000", 1, "")
	f.seller.WantBody = `{"messages":[],"model":"qwen3"}`
	s := f.server(nil)
	w := call(t, s.Handler(), "/v1/chat/completions", `{"model":"weather-local","messages":[]}`)
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	w = call(t, s.Handler(), "/v1/chat/completions", `{"model":"unknown"}`)
	if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), `unknown`) {
		t.Fatalf("unknown model: %d %s", w.Code, w.Body)
	}
}

func TestReloadPrunesRemovedUpstreams(t *testing.T) {
	t.Parallel()
	f := newFixture(t, x402.Version2, "1000", 2, "")
	f.writeUpstream("jokes", "1000", 2, "")
	reg := prometheus.NewRegistry()
	s := f.server(reg)
	call(t, s.Handler(), "/upstream/weather/x", "")
	call(t, s.Handler(), "/upstream/jokes/x", "")
	if err := os.Remove(filepath.Join(f.dir, "jokes.yaml")); err != nil {
		t.Fatal(err)
	}
	w := call(t, s.Handler(), "/admin/reload", "{}")
	if w.Code != 200 {
		t.Fatalf("reload: %d %s", w.Code, w.Body)
	}
	srv := httptest.NewServer(promhttpHandler(reg))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), `upstream="jokes"`) {
		t.Fatalf("series of the removed upstream remain:\n%s", body)
	}
	if !strings.Contains(string(body), `obol_x402_buyer_payment_success_total{chain="eip155:84532",remote_model="qwen3",upstream="weather"} 1`) {
		t.Fatalf("kept upstream lost its series:\n%s", body)
	}
}

func TestBrokenConfigKeepsLastGood(t *testing.T) {
	t.Parallel()
	f := newFixture(t, x402.Version2, "1000", 1, "")
	s := f.server(nil)
	os.WriteFile(filepath.Join(f.dir, "broken.yaml"), []byte("name: x\nendpoint: ftp://nope\n"), 0o600)
	w := call(t, s.Handler(), "/admin/reload", "{}")
	if w.Code != http.StatusUnprocessableEntity || !strings.Contains(w.Body.String(), "broken.yaml") || !strings.Contains(w.Body.String(), "endpoint") {
		t.Fatalf("broken reload: %d %s", w.Code, w.Body)
	}
	if w := call(t, s.Handler(), "/upstream/weather/x", ""); w.Code != 200 {
		t.Fatalf("last good config lost: %d", w.Code)
	}
}

func TestStateWriteFailureSendsNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t, x402.Version2, "1000", 1, "")
	dir := t.TempDir()
	st, _ := LoadState(filepath.Join(dir, "sub", "state.json"))
	s, err := New(Options{ConfigDir: f.dir, State: st, Registry: evm.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	// Make the state directory unwritable by replacing it with a file.
	if err := os.RemoveAll(filepath.Join(dir, "sub")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sub"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	w := call(t, s.Handler(), "/upstream/weather/x", "")
	if w.Code == 200 || len(f.seller.Payments()) != 0 {
		t.Fatalf("paid without a durable record: %d, %d payments", w.Code, len(f.seller.Payments()))
	}
}

func TestStatusJSON(t *testing.T) {
	t.Parallel()
	f := newFixture(t, x402.Version1, "1000", 2, "5000")
	s := f.server(nil)
	call(t, s.Handler(), "/upstream/weather/x", "")
	w := call(t, s.Handler(), "/status", "")
	var st struct{ Upstreams []UpstreamStatus }
	if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	u := st.Upstreams[0]
	if u.Remaining != 1 || u.Used != 1 || u.Settled != 1 || u.Spent != "1000" || u.SpentLast24h != "1000" || u.Chain != "eip155:84532" {
		t.Fatalf("status: %+v", u)
	}
}

// A seller that challenges in v2 but answers the settlement in the v1
// header (mid-migration) still has its transaction recorded.
func TestSettlementHeaderOfTheOtherVersion(t *testing.T) {
	t.Parallel()
	f := newFixture(t, x402.Version2, "1000", 1, "")
	inner := f.seller
	swap := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		inner.ServeHTTP(rec, r)
		for k, vs := range rec.Header() {
			if k == http.CanonicalHeaderKey(x402.HeaderPaymentResponse) {
				k = x402.HeaderXPaymentResponse
			}
			for _, v := range vs {
				w.Header().Add(k, v)
			}
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	}))
	defer swap.Close()
	f.srv = swap
	os.Remove(filepath.Join(f.dir, "weather.yaml"))
	f.writeUpstream("weather", "1000", 1, "")
	st, _ := LoadState(f.state)
	s, err := New(Options{ConfigDir: f.dir, State: st, Registry: evm.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if w := call(t, s.Handler(), "/upstream/weather/x", ""); w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	a := f.seller.Payments()[0]
	if u, _ := st.Lookup(a.From.Hex(), hexutil.Encode(a.Nonce[:])); u.Outcome != "settled" || u.Transaction == "" {
		t.Fatalf("recorded %+v, want settled with its transaction", u)
	}
}
