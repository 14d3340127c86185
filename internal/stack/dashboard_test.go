package stack

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/obolstack/obol/internal/buyer/proxy"
	"github.com/obolstack/obol/internal/verifier"
)

const dashboardConfigMap = "obol-grafana-dashboard"

// renderedDashboard renders the chart with monitoring on and returns the
// dashboard ConfigMap and its parsed dashboard.
func renderedDashboard(t *testing.T, values map[string]any) (*unstructured.Unstructured, *Dashboard) {
	t.Helper()
	_, objs := render(t, RenderOptions{APIVersions: []string{MonitoringAPIVersion}, Values: values})
	cm := find(objs, "ConfigMap", dashboardConfigMap)
	if cm == nil {
		t.Fatalf("no ConfigMap %s rendered with monitoring on", dashboardConfigMap)
	}
	data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
	raw, ok := data["obol-x402.json"]
	if !ok {
		t.Fatalf("ConfigMap %s has no obol-x402.json: keys %v", dashboardConfigMap, data)
	}
	d, err := ParseDashboard([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	return cm, d
}

func TestRenderGrafanaDashboard(t *testing.T) {
	cm, d := renderedDashboard(t, nil)
	if got := cm.GetLabels()["grafana_dashboard"]; got != "1" {
		t.Errorf("ConfigMap labels %v: want grafana_dashboard=\"1\" (kube-prometheus-stack's sidecar label)", cm.GetLabels())
	}
	if cm.GetNamespace() != DefaultNamespace {
		t.Errorf("namespace %q, want the release's", cm.GetNamespace())
	}
	if d.UID != "obol-x402" || d.Title == "" || len(d.Queries()) == 0 {
		t.Errorf("dashboard uid %q title %q with %d queries", d.UID, d.Title, len(d.Queries()))
	}
	// The embedded file is what the ConfigMap carries.
	emb, err := EmbeddedDashboard()
	if err != nil || len(emb.Queries()) != len(d.Queries()) {
		t.Fatalf("embedded dashboard: %v, %d queries vs %d rendered", err, len(emb.Queries()), len(d.Queries()))
	}

	cm, _ = renderedDashboard(t, map[string]any{"monitoring": map[string]any{"grafanaDashboard": map[string]any{
		"label":       map[string]any{"key": "dashboards.example/grafana", "value": "obol"},
		"namespace":   "monitoring",
		"annotations": map[string]any{"grafana_folder": "obol"},
	}}})
	if cm.GetLabels()["dashboards.example/grafana"] != "obol" || cm.GetLabels()["grafana_dashboard"] != "" {
		t.Errorf("custom label: labels %v", cm.GetLabels())
	}
	if cm.GetNamespace() != "monitoring" || cm.GetAnnotations()["grafana_folder"] != "obol" {
		t.Errorf("namespace %q annotations %v", cm.GetNamespace(), cm.GetAnnotations())
	}

	// Rendered with the other monitoring objects, and only then.
	for _, tc := range []struct {
		name   string
		apis   []string
		values map[string]any
	}{
		{"monitoring auto without prometheus-operator", nil, nil},
		{"monitoring off", []string{MonitoringAPIVersion}, map[string]any{"monitoring": map[string]any{"enabled": false}}},
		{"dashboard off", []string{MonitoringAPIVersion}, map[string]any{"monitoring": map[string]any{"grafanaDashboard": map[string]any{"enabled": false}}}},
	} {
		_, objs := render(t, RenderOptions{APIVersions: tc.apis, Values: tc.values})
		if find(objs, "ConfigMap", dashboardConfigMap) != nil {
			t.Errorf("%s: the dashboard ConfigMap was rendered", tc.name)
		}
	}
	_, objs := render(t, RenderOptions{Values: map[string]any{"monitoring": map[string]any{"enabled": true}}})
	if find(objs, "ConfigMap", dashboardConfigMap) == nil {
		t.Error("monitoring.enabled=true: no dashboard ConfigMap")
	}
	_, err = Render(RenderOptions{APIVersions: []string{MonitoringAPIVersion}, Values: map[string]any{"monitoring": map[string]any{"grafanaDashboard": map[string]any{"label": map[string]any{"key": ""}}}}})
	if err == nil || !strings.Contains(err.Error(), "label.key") {
		t.Errorf("empty label key: want a clear error, got %v", err)
	}
}

// The panels the issue asks for are there.
func TestDashboardCoversTheIssue(t *testing.T) {
	_, d := renderedDashboard(t, nil)
	all := ""
	for _, q := range d.Queries() {
		all += q.Expr + "\n"
	}
	for _, want := range []string{
		"x402:revenue:24h_by_offer_chain", "x402:revenue:7d_by_offer_chain", "x402:revenue:lifetime_by_offer",
		"x402:revenue_atomic:24h_by_offer_chain_asset", "x402:revenue_atomic:7d_by_offer_chain_asset", "x402:revenue_atomic:lifetime_by_offer_chain_asset",
		"x402:settlement_rate:1h_by_offer_chain", "x402:last_payment_age_seconds:by_offer_chain",
		verifier.MetricPaymentFailures, verifier.MetricFacilitatorDuration + "_bucket",
		"obol_x402_buyer_auth_spent", "obol_x402_buyer_auth_remaining", "ALERTS{",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no panel queries %s", want)
		}
	}
}

var (
	recordedName = regexp.MustCompile(`\bx402:[a-z0-9_]+:[a-z0-9_]+\b`)
	metricName   = regexp.MustCompile(`\bobol_x402_[a-z0-9_]+\b`)
	fqName       = regexp.MustCompile(`fqName: "([^"]+)"`)
)

// descRecorder is a Registerer that notes the metric names of what is
// registered on it.
type descRecorder struct{ names map[string]bool }

func (r *descRecorder) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 64)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			r.names[m[1]] = true
		}
	}
	return nil
}
func (r *descRecorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = r.Register(c)
	}
}
func (r *descRecorder) Unregister(prometheus.Collector) bool { return false }

