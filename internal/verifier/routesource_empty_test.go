package verifier

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A route source (the cluster's ServiceOffers) may serve no offer at all:
// before the first is published, and after the last is deleted. Then the
// verifier is ready, charges nothing, and the gone offer's series are pruned
// — it must not keep serving the last config. A pricing file without routes
// stays an error.
func TestRouteSourceMayHaveNoRoutes(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer up.Close()
	g := newGate(t, proxyDoc(up.URL))
	if w := g.do(httptest.NewRequest(http.MethodGet, "/joke", nil)); w.Code != http.StatusPaymentRequired {
		t.Fatalf("priced route: %d", w.Code)
	}
	if n := testutil.CollectAndCount(g.metrics.PaymentRequired); n == 0 {
		t.Fatal("no series before the reload")
	}

	spec, err := ParseSpec("pricing.yaml", []byte(proxyDoc(up.URL)))
	if err != nil {
		t.Fatal(err)
	}
	empty, err := Compile(spec.WithRoutes("kube", nil), g.evm, Environment{})
	if err != nil {
		t.Fatalf("a route source with no offers must compile: %v", err)
	}
	if err := g.srv.ApplyConfig(empty); err != nil {
		t.Fatal(err)
	}
	if !g.srv.Ready() {
		t.Fatal("not ready with an empty route list")
	}
	if w := g.do(httptest.NewRequest(http.MethodGet, "/joke", nil)); w.Code == http.StatusPaymentRequired {
		t.Fatal("a removed offer is still charged")
	}
	if n := testutil.CollectAndCount(g.metrics.PaymentRequired); n != 0 {
		t.Fatalf("%d series of removed offers remain", n)
	}

	noRoutes := strings.Split(proxyDoc(up.URL), "routes:")[0]
	if _, err := compileDoc(noRoutes, g); err == nil || !strings.Contains(err.Error(), "no routes") {
		t.Fatalf("a pricing file without routes: %v", err)
	}
}

func compileDoc(doc string, g *testGate) (*Config, error) {
	spec, err := ParseSpec("pricing.yaml", []byte(doc))
	if err != nil {
		return nil, err
	}
	return Compile(spec, g.evm, Environment{})
}
