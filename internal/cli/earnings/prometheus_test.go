package earnings

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/model"

	"github.com/obolstack/obol/internal/earnings"
	"github.com/obolstack/obol/internal/testenv"
	"github.com/obolstack/obol/internal/verifier"
)

const usdcBaseSepolia = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"

// verifierLike is an in-test verifier's metrics: the exact names and labels
// of the contract on a real client_golang registry, served by promhttp.
type verifierLike struct {
	required, verified, failed, charged, atomic *prometheus.CounterVec
	last                                        *prometheus.GaugeVec
	url                                         string
}

func newVerifierLike(t *testing.T) *verifierLike {
	reg := prometheus.NewRegistry()
	offer := []string{verifier.LabelOfferNamespace, verifier.LabelOfferName, verifier.LabelChain}
	cv := func(name string, l []string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: name}, l)
		reg.MustRegister(c)
		return c
	}
	v := &verifierLike{
		required: cv(verifier.MetricPaymentRequired, offer),
		verified: cv(verifier.MetricPaymentVerified, offer),
		failed:   cv(verifier.MetricPaymentFailed, offer),
		charged:  cv(verifier.MetricCharged, offer),
		atomic:   cv(verifier.MetricChargedAtomicUnits, append(offer, verifier.LabelAsset)),
		last:     prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: verifier.MetricLastPaymentSuccess, Help: "x"}, offer),
	}
	reg.MustRegister(v.last)
	requests := cv(verifier.MetricRequests, offer)
	w := []string{"demo", "weather", "eip155:84532"}
	// Before Prometheus's first scrape: 3 calls already charged (0.003 USDC),
	// payment counters at zero.
	requests.WithLabelValues(w...).Add(3)
	v.required.WithLabelValues(w...).Add(0)
	v.verified.WithLabelValues(w...).Add(0)
	v.failed.WithLabelValues(w...).Add(0)
	v.charged.WithLabelValues(w...).Add(3)
	v.atomic.WithLabelValues(append(w, usdcBaseSepolia)...).Add(3000)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	v.url = srv.URL
	return v
}

// pay records traffic after Prometheus has seen the first values: two 402s,
// three verified payments of which two charged 0.001 USDC each, one failure.
func (v *verifierLike) pay(now time.Time) {
	w := []string{"demo", "weather", "eip155:84532"}
	v.required.WithLabelValues(w...).Add(2)
	v.verified.WithLabelValues(w...).Add(3)
	v.failed.WithLabelValues(w...).Add(1)
	v.charged.WithLabelValues(w...).Add(2)
	v.atomic.WithLabelValues(append(w, usdcBaseSepolia)...).Add(2000)
	v.last.WithLabelValues(w...).Set(float64(now.Unix()))
}

// ruleFile returns the chart's recording rules with a 1s evaluation
// interval (the chart evaluates every minute), or the contract's copy.
func ruleFile(t *testing.T) string {
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "charts", "obol", "files", "prometheus-rules.yaml"))
	if err != nil {
		t.Logf("chart rules not found (%v): using testdata/contract-rules.yaml", err)
		if b, err = os.ReadFile(filepath.Join("testdata", "contract-rules.yaml")); err != nil {
			t.Fatal(err)
		}
	}
	s := strings.ReplaceAll(string(b), "interval: 1m", "interval: 1s")
	p := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// runJSON runs `obol earnings -o json` against promURL, evaluated at at.
func runJSON(t *testing.T, promURL string, at time.Time) earnings.Snapshot {
	t.Helper()
	opts, out := testOpts(t)
	opts.Prometheus = promURL
	opts.Now = func() time.Time { return at }
	if err := earningsRun(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	var s earnings.Snapshot
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		t.Fatalf("obol earnings -o json: %v\n%s", err, out)
	}
	t.Logf("obol earnings -o json:\n%s", out)
	return s
}

// The raw PromQL of the chart's 24h revenue rules (what a dashboard shows
// when the rules are not loaded), over the series sel selects.
func rawCalls24h(sel string) string {
	return "sum by (offer_namespace, offer_name, chain) (increase(" + verifier.MetricCharged + sel + "[24h]))"
}

func rawAtomic24h(sel string) string {
	return "sum(increase(" + verifier.MetricChargedAtomicUnits + sel + "[24h]))"
}

