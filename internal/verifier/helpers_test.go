package verifier

import (
	"context"
	"crypto/ecdsa"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/x402"
)

const (
	testPayTo = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
	// USDC on Base Sepolia.
	testUSDC = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
)

// stubFacilitator answers verify/settle in process (unit tests only).
type stubFacilitator struct {
	mu          sync.Mutex
	verifyCalls int
	settleCalls int
	verify      func(x402.VerifyRequest) (*x402.VerifyResponse, error)
	verifyCtx   func(context.Context, x402.VerifyRequest) (*x402.VerifyResponse, error)
	settle      func(x402.SettleRequest) (*x402.SettleResponse, error)
	settleCtx   func(context.Context, x402.SettleRequest) (*x402.SettleResponse, error)
	lastVerify  x402.VerifyRequest
}

func (f *stubFacilitator) Verify(ctx context.Context, req x402.VerifyRequest) (*x402.VerifyResponse, error) {
	f.mu.Lock()
	f.verifyCalls++
	f.lastVerify = req
	fn, fnCtx := f.verify, f.verifyCtx
	f.mu.Unlock()
	if fnCtx != nil {
		return fnCtx(ctx, req)
	}
	if fn != nil {
		return fn(req)
	}
	return &x402.VerifyResponse{IsValid: true}, nil
}

func (f *stubFacilitator) Settle(ctx context.Context, req x402.SettleRequest) (*x402.SettleResponse, error) {
	f.mu.Lock()
	f.settleCalls++
	fn, fnCtx := f.settle, f.settleCtx
	f.mu.Unlock()
	if fnCtx != nil {
		return fnCtx(ctx, req)
	}
	if fn != nil {
		return fn(req)
	}
	return &x402.SettleResponse{Success: true, Transaction: "0x" + strings.Repeat("ab", 32), Network: "eip155:84532"}, nil
}

func (f *stubFacilitator) calls() (int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.verifyCalls, f.settleCalls
}

// upstream is a test origin that counts requests and records the last one.
type upstream struct {
	*httptest.Server
	hits   atomic.Int64
	status atomic.Int64
	mu     sync.Mutex
	last   *http.Request
	body   string
}

func newUpstream(t testing.TB) *upstream {
	u := &upstream{body: `{"weather":"sunny"}`}
	u.status.Store(200)
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		u.mu.Lock()
		u.last = r.Clone(context.Background())
		body := u.body
		u.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Upstream-Path", r.URL.Path)
		w.WriteHeader(int(u.status.Load()))
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) lastRequest() *http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.last
}

type testGate struct {
	srv     *Server
	h       http.Handler
	fac     *stubFacilitator
	reg     *prometheus.Registry
	metrics *Metrics
	evm     *evm.Registry
}

func compileYAML(t testing.TB, reg *evm.Registry, doc string) *Config {
	t.Helper()
	spec, err := ParseSpec("pricing.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Compile(spec, reg, Environment{Getenv: func(k string) string {
		if k == "UPSTREAM_TOKEN" {
			return "s3cret"
		}
		return ""
	}})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func newGate(t testing.TB, doc string) *testGate {
	t.Helper()
	g := &testGate{fac: &stubFacilitator{}, reg: prometheus.NewRegistry(), evm: evm.NewRegistry()}
	m, err := NewMetrics(g.reg)
	if err != nil {
		t.Fatal(err)
	}
	g.metrics = m
	g.srv, err = New(Options{
		NewFacilitator: func(string) (Facilitator, error) { return g.fac, nil },
		Registry:       g.evm,
		Metrics:        m,
		Gatherer:       g.reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.srv.Close() })
	if err := g.srv.ApplyConfig(compileYAML(t, g.evm, doc)); err != nil {
		t.Fatal(err)
	}
	g.h = g.srv.Handler()
	return g
}

func (g *testGate) do(r *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	g.h.ServeHTTP(w, r)
	return w
}

// buyer signs payments.
type buyer struct {
	key *ecdsa.PrivateKey
}

func newBuyer(t testing.TB) *buyer {
	k, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return &buyer{key: k}
}

// pay answers a challenge's first requirement in the given version, with a
// domain from the registry.
func (b *buyer) pay(t testing.TB, reg *evm.Registry, version int, req x402.Requirement) (string, string) {
	t.Helper()
	ch, err := reg.Chain(req.Network)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := reg.Token(ch.CAIP2, req.Asset)
	if err != nil {
		// A token the registry does not know (dev): build the domain from extra.
		tok = evm.Token{Address: commonAddr(req.Asset), EIP712Name: req.Extra.Name, EIP712Version: req.Extra.Version}
	}
	value, err := evm.ParseAtomic(req.Amount)
	if err != nil {
		t.Fatal(err)
	}
	auth, err := evm.NewAuthorization(crypto.PubkeyToAddress(b.key.PublicKey), commonAddr(req.PayTo), value, time.Now(), time.Duration(req.MaxTimeoutSeconds)*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := evm.Sign(b.key, tok.Domain(ch.ChainID), auth)
	if err != nil {
		t.Fatal(err)
	}
	p, err := x402.NewExactPayment(version, req, x402.ExactEVMPayload{Signature: "0x" + hexString(sig), Authorization: auth.Wire()})
	if err != nil {
		t.Fatal(err)
	}
	name, value2, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return name, value2
}

// challenge fetches the 402 for a path and returns its first requirement.
func challenge(t testing.TB, h http.Handler, target string) x402.Requirement {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, target, nil))
	if w.Code != http.StatusPaymentRequired {
		t.Fatalf("GET %s unpaid: status %d, want 402: %s", target, w.Code, w.Body)
	}
	c, err := x402.ParseChallenge(w.Header(), w.Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return c.Requirements[0]
}

func decodeJSON(t testing.TB, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	return m
}

func commonAddr(s string) common.Address { return common.HexToAddress(s) }

func hexString(b []byte) string { return hex.EncodeToString(b) }
