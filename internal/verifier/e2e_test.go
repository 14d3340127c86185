package verifier

import (
	"context"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/obolstack/obol/internal/devchain"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/facilitator"
	"github.com/obolstack/obol/internal/x402"
)

// e2e is the real loop: the dev chain with obol's EIP-3009 token, the real
// facilitator server over HTTP, its real client, and the gate over HTTP.
type e2e struct {
	chain   *devchain.Chain
	reg     *evm.Registry
	facURL  string
	up      *upstream
	srv     *Server
	gateURL string
	metrics *Metrics
	prom    *prometheus.Registry
	buyer   *buyer
	seller  common.Address
}

func startE2E(t *testing.T) *e2e {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test skipped with -short")
	}
	ctx := context.Background()
	chain, err := devchain.Start(ctx, devchain.Config{Buyers: 1})
	if err != nil {
		t.Fatalf("start dev chain: %v", err)
	}
	t.Cleanup(func() { _ = chain.Close() })
	reg := evm.NewRegistry()
	chain.Register(reg)
	fs, err := facilitator.NewServer(ctx, facilitator.Config{RPCURL: chain.RPCURL, Chain: chain.CAIP2(), Registry: reg, Key: chain.Facilitator.Key})
	if err != nil {
		t.Fatalf("start facilitator: %v", err)
	}
	facHTTP := httptest.NewServer(fs.Handler())
	t.Cleanup(func() { facHTTP.Close(); fs.Close() })

	e := &e2e{chain: chain, reg: reg, facURL: facHTTP.URL, up: newUpstream(t), prom: prometheus.NewRegistry(),
		buyer: &buyer{key: chain.Buyers[0].Key}, seller: chain.Seller.Address}
	e.metrics, err = NewMetrics(e.prom)
	if err != nil {
		t.Fatal(err)
	}
	e.srv, err = New(Options{
		NewFacilitator: func(u string) (Facilitator, error) { return facilitator.NewClient(u) },
		Registry:       reg,
		Metrics:        e.metrics,
		Gatherer:       e.prom,
		ClassifyFacilitatorError: func(err error) bool {
			fe, ok := err.(*facilitator.Error)
			return ok && fe.Temporary
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.ApplyConfig(compileYAML(t, reg, e.doc(""))); err != nil {
		t.Fatal(err)
	}
	gate := httptest.NewServer(e.srv.Handler())
	t.Cleanup(gate.Close)
	e.gateURL = gate.URL
	return e
}

// doc is the pricing file: both routes inherit the global chain.
func (e *e2e) doc(extra string) string {
	return `payTo: ` + e.seller.Hex() + `
chain: obol-dev
facilitatorURL: ` + e.facURL + `
upstream: ` + e.up.URL + `
` + extra + `routes:
  - pattern: /weather/*
    price: "0.001"
  - pattern: /joke
    price: "0.01"
    offerName: jokes
`
}

func (e *e2e) balance(t *testing.T, a common.Address) *big.Int {
	t.Helper()
	b, err := e.chain.BalanceOf(context.Background(), a)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (e *e2e) get(t *testing.T, path string, h map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.gateURL+path, nil)
	for k, v := range h {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func (e *e2e) challenge(t *testing.T, path string) (*http.Response, *x402.Challenge) {
	t.Helper()
	res, body := e.get(t, path, nil)
	if res.StatusCode != http.StatusPaymentRequired {
		t.Fatalf("unpaid %s: %d %s", path, res.StatusCode, body)
	}
	c, err := x402.ParseChallenge(res.Header, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return res, c
}

func (e *e2e) value(t *testing.T, vec *OfferFamily, offer string) float64 {
	return testutil.ToFloat64(vec.Series(offerLabelValues(Offer{"default", offer}, e.chain.CAIP2())...))
}

func TestEndToEnd(t *testing.T) {
	e := startE2E(t)
	buyerAddr := e.chain.Buyers[0].Address
	dev := e.chain.CAIP2()

	t.Run("unpaid gets 402 in v2 and v1 shapes", func(t *testing.T) {
		res, c := e.challenge(t, "/weather/today")
		if c.Version != 2 || res.Header.Get(x402.HeaderPaymentRequired) == "" {
			t.Fatalf("v2: %+v", c)
		}
		r := c.Requirements[0]
		if r.Network != dev || r.Amount != "1000" || !strings.EqualFold(r.Asset, e.chain.Token.Address.Hex()) || r.Extra.Name != e.chain.Token.EIP712Name {
			t.Fatalf("v2 requirement: %+v", r)
		}
		v1 := compileYAML(t, e.reg, e.doc("challengeVersion: 1\n"))
		s1, _ := New(Options{NewFacilitator: func(u string) (Facilitator, error) { return facilitator.NewClient(u) }, Registry: e.reg})
		if err := s1.ApplyConfig(v1); err != nil {
			t.Fatal(err)
		}
		w := httptest.NewRecorder()
		s1.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/joke", nil))
		body := decodeJSON(t, w.Body.Bytes())
		a := body["accepts"].([]any)[0].(map[string]any)
		if w.Code != 402 || body["x402Version"] != float64(1) || a["network"] != devchainName(e) || a["maxAmountRequired"] != "10000" {
			t.Fatalf("v1: %d %s", w.Code, w.Body)
		}
	})

	for _, version := range []int{x402.Version2, x402.Version1} {
		t.Run("paid "+map[int]string{1: "v1", 2: "v2"}[version]+" settles on chain", func(t *testing.T) {
			_, c := e.challenge(t, "/weather/today")
			name, value := e.buyer.pay(t, e.reg, version, c.Requirements[0])
			sellerBefore, buyerBefore := e.balance(t, e.seller), e.balance(t, buyerAddr)
			chargedBefore := e.value(t, e.metrics.Charged, "weather")
			res, body := e.get(t, "/weather/today", map[string]string{name: value})
			if res.StatusCode != 200 || body != `{"weather":"sunny"}` {
				t.Fatalf("paid: %d %s", res.StatusCode, body)
			}
			hdr := x402.ResponseHeaderName(version)
			sr, err := x402.DecodeSettleResponse(hdr, res.Header.Get(hdr))
			if err != nil || !sr.Success || !strings.HasPrefix(sr.Transaction, "0x") {
				t.Fatalf("%s: %v %+v", hdr, err, sr)
			}
			if d := new(big.Int).Sub(e.balance(t, e.seller), sellerBefore); d.Int64() != 1000 {
				t.Fatalf("seller received %s, want 1000", d)
			}
			if d := new(big.Int).Sub(buyerBefore, e.balance(t, buyerAddr)); d.Int64() != 1000 {
				t.Fatalf("buyer paid %s, want 1000", d)
			}
			if got := e.value(t, e.metrics.Charged, "weather"); got != chargedBefore+1 {
				t.Fatalf("charged %v", got)
			}
			last := testutil.ToFloat64(e.metrics.LastPaymentSuccess.Series(offerLabelValues(Offer{"default", "weather"}, dev)...))
			if d := time.Since(time.Unix(int64(last), 0)); d < -2*time.Second || d > 5*time.Second {
				t.Fatalf("last payment gauge %v is %s from now", last, d)
			}

			// The same payment again is refused, and nothing moves.
			res, body = e.get(t, "/weather/today", map[string]string{name: value})
			if res.StatusCode != 402 {
				t.Fatalf("replay: %d %s", res.StatusCode, body)
			}
			if d := new(big.Int).Sub(e.balance(t, e.seller), sellerBefore); d.Int64() != 1000 {
				t.Fatal("replay moved money")
			}
		})
	}

	t.Run("replay after a restart is refused by the chain", func(t *testing.T) {
		_, c := e.challenge(t, "/joke")
		name, value := e.buyer.pay(t, e.reg, 2, c.Requirements[0])
		if res, body := e.get(t, "/joke", map[string]string{name: value}); res.StatusCode != 200 {
			t.Fatalf("paid: %d %s", res.StatusCode, body)
		}
		// A fresh gate has no memory of it: the facilitator's simulation
		// sees the used nonce.
		fresh, _ := New(Options{NewFacilitator: func(u string) (Facilitator, error) { return facilitator.NewClient(u) }, Registry: e.reg})
		if err := fresh.ApplyConfig(compileYAML(t, e.reg, e.doc(""))); err != nil {
			t.Fatal(err)
		}
		hits := e.up.hits.Load()
		r := httptest.NewRequest(http.MethodGet, "/joke", nil)
		r.Header.Set(name, value)
		w := httptest.NewRecorder()
		fresh.Handler().ServeHTTP(w, r)
		if w.Code != 402 || e.up.hits.Load() != hits {
			t.Fatalf("replay on a fresh gate: %d %s", w.Code, w.Body)
		}
	})

	t.Run("upstream 500 is passed through and not charged", func(t *testing.T) {
		e.up.status.Store(500)
		defer e.up.status.Store(200)
		_, c := e.challenge(t, "/joke")
		name, value := e.buyer.pay(t, e.reg, 2, c.Requirements[0])
		sellerBefore := e.balance(t, e.seller)
		charged := e.value(t, e.metrics.Charged, "jokes")
		res, _ := e.get(t, "/joke", map[string]string{name: value})
		if res.StatusCode != 500 || res.Header.Get(x402.HeaderPaymentResponse) != "" {
			t.Fatalf("upstream error: %d", res.StatusCode)
		}
		if e.balance(t, e.seller).Cmp(sellerBefore) != 0 || e.value(t, e.metrics.Charged, "jokes") != charged {
			t.Fatal("charged for an upstream error")
		}
	})

	t.Run("malformed payment is 400", func(t *testing.T) {
		res, body := e.get(t, "/joke", map[string]string{x402.HeaderPaymentSignature: "bm90IGpzb24="})
		if res.StatusCode != 400 || !strings.Contains(body, x402.HeaderPaymentSignature) {
			t.Fatalf("%d %s", res.StatusCode, body)
		}
	})

	t.Run("facilitator down: 503 and the upstream is not called", func(t *testing.T) {
		dead := httptest.NewServer(http.NotFoundHandler())
		deadURL := dead.URL
		dead.Close()
		broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `{"error":"database on fire"}`, http.StatusInternalServerError)
		}))
		defer broken.Close()
		for _, tc := range []struct {
			url    string
			status int
		}{{deadURL, 503}, {broken.URL, 502}} {
			g, _ := New(Options{NewFacilitator: func(u string) (Facilitator, error) { return facilitator.NewClient(u) }, Registry: e.reg,
				ClassifyFacilitatorError: func(err error) bool { fe, ok := err.(*facilitator.Error); return ok && fe.Temporary }})
			if err := g.ApplyConfig(compileYAML(t, e.reg, strings.Replace(e.doc(""), e.facURL, tc.url, 1))); err != nil {
				t.Fatal(err)
			}
			_, c := e.challenge(t, "/joke")
			name, value := e.buyer.pay(t, e.reg, 2, c.Requirements[0])
			hits := e.up.hits.Load()
			r := httptest.NewRequest(http.MethodGet, "/joke", nil)
			r.Header.Set(name, value)
			w := httptest.NewRecorder()
			g.Handler().ServeHTTP(w, r)
			if w.Code != tc.status || e.up.hits.Load() != hits {
				t.Fatalf("facilitator %s: %d (want %d), upstream hits +%d", tc.url, w.Code, tc.status, e.up.hits.Load()-hits)
			}
		}
	})

	t.Run("ForwardAuth settle-first charges before 200", func(t *testing.T) {
		fa, _ := New(Options{NewFacilitator: func(u string) (Facilitator, error) { return facilitator.NewClient(u) }, Registry: e.reg})
		if err := fa.ApplyConfig(compileYAML(t, e.reg, e.doc("mode: forwardAuth\nforwardAuth: settle-first\n"))); err != nil {
			t.Fatal(err)
		}
		w := httptest.NewRecorder()
		fa.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/verify", nil))
		if w.Code != http.StatusForbidden {
			t.Fatalf("missing X-Forwarded-Uri: %d", w.Code)
		}
		w = httptest.NewRecorder()
		fa.Handler().ServeHTTP(w, faRequest("/joke"))
		c, err := x402.ParseChallenge(w.Header(), w.Body.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		name, value := e.buyer.pay(t, e.reg, 2, c.Requirements[0])
		sellerBefore := e.balance(t, e.seller)
		r := faRequest("/joke")
		r.Header.Set(name, value)
		w = httptest.NewRecorder()
		fa.Handler().ServeHTTP(w, r)
		if w.Code != 200 || w.Header().Get(x402.HeaderPaymentResponse) == "" {
			t.Fatalf("settle-first: %d %s", w.Code, w.Body)
		}
		if d := new(big.Int).Sub(e.balance(t, e.seller), sellerBefore); d.Int64() != 10000 {
			t.Fatalf("seller received %s before the 200, want 10000", d)
		}
	})

	t.Run("metrics carry the inherited chain; reload prunes removed offers", func(t *testing.T) {
		fams := scrape(t, e.srv.Handler())
		for _, name := range offerSeries {
			if len(fams[name]) == 0 {
				t.Fatalf("no %s", name)
			}
			for _, s := range fams[name] {
				if string(s.Metric[LabelChain]) != dev {
					t.Fatalf("%s has chain=%q, want %s", s.Metric, s.Metric[LabelChain], dev)
				}
			}
		}
		atomic := testutil.ToFloat64(e.metrics.ChargedAtomicUnits.Series(offerLabelValues(Offer{"default", "weather"}, dev, e.chain.Token.Address.Hex())...))
		if atomic != 2000 {
			t.Fatalf("weather charged atomic units %v, want 2000", atomic)
		}
		weatherCharged := e.value(t, e.metrics.Charged, "weather")
		cut := strings.Replace(e.doc(""), "  - pattern: /joke\n    price: \"0.01\"\n    offerName: jokes\n", "", 1)
		if err := e.srv.ApplyConfig(compileYAML(t, e.reg, cut)); err != nil {
			t.Fatal(err)
		}
		for _, name := range offerSeries {
			for _, s := range scrape(t, e.srv.Handler())[name] {
				if s.Metric[LabelOfferName] == "jokes" {
					t.Fatalf("removed offer's series survived: %s", s.Metric)
				}
			}
		}
		if got := e.value(t, e.metrics.Charged, "weather"); got != weatherCharged || got != 2 {
			t.Fatalf("kept offer's charged = %v, want %v", got, weatherCharged)
		}
	})
}

func devchainName(e *e2e) string {
	c, _ := e.reg.Chain(e.chain.CAIP2())
	return c.Name
}
