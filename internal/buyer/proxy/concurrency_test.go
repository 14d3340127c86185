package proxy

import (
	"math/big"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"sigs.k8s.io/yaml"

	"github.com/obolstack/obol/internal/buyer/buyertest"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/x402"
)

// writePool writes an upstream file for endpoint with n fresh
// authorizations and returns them.
func writePool(t testing.TB, dir, name, endpoint string, n int, mutate func(*UpstreamConfig)) []x402.ExactEVMPayload {
	t.Helper()
	key, _ := crypto.GenerateKey()
	tok, _ := evm.NewRegistry().Token("base-sepolia", "")
	auths, err := PreSign(key, tok, 84532, seller, big.NewInt(1000), n, time.Now(), 48*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	u := UpstreamConfig{Name: name, Endpoint: endpoint, RemoteModel: name + "-remote", Network: "base-sepolia", PayTo: seller.Hex(),
		Asset: tok.Address.Hex(), Price: "1000", EIP712Name: "USDC", EIP712Version: "2", PreSignedAuths: auths}
	if mutate != nil {
		mutate(&u)
	}
	b, _ := yaml.Marshal(u)
	if err := os.WriteFile(filepath.Join(dir, name+".yaml"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return auths
}

// Hundreds of concurrent callers across several upstreams, with reloads in
// the middle: every authorization is spent at most once, each pool pays
// exactly min(calls, pool) times, and the counts agree everywhere (seller,
// state, /status, metrics). Run under -race this also proves the hot path
// reads no configuration a reload writes.
func TestConcurrentCallersAcrossUpstreamsWithReloads(t *testing.T) {
	t.Parallel()
	const pool = 60
	calls := map[string]int{"a": 120, "b": 60, "c": 45, "d": 30}
	dir := t.TempDir()
	sellers := map[string]*buyertest.Seller{}
	for name := range calls {
		s, srv := buyertest.New(t, x402.Version2, buyertest.USDCBaseSepolia("1000", seller))
		sellers[name] = s
		writePool(t, dir, name, srv.URL, pool, nil)
	}
	st, err := LoadState(filepath.Join(t.TempDir(), "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	s, err := New(Options{ConfigDir: dir, State: st, Registerer: reg, Registry: evm.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	h := s.Handler()

	type result struct {
		name string
		code int
	}
	var jobs []string
	for name, n := range calls {
		for i := 0; i < n; i++ {
			jobs = append(jobs, name)
		}
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(jobs), func(i, j int) { jobs[i], jobs[j] = jobs[j], jobs[i] })
	results := make(chan result, len(jobs))
	var wg sync.WaitGroup
	// Callers arrive in waves; after starting each wave the configuration
	// is reloaded while the callers of this and earlier waves are in flight.
	const waves = 12
	for w := 0; w < waves; w++ {
		for _, name := range jobs[w*len(jobs)/waves : (w+1)*len(jobs)/waves] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := httptest.NewRequest(http.MethodGet, "/upstream/"+name+"/x", nil)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				results <- result{name, w.Code}
			}()
		}
		if err := s.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(results)

	ok := map[string]int{}
	for r := range results {
		switch r.code {
		case http.StatusOK:
			ok[r.name]++
		case http.StatusPaymentRequired:
		default:
			t.Errorf("%s: unexpected status %d", r.name, r.code)
		}
	}
	for name, n := range calls {
		want := min(n, pool)
		accepted, refused := 0, 0
		for _, p := range sellers[name].Payments() {
			if p.Reason == "" {
				accepted++
			} else {
				refused++
			}
		}
		if ok[name] != want || accepted != want || refused != 0 {
			t.Errorf("%s: %d calls on a pool of %d: %d answered 200, seller accepted %d and refused %d (a refusal is a reused authorization); want %d",
				name, n, pool, ok[name], accepted, refused, want)
		}
		taken, settled, spent := st.Counts(name)
		if taken != want || settled != want || spent.Int64() != int64(want)*1000 {
			t.Errorf("%s: state says taken %d, settled %d, spent %s; want %d, %d, %d", name, taken, settled, spent, want, want, want*1000)
		}
		l := prometheus.Labels{"upstream": name, "remote_model": name + "-remote", "chain": "eip155:84532"}
		if v := testutil.ToFloat64(s.metrics.remaining.With(l)); v != float64(pool-want) {
			t.Errorf("%s: auth_remaining %v, want %d", name, v, pool-want)
		}
		if v := testutil.ToFloat64(s.metrics.spent.With(l)); v != float64(want) {
			t.Errorf("%s: auth_spent %v, want %d", name, v, want)
		}
		if v := testutil.ToFloat64(s.metrics.success.With(l)); v != float64(want) {
			t.Errorf("%s: payment_success_total %v, want %d", name, v, want)
		}
	}
	for _, u := range s.Status() {
		if want := pool - min(calls[u.Name], pool); u.Remaining != want {
			t.Errorf("/status %s: remaining %d, want %d", u.Name, u.Remaining, want)
		}
	}
}