// Every panel's PromQL, with the Grafana variables replaced, parses with
// Prometheus' own parser (promtool check rules, each expression a
// recording rule), reads only recording rules the chart ships and metrics
// the verifier and the buyer proxy export.
func TestDashboardQueriesParse(t *testing.T) {
	_, d := renderedDashboard(t, nil)
	queries := d.Queries()
	known := map[string]bool{}
	for _, n := range []string{verifier.MetricRequests, verifier.MetricPaymentRequired, verifier.MetricPaymentVerified,
		verifier.MetricPaymentFailed, verifier.MetricCharged, verifier.MetricLastPaymentSuccess, verifier.MetricChargedAtomicUnits,
		verifier.MetricPaymentFailures, verifier.MetricConfigReloads, verifier.MetricSettlements, verifier.MetricFacilitatorRequests} {
		known[n] = true
	}
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		known[verifier.MetricFacilitatorDuration+s] = true
	}
	rec := &descRecorder{names: map[string]bool{}}
	if _, err := proxy.NewMetrics(rec); err != nil {
		t.Fatal(err)
	}
	if len(rec.names) == 0 {
		t.Fatal("no buyer metric names recorded")
	}
	for n := range rec.names {
		known[n] = true
	}
	rules := ruleNames(t, find(renderObjs(t), "PrometheusRule", ""))

	type rule struct {
		Record string `json:"record"`
		Expr   string `json:"expr"`
	}
	var rs []rule
	vars := d.Variables()
	for i, q := range queries {
		if strings.TrimSpace(q.Expr) == "" {
			t.Errorf("panel %q query %s has no expression", q.Panel, q.RefID)
			continue
		}
		expr := ConcreteQuery(q.Expr, "1m", vars)
		if strings.Contains(expr, "$") {
			t.Errorf("panel %q query %s: a Grafana variable is left after replacing the dashboard's variables: %s", q.Panel, q.RefID, expr)
		}
		for _, n := range recordedName.FindAllString(expr, -1) {
			if !rules[n] {
				t.Errorf("panel %q reads %s, which the chart's PrometheusRule does not record", q.Panel, n)
			}
		}
		for _, n := range metricName.FindAllString(expr, -1) {
			if !known[n] {
				t.Errorf("panel %q reads %s, which neither the verifier nor the buyer proxy exports", q.Panel, n)
			}
		}
		rs = append(rs, rule{Record: fmt.Sprintf("dashboard:panel_%d:%s", i, strings.ToLower(q.RefID)), Expr: expr})
	}
	doc, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rs}}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dashboard.yaml"), doc, 0o644); err != nil {
		t.Fatal(err)
	}
	out := promtool(t, dir, "check", "rules", "dashboard.yaml")
	if want := fmt.Sprintf("SUCCESS: %d rules found", len(rs)); !strings.Contains(out, want) {
		t.Errorf("promtool check rules: want %q:\n%s", want, out)
	}
	t.Logf("%d panel queries parse: %s", len(rs), strings.TrimSpace(out))
}

func renderObjs(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	_, objs := render(t, RenderOptions{APIVersions: []string{MonitoringAPIVersion}})
	return objs
}

func TestConcreteQuery(t *testing.T) {
	got := ConcreteQuery(`sum(rate(m{a=~"$offer", b=~"${offer_namespace}", c=~"$offer_namespace"}[$__rate_interval]))`, "1m", []string{"offer", "offer_namespace"})
	if want := `sum(rate(m{a=~".*", b=~".*", c=~".*"}[1m]))`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
