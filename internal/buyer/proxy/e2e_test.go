package proxy_test

import (
	"context"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"sigs.k8s.io/yaml"

	"github.com/obolstack/obol/internal/buyer/proxy"
	"github.com/obolstack/obol/internal/devstack"
	"github.com/obolstack/obol/internal/x402"
)

// The buyer proxy against the real thing: the dev chain with obol's token,
// the facilitator settling on it and the verifier in front of the demo API.
// Three authorizations pay three calls and move exactly 3 × price; the fourth
// call is refused with nothing spent; a restart in between reuses nothing
// (the facilitator would refuse a used nonce, so every call succeeding and
// the balance moving by exactly N × price proves it).
func TestProxyPaysRealVerifierOnDevChain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := devstack.Start(ctx, devstack.Options{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	auths, err := proxy.PreSign(st.Buyer.Key, st.Token, st.Chain.ChainID, st.Seller.Address, st.PriceAtomic, 3, time.Now(), time.Minute) // within the seller's maxTimeoutSeconds
	if err != nil {
		t.Fatal(err)
	}
	dir := demoUpstreamDir(t, st, auths)
	statePath := filepath.Join(t.TempDir(), "state.json")
	start := func() *httptest.Server {
		t.Helper()
		state, err := proxy.LoadState(statePath)
		if err != nil {
			t.Fatal(err)
		}
		s, err := proxy.New(proxy.Options{ConfigDir: dir, State: state, Registry: st.Registry})
		if err != nil {
			t.Fatal(err)
		}
		return httptest.NewServer(s.Handler())
	}
	get := func(srv *httptest.Server) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + "/upstream/demo/weather?city=Lisbon")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	before, err := st.Chain.BalanceOf(ctx, st.Seller.Address)
	if err != nil {
		t.Fatal(err)
	}
	p1 := start()
	for i := 0; i < 2; i++ {
		if code, body := get(p1); code != 200 {
			t.Fatalf("paid call %d: %d %s", i, code, body)
		}
	}
	p1.Close() // the proxy process goes away between calls
	p2 := start()
	defer p2.Close()
	if code, body := get(p2); code != 200 {
		t.Fatalf("paid call after restart: %d %s", code, body)
	}
	mid, _ := st.Chain.BalanceOf(ctx, st.Seller.Address)
	if code, _ := get(p2); code != http.StatusPaymentRequired {
		t.Fatalf("call 4 with an empty pool: want 402, got %d", code)
	}
	after, _ := st.Chain.BalanceOf(ctx, st.Seller.Address)
	want := new(big.Int).Mul(st.PriceAtomic, big.NewInt(3))
	if got := new(big.Int).Sub(after, before); got.Cmp(want) != 0 {
		t.Fatalf("seller received %s atomic units, want exactly %s", got, want)
	}
	if mid.Cmp(after) != 0 {
		t.Fatal("the refused call moved money")
	}
}

// A pool spread over two windows (proxy.Spread) against the real verifier,
// facilitator and token: the first window's authorization pays at once; the
// second window's is not sent before its validAfter (the facilitator and
// the token would refuse it) — the proxy answers 429 with Retry-After,
// nothing spent — and pays once its window opens (15 s later: polled, each
// refused poll costs nothing). The seller gains exactly 2 × price.
func TestSpreadPoolPaysRealVerifierWindowByWindow(t *testing.T) {
	ctx := context.Background()
	st, err := devstack.Start(ctx, devstack.Options{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	// Windows of 40 s (within the dev verifier's maxTimeoutSeconds of 60):
	// the second is valid from 80 − 40 − 25 = 15 s on.
	const validFor = 40 * time.Second
	auths, err := proxy.PreSignSpread(st.Buyer.Key, st.Token, st.Chain.ChainID, st.Seller.Address, st.PriceAtomic, 2, time.Now(), validFor, 2*validFor)
	if err != nil {
		t.Fatal(err)
	}
	dir := demoUpstreamDir(t, st, auths)
	s, err := proxy.New(proxy.Options{ConfigDir: dir, Registry: st.Registry})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	get := func() (int, string, http.Header) {
		t.Helper()
		resp, err := http.Get(srv.URL + "/upstream/demo/weather?city=Lisbon")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), resp.Header
	}
	before, err := st.Chain.BalanceOf(ctx, st.Seller.Address)
	if err != nil {
		t.Fatal(err)
	}
	if code, body, _ := get(); code != http.StatusOK {
		t.Fatalf("first window: %d %s", code, body)
	}
	code, body, h := get()
	if code != http.StatusTooManyRequests || !strings.Contains(body, "next window") || h.Get("Retry-After") == "" {
		t.Fatalf("second call in the first window: %d %s (Retry-After %q); want 429 naming the next window", code, body, h.Get("Retry-After"))
	}
	t.Logf("second call in the first window: %d %s (Retry-After %s)", code, strings.TrimSpace(body), h.Get("Retry-After"))
	mid, _ := st.Chain.BalanceOf(ctx, st.Seller.Address)
	if got := new(big.Int).Sub(mid, before); got.Cmp(st.PriceAtomic) != 0 {
		t.Fatalf("after one paid call and one refusal the seller gained %s, want %s", got, st.PriceAtomic)
	}
	// The dev chain seals a block only when a transaction arrives, and the
	// facilitator simulates against the latest block: a mint before each
	// try keeps the chain's clock current, as a live chain's blocks do.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := st.Chain.Mint(ctx, common.HexToAddress("0x000000000000000000000000000000000000dEaD"), big.NewInt(1)); err != nil {
			t.Fatal(err)
		}
		code, body, _ := get()
		if code == http.StatusOK {
			break
		}
		if code != http.StatusTooManyRequests || time.Now().After(deadline) {
			t.Fatalf("second window: %d %s", code, body)
		}
		time.Sleep(500 * time.Millisecond) // poll: a refused call spends nothing
	}
	after, _ := st.Chain.BalanceOf(ctx, st.Seller.Address)
	if got, want := new(big.Int).Sub(after, before), new(big.Int).Mul(st.PriceAtomic, big.NewInt(2)); got.Cmp(want) != 0 {
		t.Fatalf("seller received %s atomic units, want exactly %s ", got, want)
	}
}

// demoUpstreamDir is a buyer config directory with one upstream, "demo":
// the dev stack's verifier, paid with auths.
func demoUpstreamDir(t *testing.T, st *devstack.Stack, auths []x402.ExactEVMPayload) string {
	t.Helper()
	dir := t.TempDir()
	u := proxy.UpstreamConfig{Name: "demo", Endpoint: st.VerifierURL, Network: st.Token.Chain, PayTo: st.Seller.Address.Hex(),
		Asset: st.Token.Address.Hex(), Price: st.PriceAtomic.String(), EIP712Name: st.Token.EIP712Name,
		EIP712Version: st.Token.EIP712Version, PreSignedAuths: auths}
	b, _ := yaml.Marshal(u)
	if err := os.WriteFile(filepath.Join(dir, "demo.yaml"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}
