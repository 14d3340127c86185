package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/obolstack/obol/internal/stack"
)

// stepDashboard checks the chart's Grafana dashboard against the cluster:
// the ConfigMap is installed with the sidecar label, and after the paid
// calls every panel's query, with the Grafana variables set to "All",
// returns data from the cluster's Prometheus. To give every panel
// something to show it adds a refused payment (a failure reason) and a
// PurchaseRequest of its own (the buyer step deletes its one) that the
// buyer proxy loads, with one call through the proxy.
// dashboardPurchase is the PurchaseRequest the dashboard step creates.
const dashboardPurchase = "dashboard"

func stepDashboard(t *testing.T, e *env) {
	cm, err := e.cluster.Clientset.CoreV1().ConfigMaps(e.ns).Get(ctx(t), "obol-grafana-dashboard", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the dashboard ConfigMap: %v", err)
	}
	if cm.Labels["grafana_dashboard"] != "1" {
		t.Errorf("dashboard ConfigMap labels %v lack grafana_dashboard=\"1\"", cm.Labels)
	}
	d, err := stack.ParseDashboard([]byte(cm.Data["obol-x402.json"]))
	if err != nil {
		t.Fatal(err)
	}
	queries := d.Queries()
	if len(queries) == 0 {
		t.Fatal("the installed dashboard has no queries")
	}

	// A malformed payment: 400, counted under reason malformed_payment.
	verifier := e.serviceURL(t, e.ns, "obol-verifier")
	status, body, err := httpGet(verifier+offerPath, http.Header{"Payment-Signature": {"not base64!"}})
	if err != nil || status != http.StatusBadRequest {
		t.Fatalf("malformed payment: HTTP %d %v: %s", status, err, body)
	}

	// Pre-signed authorizations for the buyer proxy, from buyer-2.
	out := e.obolCmd(t, 2*time.Minute, "buy", "create", dashboardPurchase, "-n", e.ns, "--endpoint", verifier+offerPath,
		"--count", "3", "--key-file", filepath.Join(e.keyDir, "buyer-2.key"), "--max-amount", "0.01", "--chain", "obol-dev")
	t.Logf("obol buy create %s:\n%s", dashboardPurchase, out)
	t.Cleanup(func() {
		if _, errOut, err := e.obolTry(time.Minute, "buy", "delete", dashboardPurchase, "-n", e.ns); err != nil {
			t.Errorf("obol buy delete %s: %v: %s", dashboardPurchase, err, errOut)
		}
	})
	eventually(t, 3*time.Minute, "the buyer proxy's gauges for "+dashboardPurchase+" in Prometheus", func() error {
		for _, m := range []string{"obol_x402_buyer_auth_remaining", "obol_x402_buyer_auth_spent"} {
			v, err := e.promQuery(t, fmt.Sprintf(`%s{upstream=%q}`, m, dashboardPurchase))
			if err != nil {
				return err
			}
			if len(v) == 0 {
				return fmt.Errorf("no %s series for %s yet", m, dashboardPurchase)
			}
		}
		return nil
	})
	buyerURL := e.serviceURL(t, e.ns, "obol-buyer")
	status, body, err = httpGet(buyerURL+"/upstream/"+dashboardPurchase+"/", nil)
	t.Logf("GET through the buyer proxy: HTTP %d %v: %.200s", status, err, body)

	vars := d.Variables()
	for _, q := range queries {
		expr := stack.ConcreteQuery(q.Expr, "1m", vars)
		var got []promSample
		eventually(t, 2*time.Minute, fmt.Sprintf("panel %q query %s to return data", q.Panel, q.RefID), func() error {
			var err error
			got, err = e.promQuery(t, expr)
			if err != nil {
				return err
			}
			if len(got) == 0 {
				return fmt.Errorf("%s: empty result", expr)
			}
			return nil
		})
		vals := make([]string, 0, len(got))
		for _, s := range got {
			vals = append(vals, fmt.Sprintf("%v=%v", s.Metric, s.Value[1]))
		}
		t.Logf("panel %q %s: %d series: %s", q.Panel, q.RefID, len(got), strings.Join(vals, "; "))
	}
}
