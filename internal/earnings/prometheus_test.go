package earnings

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/obolstack/obol/internal/evm"
)

// fakeProm answers /api/v1/query, /api/v1/query_range and /api/v1/rules
// with canned results keyed by the exact PromQL.
type fakeProm struct {
	mu      sync.Mutex
	vectors map[string]model.Vector
	ranges  map[string]model.Matrix
	rules   []string // recording rules to report; nil = rules API answers 404
	seen    []string
}

func (f *fakeProm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	q := r.Form.Get("query")
	f.mu.Lock()
	defer f.mu.Unlock()
	var data any
	switch r.URL.Path {
	case "/api/v1/rules":
		if f.rules == nil {
			http.Error(w, "404 page not found", http.StatusNotFound)
			return
		}
		rules := []map[string]any{}
		for _, n := range f.rules {
			rules = append(rules, map[string]any{"type": "recording", "name": n, "query": "x", "health": "ok"})
		}
		data = map[string]any{"groups": []any{map[string]any{"name": "x402.revenue", "file": "f", "interval": 60, "rules": rules}}}
	case "/api/v1/query":
		f.seen = append(f.seen, q)
		v := f.vectors[q]
		if v == nil {
			v = model.Vector{}
		}
		data = map[string]any{"resultType": "vector", "result": v}
	case "/api/v1/query_range":
		f.seen = append(f.seen, q)
		m := f.ranges[q]
		if m == nil {
			m = model.Matrix{}
		}
		data = map[string]any{"resultType": "matrix", "result": m}
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": data})
}

var weatherLabels = model.Metric{"offer_namespace": "demo", "offer_name": "weather", "chain": "eip155:84532"}

func sample(m model.Metric, v float64, extra ...string) *model.Sample {
	l := model.Metric{}
	for k, x := range m {
		l[k] = x
	}
	for i := 0; i+1 < len(extra); i += 2 {
		l[model.LabelName(extra[i])] = model.LabelValue(extra[i+1])
	}
	return &model.Sample{Metric: l, Value: model.SampleValue(v), Timestamp: model.TimeFromUnix(testNow.Unix())}
}

func newFakeProm(rules []string) *fakeProm {
	by := offerBy
	f := &fakeProm{rules: rules, vectors: map[string]model.Vector{}, ranges: map[string]model.Matrix{}}
	f.vectors[fmt.Sprintf("sum by (%s) (%s)", by, mRequests)] = model.Vector{sample(weatherLabels, 12)}
	f.vectors[lifetimeExpr(mCharged, by)] = model.Vector{sample(weatherLabels, 7)}
	// The window figures: the chart's increase() rules, or the same
	// expression raw; increase() extrapolates, so the values are not whole.
	f.vectors[RuleRevenue24h] = model.Vector{sample(weatherLabels, 5.04)}
	f.vectors[increaseExpr(mCharged, by, "24h")] = model.Vector{sample(weatherLabels, 5.04)}
	f.vectors[fmt.Sprintf("max by (%s) (%s)", by, mLastSuccess)] = model.Vector{sample(weatherLabels, float64(testNow.Add(-90*time.Second).Unix()))}
	f.vectors[lifetimeExpr(mChargedAtomic, by+", asset")] = model.Vector{sample(weatherLabels, 7000, "asset", usdcBaseSep)}
	f.vectors[RuleAtomicLifetime] = model.Vector{sample(weatherLabels, 7000, "asset", usdcBaseSep)}
	// Rounded to whole atomic units.
	f.vectors[RuleAtomic24h] = model.Vector{sample(weatherLabels, 4999.9999996, "asset", usdcBaseSep)}
	f.vectors[increaseExpr(mChargedAtomic, by+", asset", "24h")] = model.Vector{sample(weatherLabels, 4999.9999996, "asset", usdcBaseSep)}
	f.vectors[RuleSettlementRate1h] = model.Vector{sample(weatherLabels, 0.75)}
	f.vectors[verifiedRateExpr] = model.Vector{sample(weatherLabels, 0.75)}
	// Two buckets with calls: 2h and 0h before now.
	start := testNow.Add(-23 * time.Hour)
	pts := func(vals map[int]float64) []model.SamplePair {
		var out []model.SamplePair
		for i := 0; i < 24; i++ {
			out = append(out, model.SamplePair{Timestamp: model.TimeFromUnix(start.Add(time.Duration(i) * time.Hour).Unix()), Value: model.SampleValue(vals[i])})
		}
		return out
	}
	f.ranges[deltaExpr(mCharged, by, "1h")] = model.Matrix{{Metric: weatherLabels, Values: pts(map[int]float64{21: 2, 23: 3})}}
	atomicLabels := model.Metric{"asset": model.LabelValue(usdcBaseSep)}
	for k, v := range weatherLabels {
		atomicLabels[k] = v
	}
	f.ranges[deltaExpr(mChargedAtomic, by+", asset", "1h")] = model.Matrix{{Metric: atomicLabels, Values: pts(map[int]float64{21: 2000, 23: 3000})}}
	buyer := model.Metric{"upstream": "http://litellm.llm.svc:4000", "remote_model": "qwen3:8b", "chain": "eip155:84532"}
	const sb = "upstream, remote_model, chain"
	for m, v := range map[string]float64{mBuyerRequests: 10, mBuyerAttempts: 9, mBuyerSuccess: 8, mBuyerFailure: 1, mAuthRemaining: 92, mAuthSpent: 8, mMappings: 1} {
		f.vectors[fmt.Sprintf("sum by (%s) (%s)", sb, m)] = model.Vector{sample(buyer, v)}
	}
	f.vectors[deltaExpr(mBuyerSuccess, sb, "24h")] = model.Vector{sample(buyer, 3)}
	f.vectors[fmt.Sprintf("sum by (%s) (%s)", sb, mBuyerUnsettled)] = model.Vector{sample(buyer, 2)}
	f.vectors[deltaExpr(mBuyerUnsettled, sb, "24h")] = model.Vector{sample(buyer, 1)}
	return f
}

func collectFrom(t *testing.T, f *fakeProm) Snapshot {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	src, err := NewPrometheusSource(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	d, err := src.Fetch(context.Background(), Window24h, testNow)
	if err != nil {
		t.Fatal(err)
	}
	return Build(d, Window24h, testNow, evm.NewRegistry())
}

func TestPrometheusWithRules(t *testing.T) {
	f := newFakeProm(contractRules)
	s := collectFrom(t, f)
	if s.Source.RecordingRules != "loaded" || len(s.Source.RulesFound) != len(contractRules) {
		t.Fatalf("source = %+v", s.Source)
	}
	for _, q := range f.seen {
		if q == verifiedRateExpr || strings.Contains(q, "[24h]") {
			t.Errorf("raw PromQL %s queried although the rules are loaded", q)
		}
	}
	if containsNote(s.Notes, "raw PromQL") {
		t.Errorf("notes say raw PromQL although the rules are loaded: %q", s.Notes)
	}
	if len(s.Offers) != 1 {
		t.Fatalf("offers = %+v", s.Offers)
	}
	o := s.Offers[0]
	if o.Requests != 12 || *o.ChargedCalls.Window != 5 || o.ChargedCalls.Lifetime != 7 {
		t.Errorf("counts = %d %+v", o.Requests, o.ChargedCalls)
	}
	r := o.Revenue[0]
	if *r.Window != "0.005" || r.Lifetime != "0.007" || *r.WindowAtomic != "5000" || r.Symbol != "USDC" {
		t.Errorf("revenue = %+v", r)
	}
	if o.VerifiedRate == nil || *o.VerifiedRate != 0.75 || o.VerifiedRateWindow != "1h" {
		t.Errorf("rate = %v %s", o.VerifiedRate, o.VerifiedRateWindow)
	}
	if o.LastSettlement == nil || o.LastSettlement.Ago != "1m ago" {
		t.Errorf("last = %+v", o.LastSettlement)
	}
	if o.Sparkline == nil || len(o.Sparkline.Points) != 24 || o.Sparkline.Points[21] != "0.002" || o.Sparkline.Points[23] != "0.003" || o.Sparkline.Unit != "USDC" {
		t.Errorf("sparkline = %+v", o.Sparkline)
	}
	if len(s.Spend) != 1 || s.Spend[0].PaymentSuccess.Lifetime != 8 || *s.Spend[0].PaymentSuccess.Window != 3 || *s.Spend[0].PaymentFailure.Window != 0 || s.Spend[0].AuthRemaining != 92 ||
		s.Spend[0].PaymentUnsettled.Lifetime != 2 || *s.Spend[0].PaymentUnsettled.Window != 1 || *s.Spend[0].ConfirmSpendFailure.Window != 0 {
		t.Errorf("spend = %+v", s.Spend)
	}
}

// The fallback path (no rules loaded) gives the same numbers and says so.
func TestPrometheusFallbackSameNumbers(t *testing.T) {
	withRules := collectFrom(t, newFakeProm(contractRules))
	f := newFakeProm([]string{})
	without := collectFrom(t, f)
	if without.Source.RecordingRules != "missing" || !containsNote(without.Notes, "not loaded") {
		t.Fatalf("fallback source = %+v notes %q", without.Source, without.Notes)
	}
	if !containsNote(without.Notes, "window revenue computed as raw PromQL: recording rule "+RuleAtomic24h+" is not loaded") ||
		!containsNote(without.Notes, "window charged calls computed as raw PromQL: recording rule "+RuleRevenue24h+" is not loaded") {
		t.Errorf("notes do not name the window fallback: %q", without.Notes)
	}
	var rawUsed bool
	for _, q := range f.seen {
		rawUsed = rawUsed || q == verifiedRateExpr
		if q == RuleSettlementRate1h || q == RuleRevenue24h || q == RuleAtomic24h {
			t.Errorf("rule %s queried although the rules API says it is not loaded", q)
		}
	}
	if !rawUsed {
		t.Errorf("raw settlement-rate PromQL not used")
	}
	assertSameFigures(t, withRules, without)
}

// Without a rules API, a rule that answers nothing while raw PromQL does
// counts as missing.
func TestPrometheusNoRulesAPI(t *testing.T) {
	f := newFakeProm(nil)
	delete(f.vectors, RuleSettlementRate1h)
	s := collectFrom(t, f)
	if s.Source.RecordingRules != "missing" {
		t.Fatalf("recordingRules = %q", s.Source.RecordingRules)
	}
	assertSameFigures(t, collectFrom(t, newFakeProm(contractRules)), s)
}

func TestPrometheusUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	src, _ := NewPrometheusSource(url)
	_, err := Collect(context.Background(), src, Window24h, testNow, evm.NewRegistry())
	if err == nil || !strings.Contains(err.Error(), "pass --prometheus URL") {
		t.Fatalf("err = %v", err)
	}
}

func assertSameFigures(t *testing.T, a, b Snapshot) {
	t.Helper()
	a.Source, b.Source = SourceInfo{}, SourceInfo{}
	a.Notes, b.Notes = nil, nil
	if !reflect.DeepEqual(a, b) {
		ja, _ := json.MarshalIndent(a, "", " ")
		jb, _ := json.MarshalIndent(b, "", " ")
		t.Errorf("figures differ:\nwith rules: %s\nfallback:   %s", ja, jb)
	}
}

// 30d has no rule: the window figures are raw increase() and a note says so,
// even with every rule loaded.
func TestPrometheusWindowWithoutRule(t *testing.T) {
	f := newFakeProm(contractRules)
	f.vectors[increaseExpr(mCharged, offerBy, "30d")] = model.Vector{sample(weatherLabels, 6)}
	f.vectors[increaseExpr(mChargedAtomic, offerBy+", asset", "30d")] = model.Vector{sample(weatherLabels, 6000, "asset", usdcBaseSep)}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	src, _ := NewPrometheusSource(srv.URL)
	d, err := src.Fetch(context.Background(), Window30d, testNow)
	if err != nil {
		t.Fatal(err)
	}
	s := Build(d, Window30d, testNow, evm.NewRegistry())
	if o := s.Offers[0]; *o.ChargedCalls.Window != 6 || *o.Revenue[0].WindowAtomic != "6000" {
		t.Errorf("30d = %+v %+v", o.ChargedCalls, o.Revenue[0])
	}
	if !containsNote(s.Notes, "window revenue computed as raw PromQL: the chart has no recording rule for this window") {
		t.Errorf("notes: %q", s.Notes)
	}
}
