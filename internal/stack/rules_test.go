package stack

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/obolstack/obol/internal/testenv"
)

// renderedRules renders the chart with monitoring on and returns the
// PrometheusRule's spec as a Prometheus rule file.
func renderedRules(t *testing.T) []byte {
	t.Helper()
	_, objs := render(t, RenderOptions{APIVersions: []string{MonitoringAPIVersion}})
	pr := find(objs, "PrometheusRule", "")
	if pr == nil {
		t.Fatal("no PrometheusRule rendered")
	}
	spec, ok, _ := unstructured.NestedMap(pr.Object, "spec")
	if !ok {
		t.Fatal("PrometheusRule has no spec")
	}
	b, err := yaml.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeRules(t *testing.T) (dir, rulesPath string) {
	t.Helper()
	dir = t.TempDir()
	rulesPath = filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rulesPath, renderedRules(t), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, rulesPath
}

func promtool(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(testenv.Promtool(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// promtool check rules on the rules extracted from the rendered
// PrometheusRule: 8 recording rules and 3 alerts, all valid.
func TestPromtoolCheckRules(t *testing.T) {
	dir, _ := writeRules(t)
	out := promtool(t, dir, "check", "rules", "rules.yaml")
	if !strings.Contains(out, "SUCCESS: 11 rules found") {
		t.Errorf("promtool check rules:\n%s", out)
	}
}

// promtool test rules: every recording rule and both alerts, firing and not
// firing (testdata/rules_test.yaml).
func TestPromtoolTestRules(t *testing.T) {
	dir, _ := writeRules(t)
	tests, err := os.ReadFile(filepath.Join("testdata", "rules_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules_test.yaml"), tests, 0o644); err != nil {
		t.Fatal(err)
	}
	out := promtool(t, dir, "test", "rules", "rules_test.yaml")
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool test rules:\n%s", out)
	}
}

// verifierMetrics are client_golang counters with the verifier's metric
// names and labels, moved the way paid calls move them.
type verifierMetrics struct {
	requests, required, verified, failed, charged, atomic *prometheus.CounterVec
	last                                                  *prometheus.GaugeVec
}

func newVerifierMetrics(reg prometheus.Registerer) *verifierMetrics {
	offer := []string{"offer_namespace", "offer_name", "chain"}
	c := func(name string, labels []string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "obol_x402_verifier_" + name, Help: name}, labels)
		reg.MustRegister(v)
		return v
	}
	m := &verifierMetrics{
		requests: c("requests_total", offer),
		required: c("payment_required_total", offer),
		verified: c("payment_verified_total", offer),
		failed:   c("payment_failed_total", offer),
		charged:  c("charged_requests_total", offer),
		atomic:   c("charged_atomic_units_total", append(append([]string{}, offer...), "asset")),
		last:     prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "obol_x402_verifier_last_payment_success_seconds", Help: "last"}, offer),
	}
	reg.MustRegister(m.last)
	return m
}

// paidCall moves the counters like one request answered 402, retried with a
// payment that verified and settled for price atomic units.
func (m *verifierMetrics) paidCall(ns, name, chain, asset string, price float64) {
	m.requests.WithLabelValues(ns, name, chain).Inc()
	m.required.WithLabelValues(ns, name, chain).Inc()
	m.requests.WithLabelValues(ns, name, chain).Inc()
	m.verified.WithLabelValues(ns, name, chain).Inc()
	m.charged.WithLabelValues(ns, name, chain).Inc()
	m.atomic.WithLabelValues(ns, name, chain, asset).Add(price)
	m.last.WithLabelValues(ns, name, chain).SetToCurrentTime()
}

// A real Prometheus loads the rules extracted from the rendered
// PrometheusRule, scrapes a target exposing the verifier's metrics, and after
// paid calls returns a non-zero x402:revenue:24h_by_offer_chain for that
// offer and its CAIP-2 chain.
func TestPrometheusEvaluatesRenderedRules(t *testing.T) {
	_, rulesPath := writeRules(t)
	const (
		ns    = "shop"
		offer = "weather"
		chain = "eip155:84532"
		asset = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
	)
	reg := prometheus.NewRegistry()
	m := newVerifierMetrics(reg)
	// Series exist at 0 before the first paid call, as the verifier
	// creates them when it loads a route.
	for _, v := range []*prometheus.CounterVec{m.requests, m.required, m.verified, m.failed, m.charged} {
		v.WithLabelValues(ns, offer, chain)
	}
	m.atomic.WithLabelValues(ns, offer, chain, asset)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	prom := testenv.StartPrometheus(t, testenv.PromConfig{
		Targets:   []string{ln.Addr().String()},
		RuleFiles: []string{rulesPath},
	})
	prom.WaitForUp(t, "test", 1)
	// The zero samples are in; now the paid calls.
	prom.WaitFor(t, `obol_x402_verifier_charged_requests_total{offer_name="weather"}`, func(v float64) bool { return v == 0 })
	for i := 0; i < 3; i++ {
		m.paidCall(ns, offer, chain, asset, 1000)
	}
	q := `x402:revenue:24h_by_offer_chain{offer_namespace="shop",offer_name="weather",chain="eip155:84532"}`
	got := prom.WaitFor(t, q, func(v float64) bool { return v > 0 })
	t.Logf("%s = %v", q, got)
	atomic := prom.WaitFor(t, `x402:revenue_atomic:24h_by_offer_chain_asset{offer_name="weather",chain="eip155:84532",asset="`+asset+`"}`, func(v float64) bool { return v > 0 })
	t.Logf("x402:revenue_atomic:24h_by_offer_chain_asset = %v", atomic)
	lifetime := prom.WaitFor(t, `x402:revenue:lifetime_by_offer{offer_namespace="shop",offer_name="weather"}`, func(v float64) bool { return v == 3 })
	t.Logf("x402:revenue:lifetime_by_offer = %v", lifetime)
	rate := prom.WaitFor(t, `x402:settlement_rate:1h_by_offer_chain{offer_name="weather"}`, func(v float64) bool { return v > 0 })
	t.Logf("x402:settlement_rate:1h_by_offer_chain = %v", rate)
}
