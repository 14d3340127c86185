package purchase

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/obolstack/obol/internal/buyer/buyertest"
	"github.com/obolstack/obol/internal/buyer/proxy"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
	"github.com/obolstack/obol/internal/x402"
)

var payTo = common.HexToAddress("0x209693Bc6afc0C5328bA36FaF03C514EF312287C")

func TestAllowance(t *testing.T) {
	for _, c := range []struct{ signed, want, max, got int }{
		{0, 10, 0, 10}, {0, 10, 10, 10}, {5, 10, 10, 5}, {10, 10, 10, 0}, {12, 1, 10, 0},
	} {
		n, why := Allowance(c.signed, c.want, c.max)
		if n != c.got || (n < c.want) != (why != "") {
			t.Errorf("Allowance(%d,%d,%d) = %d %q; want %d", c.signed, c.want, c.max, n, why, c.got)
		}
	}
}

func TestProbeSignAndUpstreamFile(t *testing.T) {
	for _, version := range []int{x402.Version1, x402.Version2} {
		_, srv := buyertest.New(t, version, buyertest.USDCBaseSepolia("1000", payTo))
		reg := evm.NewRegistry()
		terms, err := Probe(context.Background(), nil, reg, srv.URL+"/weather", "")
		if err != nil {
			t.Fatal(err)
		}
		if terms.Price.String() != "1000" || terms.Chain.CAIP2 != "eip155:84532" || terms.Version != version {
			t.Fatalf("terms: %+v", terms)
		}
		key, _ := crypto.GenerateKey()
		now := time.Now()
		auths, err := Sign(key, terms.Payment(), reg, 3, now, time.Hour, 0)
		if err != nil {
			t.Fatal(err)
		}
		pr := &v1alpha1.PurchaseRequest{ObjectMeta: metav1.ObjectMeta{Name: "weather", Namespace: "default"},
			Spec: v1alpha1.PurchaseRequestSpec{Endpoint: srv.URL, Count: 3, PreSignedAuths: auths, Payment: terms.Payment(),
				AutoRefill: &v1alpha1.PurchaseAutoRefill{MaxSpendPerDay: "2000"}}}
		if Signer(pr) != evm.Address(key).Hex() {
			t.Fatalf("signer %s", Signer(pr))
		}
		u, err := Upstream(pr)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := yaml.Marshal(u)
		p := filepath.Join(t.TempDir(), "weather.yaml")
		os.WriteFile(p, b, 0o600)
		if _, err := proxy.LoadFile(p, reg); err != nil {
			t.Fatalf("the buyer proxy rejects the generated file: %v", err)
		}
		if len(PruneExpired(auths, now.Add(2*time.Hour))) != 0 || len(PruneExpired(auths, now)) != 3 {
			t.Fatal("PruneExpired")
		}
	}
}

func TestProbeRefusesUnknownDomainAndFreeURLs(t *testing.T) {
	req := buyertest.USDCBaseSepolia("1000", payTo)
	req.Extra.Name = "USD Coin" // wrong for Base Sepolia
	_, srv := buyertest.New(t, x402.Version2, req)
	_, err := Probe(context.Background(), nil, evm.NewRegistry(), srv.URL, "")
	if err == nil || !strings.Contains(err.Error(), "EIP-712 domain") {
		t.Fatalf("want a domain mismatch refusal, got %v", err)
	}
	free := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hi")) }))
	defer free.Close()
	if _, err := Probe(context.Background(), nil, evm.NewRegistry(), free.URL, ""); err == nil || !strings.Contains(err.Error(), "did not answer 402") {
		t.Fatalf("free URL: %v", err)
	}
}