// settledAt returns a time at which Prometheus's view is final: a sample of
// series (a scraped metric or a rule) more than a second later has been
// recorded, so every scrape and evaluation up to it has been, and queries
// at it answer the same however often they run.
func settledAt(t *testing.T, p *testenv.Prometheus, series string) time.Time {
	t.Helper()
	at := time.Now()
	p.WaitFor(t, "max(timestamp("+series+"))", func(f float64) bool { return f > float64(at.UnixMilli())/1000+1 })
	return at
}

// valueAt is the one sample of query evaluated at at.
func valueAt(t *testing.T, p *testenv.Prometheus, query string, at time.Time) float64 {
	t.Helper()
	v, _, _, err := p.API.Query(context.Background(), query, at)
	if err != nil {
		t.Fatalf("query %s at %s: %v", query, at, err)
	}
	vec, ok := v.(model.Vector)
	if !ok || len(vec) != 1 {
		t.Fatalf("query %s at %s: %v, want one sample", query, at, v)
	}
	return float64(vec[0].Value)
}

// checkWindow asserts that the snapshot's only offer reports, as its 24h
// charged calls and revenue, calls and atomic (the rule's or the raw
// expression's values at the same evaluation time) rounded to whole units.
func checkWindow(t *testing.T, name string, o earnings.OfferRow, calls, atomic float64) {
	t.Helper()
	if calls <= 0 || atomic <= 0 {
		t.Fatalf("%s: the 24h expressions read %v calls, %v atomic units: nothing to compare", name, calls, atomic)
	}
	if o.ChargedCalls.Window == nil || *o.ChargedCalls.Window != int64(math.Round(calls)) {
		t.Errorf("%s: 24h charged calls = %s, want %v (the 24h expression's %v)", name, show(o.ChargedCalls.Window), math.Round(calls), calls)
	}
	want := fmt.Sprint(int64(math.Round(atomic)))
	if len(o.Revenue) != 1 || o.Revenue[0].WindowAtomic == nil || *o.Revenue[0].WindowAtomic != want {
		got := "no revenue row"
		if len(o.Revenue) > 0 {
			got = show(o.Revenue[0].WindowAtomic)
		}
		t.Errorf("%s: 24h revenue = %s atomic units, want %s (the 24h expression's %v)", name, got, want, atomic)
	}
}

func show[T any](p *T) string {
	if p == nil {
		return "null"
	}
	return fmt.Sprint(*p)
}

