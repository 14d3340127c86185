package proxy_test

import (
	"context"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/obolstack/obol/internal/buyer/proxy"
	"github.com/obolstack/obol/internal/devstack"
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
	dir := t.TempDir()
	u := proxy.UpstreamConfig{Name: "demo", Endpoint: st.VerifierURL, Network: st.Token.Chain, PayTo: st.Seller.Address.Hex(),
		Asset: st.Token.Address.Hex(), Price: st.PriceAtomic.String(), EIP712Name: st.Token.EIP712Name,
		EIP712Version: st.Token.EIP712Version, PreSignedAuths: auths}
	b, _ := yaml.Marshal(u)
	if err := os.WriteFile(filepath.Join(dir, "demo.yaml"), b, 0o600); err != nil {
		t.Fatal(err)
	}
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
