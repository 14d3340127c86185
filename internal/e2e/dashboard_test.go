package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/obolstack/obol/internal/stack"
)

// stepDashboard checks the chart's Grafana dashboard against the cluster:
// the ConfigMap is installed with the sidecar label, and after the paid
// calls every panel's query, with the Grafana variables set to "All",
// returns data from the cluster's Prometheus. It runs after the buyer
// proxy step, whose PurchaseRequest gives the buyer panels their series,
// and adds what the earlier steps did not: a refused payment (a failure
// reason).
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

	// The buyer step's PurchaseRequest, as Prometheus sees it.
	eventually(t, 2*time.Minute, "the buyer proxy's authorization gauges in Prometheus", func() error {
		v, err := e.promQuery(t, `obol_x402_buyer_auth_remaining`)
		if err != nil {
			return err
		}
		if len(v) == 0 {
			return errors.New("no obol_x402_buyer_auth_remaining series yet")
		}
		return nil
	})

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
