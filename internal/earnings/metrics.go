package earnings

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// MetricsSource reads a verifier's (or `obol dev`'s) /metrics page. It has
// no history: it gives lifetime figures only, and says so.
type MetricsSource struct {
	URL    string
	Client *http.Client
}

// NewMetricsSource returns a source for the /metrics page at url.
func NewMetricsSource(url string) *MetricsSource {
	return &MetricsSource{URL: url, Client: &http.Client{Timeout: 15 * time.Second}}
}

// Fetch implements Source. The window is ignored: a scrape has no history.
func (m *MetricsSource) Fetch(ctx context.Context, _ Window, _ time.Time) (*Data, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("metrics URL %q: %w (pass a URL such as http://127.0.0.1:8080/metrics)", m.URL, err)
	}
	// Ask for the classic text format, which expfmt's text parser reads.
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	c := m.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w (is the verifier running? check --metrics-url)", m.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("scrape %s: HTTP %d %s (want the verifier's /metrics page)", m.URL, resp.StatusCode, string(b))
	}
	d, err := ParseMetrics(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", m.URL, err)
	}
	d.URL = m.URL
	return d, nil
}

// ParseMetrics reads Prometheus text exposition into lifetime-only Data.
func ParseMetrics(r io.Reader) (*Data, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	d := newData("metrics", "")
	d.RecordingRules = "n/a"
	type verified struct{ req, ver, fail float64 }
	pay := map[OfferKey]*verified{}
	offerSum := func(name string, add func(k OfferKey, labels map[string]string, v float64)) {
		f := fams[name]
		if f == nil {
			return
		}
		for _, mt := range f.GetMetric() {
			l := labelMap(mt)
			add(OfferKey{Namespace: l["offer_namespace"], Name: l["offer_name"], Chain: l["chain"]}, l, value(mt))
		}
	}
	offerSum(mRequests, func(k OfferKey, _ map[string]string, v float64) { d.offer(k).Requests += v })
	offerSum(mCharged, func(k OfferKey, _ map[string]string, v float64) { d.offer(k).CallsLifetime += v })
	offerSum(mChargedAtomic, func(k OfferKey, l map[string]string, v float64) {
		d.HasAtomic = true
		d.offer(k).AtomicLifetime[l["asset"]] += v
	})
	offerSum(mLastSuccess, func(k OfferKey, _ map[string]string, v float64) {
		if o := d.offer(k); v > o.LastSettlement {
			o.LastSettlement = v
		}
	})
	for _, x := range []struct {
		name string
		set  func(p *verified, v float64)
	}{
		{mRequired, func(p *verified, v float64) { p.req += v }},
		{mVerified, func(p *verified, v float64) { p.ver += v }},
		{mFailed, func(p *verified, v float64) { p.fail += v }},
	} {
		offerSum(x.name, func(k OfferKey, _ map[string]string, v float64) {
			d.offer(k)
			if pay[k] == nil {
				pay[k] = &verified{}
			}
			x.set(pay[k], v)
		})
	}
	for k, o := range d.Offers {
		o.RateWindow = "lifetime"
		if p := pay[k]; p != nil && p.req+p.ver+p.fail > 0 {
			o.VerifiedRate = ptr(p.ver / (p.req + p.ver + p.fail))
		}
	}

	spendSum := func(name string, set func(s *SpendData, v float64)) {
		f := fams[name]
		if f == nil {
			return
		}
		for _, mt := range f.GetMetric() {
			l := labelMap(mt)
			set(d.spend(SpendKey{Upstream: l["upstream"], RemoteModel: l["remote_model"], Chain: l["chain"]}), value(mt))
		}
	}
	spendSum(mBuyerRequests, func(s *SpendData, v float64) { s.Requests += v })
	spendSum(mBuyerAttempts, func(s *SpendData, v float64) { s.Attempts += v })
	spendSum(mBuyerSuccess, func(s *SpendData, v float64) { s.Success += v })
	spendSum(mBuyerFailure, func(s *SpendData, v float64) { s.Failure += v })
	spendSum(mBuyerUnsettled, func(s *SpendData, v float64) { s.Unsettled += v })
	spendSum(mBuyerConfirmFailure, func(s *SpendData, v float64) { s.ConfirmFailure += v })
	spendSum(mAuthRemaining, func(s *SpendData, v float64) { s.AuthRemaining += v })
	spendSum(mAuthSpent, func(s *SpendData, v float64) { s.AuthSpent += v })
	spendSum(mMappings, func(s *SpendData, v float64) { s.ActiveModelMappings += v })
	return d, nil
}

func labelMap(m *dto.Metric) map[string]string {
	out := make(map[string]string, len(m.GetLabel()))
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Untyped != nil:
		return m.GetUntyped().GetValue()
	}
	return 0
}