// TestRealPrometheus runs `obol earnings -o json` against a real Prometheus
// scraping verifier-shaped metrics: first without the recording rules (raw
// PromQL fallback), then with the chart's rules loaded; both report the
// exact figures.
func TestRealPrometheus(t *testing.T) {
	t.Parallel()
	v := newVerifierLike(t)
	p := testenv.StartPrometheus(t, testenv.PromConfig{Targets: []string{v.url}})
	p.WaitForUp(t, "test", 1)
	p.WaitForValue(t, "sum("+verifier.MetricCharged+")", 3)
	paidAt := time.Now()
	v.pay(paidAt)
	p.WaitForValue(t, "sum("+verifier.MetricCharged+")", 5)

	check := func(name string, s earnings.Snapshot) {
		t.Helper()
		if len(s.Offers) != 1 {
			t.Fatalf("%s: offers = %+v", name, s.Offers)
		}
		o := s.Offers[0]
		if o.Namespace != "demo" || o.Name != "weather" || o.Chain != "eip155:84532" || o.ChainName != "base-sepolia" {
			t.Errorf("%s: row = %+v", name, o)
		}
		// Lifetime: all 5, also the 3 counted before the first scrape. The
		// window figures are checked against the 24h expressions below.
		if o.ChargedCalls.Lifetime != 5 {
			t.Errorf("%s: charged calls = %+v, want 5 over the lifetime", name, o.ChargedCalls)
		}
		if len(o.Revenue) != 1 {
			t.Fatalf("%s: revenue = %+v", name, o.Revenue)
		}
		r := o.Revenue[0]
		if r.Symbol != "USDC" || r.Window == nil || r.Lifetime != "0.005" || r.LifetimeAtomic != "5000" {
			t.Errorf("%s: revenue = %+v", name, r)
		}
		// increase() scales all three counters alike, so the ratio is 0.5 up
		// to float rounding.
		if o.VerifiedRate == nil || math.Abs(*o.VerifiedRate-0.5) > 1e-9 || o.VerifiedRateWindow != "1h" {
			t.Errorf("%s: settlement rate = %v over %s, want 0.5 (3 verified of 6)", name, o.VerifiedRate, o.VerifiedRateWindow)
		}
		if o.LastSettlement == nil || o.LastSettlement.Unix != paidAt.Unix() || time.Since(time.Unix(o.LastSettlement.Unix, 0)) > time.Minute {
			t.Errorf("%s: last settlement = %+v, want %d (within a minute)", name, o.LastSettlement, paidAt.Unix())
		}
		if len(s.Totals) != 1 || *s.Totals[0].ChargedCalls.Window != *o.ChargedCalls.Window || s.Totals[0].Revenue[0].Lifetime != "0.005" {
			t.Errorf("%s: totals = %+v", name, s.Totals)
		}
		if o.Sparkline == nil || len(o.Sparkline.Points) != 24 || o.Sparkline.Points[23] != "0.005" {
			t.Errorf("%s: sparkline = %+v", name, o.Sparkline)
		}
	}

	// The rate needs the increments inside Prometheus's 1h window.
	p.WaitFor(t, "sum(increase("+verifier.MetricPaymentFailed+"[1h]))", func(f float64) bool { return f > 0 })
	at := settledAt(t, p, verifier.MetricCharged)
	raw := runJSON(t, p.URL, at)
	if raw.Source.RecordingRules != "missing" {
		t.Errorf("without rules: recordingRules = %q, want missing", raw.Source.RecordingRules)
	}
	check("raw PromQL", raw)
	// Without the rules, the 24h figures are the rules' expression run raw
	// (and a note says so).
	checkWindow(t, "raw PromQL", raw.Offers[0], valueAt(t, p, rawCalls24h(""), at), valueAt(t, p, rawAtomic24h(""), at))
	if !strings.Contains(strings.Join(raw.Notes, "\n"), "window revenue computed as raw PromQL") {
		t.Errorf("raw PromQL: notes do not say the window is raw PromQL: %q", raw.Notes)
	}

	p.Reload(t, testenv.PromConfig{Targets: []string{v.url}, RuleFiles: []string{ruleFile(t)}})
	p.WaitFor(t, `x402:settlement_rate:1h_by_offer_chain`, func(f float64) bool { return f > 0 })
	p.WaitFor(t, `x402:revenue_atomic:24h_by_offer_chain_asset`, func(f float64) bool { return f > 0 })
	at = settledAt(t, p, "x402:revenue_atomic:24h_by_offer_chain_asset")
	ruled := runJSON(t, p.URL, at)
	if ruled.Source.RecordingRules != "loaded" {
		t.Errorf("with rules: recordingRules = %q (found %v), want loaded", ruled.Source.RecordingRules, ruled.Source.RulesFound)
	}
	check("recording rules", ruled)
	// The 24h figures are what a dashboard on the rules shows at the same
	// evaluation time.
	checkWindow(t, "recording rules", ruled.Offers[0], valueAt(t, p, "x402:revenue:24h_by_offer_chain", at),
		valueAt(t, p, "x402:revenue_atomic:24h_by_offer_chain_asset", at))
	if strings.Contains(strings.Join(ruled.Notes, "\n"), "raw PromQL") {
		t.Errorf("recording rules: notes say raw PromQL: %q", ruled.Notes)
	}

	// Same numbers either way, but for the 24h increase() estimates: the
	// rules were evaluated at other instants than the raw query ran.
	strip := func(s earnings.Snapshot) string {
		s.Source, s.Notes, s.GeneratedAt = earnings.SourceInfo{}, nil, time.Time{}
		for i := range s.Offers {
			s.Offers[i].LastSettlement.Ago = ""
			s.Offers[i].VerifiedRate = nil // compared above, with a tolerance
			s.Offers[i].ChargedCalls.Window = nil
			for j := range s.Offers[i].Revenue {
				s.Offers[i].Revenue[j].Window, s.Offers[i].Revenue[j].WindowAtomic = nil, nil
			}
		}
		for i := range s.Totals {
			s.Totals[i].ChargedCalls.Window = nil
			for j := range s.Totals[i].Revenue {
				s.Totals[i].Revenue[j].Window, s.Totals[i].Revenue[j].WindowAtomic = nil, nil
			}
		}
		b, _ := json.Marshal(s)
		return string(b)
	}
	if a, b := strip(raw), strip(ruled); a != b {
		t.Errorf("fallback and rules differ:\nraw:   %s\nrules: %s", a, b)
	}
}
