package earnings

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/obolstack/obol/internal/evm"
)

// verifierRegistry is a real client_golang registry holding verifier- and
// buyer-shaped metrics with known values.
func verifierRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	offer := []string{"offer_namespace", "offer_name", "chain"}
	cv := func(name string, labels []string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: name}, labels)
		reg.MustRegister(c)
		return c
	}
	w := []string{"demo", "weather", "eip155:84532"}
	cv(mRequests, offer).WithLabelValues(w...).Add(10)
	cv(mRequired, offer).WithLabelValues(w...).Add(4)
	cv(mVerified, offer).WithLabelValues(w...).Add(3)
	cv(mFailed, offer).WithLabelValues(w...).Add(1)
	cv(mCharged, offer).WithLabelValues(w...).Add(3)
	cv(mChargedAtomic, append(offer, "asset")).WithLabelValues(append(w, usdcBaseSep)...).Add(3000)
	last := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: mLastSuccess, Help: "x"}, offer)
	reg.MustRegister(last)
	last.WithLabelValues(w...).Set(float64(testNow.Unix() - 30))

	buyer := []string{"upstream", "remote_model", "chain"}
	b := []string{"http://litellm.llm.svc:4000", "qwen3:8b", "eip155:84532"}
	cv(mBuyerRequests, buyer).WithLabelValues(b...).Add(5)
	cv(mBuyerAttempts, buyer).WithLabelValues(b...).Add(5)
	cv(mBuyerSuccess, buyer).WithLabelValues(b...).Add(4)
	cv(mBuyerFailure, buyer).WithLabelValues(b...).Add(1)
	cv(mBuyerUnsettled, buyer).WithLabelValues(b...).Add(2)
	cv(mBuyerConfirmFailure, buyer).WithLabelValues(b...).Add(1)
	rem := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: mAuthRemaining, Help: "x"}, buyer)
	reg.MustRegister(rem)
	rem.WithLabelValues(b...).Set(96)
	return reg
}

func TestMetricsSource(t *testing.T) {
	srv := httptest.NewServer(promhttp.HandlerFor(verifierRegistry(), promhttp.HandlerOpts{}))
	defer srv.Close()
	src := NewMetricsSource(srv.URL + "/metrics")
	d, err := src.Fetch(context.Background(), Window7d, testNow)
	if err != nil {
		t.Fatal(err)
	}
	s := Build(d, Window7d, testNow, evm.NewRegistry())
	if s.Source.Kind != "metrics" || s.Source.Windowed || s.Source.RecordingRules != "n/a" {
		t.Errorf("source = %+v", s.Source)
	}
	if !containsNote(s.Notes, "lifetime figures only") {
		t.Errorf("notes = %q", s.Notes)
	}
	if len(s.Offers) != 1 {
		t.Fatalf("offers = %+v", s.Offers)
	}
	o := s.Offers[0]
	if o.ChargedCalls.Lifetime != 3 || o.ChargedCalls.Window != nil || o.Requests != 10 {
		t.Errorf("calls = %+v requests %d", o.ChargedCalls, o.Requests)
	}
	r := o.Revenue[0]
	if r.Lifetime != "0.003" || r.LifetimeAtomic != "3000" || r.Window != nil || r.Symbol != "USDC" {
		t.Errorf("revenue = %+v", r)
	}
	if o.VerifiedRate == nil || *o.VerifiedRate != 3.0/8 || o.VerifiedRateWindow != "lifetime" {
		t.Errorf("rate = %v %s", o.VerifiedRate, o.VerifiedRateWindow)
	}
	if o.LastSettlement == nil || o.LastSettlement.Ago != "30s ago" || o.Sparkline != nil {
		t.Errorf("last = %+v spark %+v", o.LastSettlement, o.Sparkline)
	}
	if len(s.Spend) != 1 || s.Spend[0].PaymentSuccess.Lifetime != 4 || s.Spend[0].PaymentSuccess.Window != nil || s.Spend[0].AuthRemaining != 96 ||
		s.Spend[0].PaymentUnsettled.Lifetime != 2 || s.Spend[0].ConfirmSpendFailure.Lifetime != 1 {
		t.Errorf("spend = %+v", s.Spend)
	}
	if s.Totals[0].ChargedCalls.Window != nil || s.Totals[0].Revenue[0].Lifetime != "0.003" {
		t.Errorf("totals = %+v", s.Totals)
	}
}

func TestMetricsSourceErrors(t *testing.T) {
	srv := httptest.NewServer(promhttp.HandlerFor(prometheus.NewRegistry(), promhttp.HandlerOpts{}))
	url := srv.URL
	srv.Close()
	if _, err := NewMetricsSource(url+"/metrics").Fetch(context.Background(), Window24h, testNow); err == nil || !strings.Contains(err.Error(), "--metrics-url") {
		t.Errorf("err = %v", err)
	}
	if _, err := ParseMetrics(strings.NewReader("not metrics {{{")); err == nil {
		t.Errorf("garbage parsed")
	}
}
