package earnings

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// Metric names (docs/metrics: a contract with the verifier and buyer).
const (
	mRequests      = "obol_x402_verifier_requests_total"
	mRequired      = "obol_x402_verifier_payment_required_total"
	mVerified      = "obol_x402_verifier_payment_verified_total"
	mFailed        = "obol_x402_verifier_payment_failed_total"
	mCharged       = "obol_x402_verifier_charged_requests_total"
	mChargedAtomic = "obol_x402_verifier_charged_atomic_units_total"
	mLastSuccess   = "obol_x402_verifier_last_payment_success_seconds"

	mBuyerRequests = "obol_x402_buyer_requests_total"
	mBuyerAttempts = "obol_x402_buyer_payment_attempts_total"
	mBuyerSuccess  = "obol_x402_buyer_payment_success_total"
	mBuyerFailure  = "obol_x402_buyer_payment_failure_total"
	// A paid answer without a settlement header; an outcome not journaled.
	mBuyerUnsettled      = "obol_x402_buyer_payment_unsettled_confirmations_total"
	mBuyerConfirmFailure = "obol_x402_buyer_confirm_spend_failure_total"
	mAuthRemaining       = "obol_x402_buyer_auth_remaining"
	mAuthSpent           = "obol_x402_buyer_auth_spent"
	mMappings            = "obol_x402_buyer_active_model_mappings"
)

// Recording rules of the chart (charts/obol/files/prometheus-rules.yaml).
const (
	RuleRevenue24h       = "x402:revenue:24h_by_offer_chain"
	RuleRevenue7d        = "x402:revenue:7d_by_offer_chain"
	RuleRevenueLifetime  = "x402:revenue:lifetime_by_offer"
	RuleAtomic24h        = "x402:revenue_atomic:24h_by_offer_chain_asset"
	RuleAtomic7d         = "x402:revenue_atomic:7d_by_offer_chain_asset"
	RuleAtomicLifetime   = "x402:revenue_atomic:lifetime_by_offer_chain_asset"
	RuleSettlementRate1h = "x402:settlement_rate:1h_by_offer_chain"
)

// contractRules are the rule names reported in SourceInfo.RulesFound.
var contractRules = []string{RuleRevenue24h, RuleRevenue7d, RuleRevenueLifetime, RuleAtomic24h, RuleAtomic7d, RuleAtomicLifetime, RuleSettlementRate1h}

const offerBy = "offer_namespace, offer_name, chain"

// verifiedRateExpr is the raw PromQL equivalent of RuleSettlementRate1h,
// used when the rule is not loaded. A counter an offer has not touched yet
// counts as 0; an offer without payment traffic in the hour has no sample.
var verifiedRateExpr = func() string {
	term := func(m string) string {
		return fmt.Sprintf("(sum by (%[1]s) (increase(%[2]s[1h])) or (sum by (%[1]s) (increase(%[3]s[1h])) * 0))", offerBy, m, mRequests)
	}
	return fmt.Sprintf("%s / ((%s + %s + %s) > 0)", term(mVerified), term(mRequired), term(mVerified), term(mFailed))
}()

// deltaExpr is the exact increase of counter m over d, per series, summed by
// the labels in by. Unlike increase() it does not extrapolate: it is the
// counter now minus the counter d ago. A series that did not exist d ago
// started at 0 inside the window, so it counts whole; a series that went down
// (its process restarted) counts what it has gathered since the restart — a
// lower bound, never an invention.
func deltaExpr(m, by, d string) string {
	return fmt.Sprintf("sum by (%s) (((%s - %s offset %s) >= 0) or %s)", by, m, m, d, m)
}

// lifetimeExpr is what counter m ever counted, summed by the labels in by:
// the raw PromQL of the chart's lifetime rules. Per series, its peak over
// everything Prometheus keeps when it never reset (a replaced verifier pod is
// a new series, a pruned or paused offer's series keeps its peak), else
// increase() over that range, which adds the value before each reset. It does
// not drop when a verifier restarts, as a sum of the counters' current values
// would.
func lifetimeExpr(m, by string) string {
	return fmt.Sprintf("sum by (%s) ((max_over_time(%s[10y]) unless resets(%s[10y]) > 0) or increase(%s[10y]))", by, m, m, m)
}

// PromAPI is the part of the Prometheus HTTP API the source uses.
type PromAPI interface {
	Query(ctx context.Context, query string, ts time.Time, opts ...v1.Option) (model.Value, v1.Warnings, v1.Infos, error)
	QueryRange(ctx context.Context, query string, r v1.Range, opts ...v1.Option) (model.Value, v1.Warnings, v1.Infos, error)
	Rules(ctx context.Context, matches []string) (v1.RulesResult, error)
}

// PrometheusSource reads the figures from a Prometheus server.
type PrometheusSource struct {
	URL string
	API PromAPI
}

// NewPrometheusSource returns a source for the Prometheus at url
// (e.g. http://127.0.0.1:9090).
func NewPrometheusSource(url string) (*PrometheusSource, error) {
	c, err := api.NewClient(api.Config{Address: url})
	if err != nil {
		return nil, fmt.Errorf("prometheus address %q: %w (pass a URL such as http://127.0.0.1:9090)", url, err)
	}
	return &PrometheusSource{URL: url, API: v1.NewAPI(c)}, nil
}

// Fetch implements Source.
func (p *PrometheusSource) Fetch(ctx context.Context, window Window, now time.Time) (*Data, error) {
	d := newData("prometheus", p.URL)
	d.Windowed = true
	q := &querier{api: p.API, now: now}
	w := window.promDuration()

	// Which recording rules are loaded: ask the rules API; when it is not
	// available, a rule that answers nothing while its raw metrics do counts
	// as missing (see verifiedRate below).
	rules, rulesErr := p.loadedRules(ctx)
	if rulesErr != nil && isUnreachable(rulesErr) {
		return nil, fmt.Errorf("query Prometheus at %s: %w (is it running? pass --prometheus URL)", p.URL, rulesErr)
	}
	for _, r := range contractRules {
		if rules[r] {
			d.RulesFound = append(d.RulesFound, r)
		}
	}

	// Verifier: lifetime figures (what the counters ever counted, across
	// restarts; see lifetimeExpr).
	steps := []struct {
		expr string
		set  func(k OfferKey, v float64)
	}{
		{fmt.Sprintf("sum by (%s) (%s)", offerBy, mRequests), func(k OfferKey, v float64) { d.offer(k).Requests = v }},
		{lifetimeExpr(mCharged, offerBy), func(k OfferKey, v float64) { d.offer(k).CallsLifetime = v }},
		{fmt.Sprintf("max by (%s) (%s)", offerBy, mLastSuccess), func(k OfferKey, v float64) { d.offer(k).LastSettlement = v }},
	}
	for _, st := range steps {
		vec, err := q.vector(ctx, st.expr)
		if err != nil {
			return nil, err
		}
		for _, s := range vec {
			st.set(offerKey(s.Metric), float64(s.Value))
		}
	}
	// Lifetime revenue: the chart's rule when it is loaded (what a dashboard
	// on the rules shows), else the same expression as raw PromQL.
	lifeExpr := lifetimeExpr(mChargedAtomic, offerBy+", asset")
	if rulesErr == nil && rules[RuleAtomicLifetime] {
		lifeExpr = RuleAtomicLifetime
	} else {
		d.Notes = append(d.Notes, "lifetime revenue computed as raw PromQL: recording rule "+RuleAtomicLifetime+" is not loaded")
	}
	life, err := q.vector(ctx, lifeExpr)
	if err != nil {
		return nil, err
	}
	d.HasAtomic = len(life) > 0
	for _, s := range life {
		d.offer(offerKey(s.Metric)).AtomicLifetime[string(s.Metric["asset"])] = float64(s.Value)
	}
	// Window figures: the chart's increase() rules for 24h and 7d when
	// loaded (what a dashboard on the rules shows), else the same
	// expression as raw PromQL (30d has no rule).
	rulesKnown := rulesErr == nil
	calls, err := p.windowVector(ctx, q, d, rules, rulesKnown, windowRules[window].calls, increaseExpr(mCharged, offerBy, w), "charged calls")
	if err != nil {
		return nil, err
	}
	for _, s := range calls {
		d.offer(offerKey(s.Metric)).CallsWindow = ptr(float64(s.Value))
	}
	win, err := p.windowVector(ctx, q, d, rules, rulesKnown, windowRules[window].atomic, increaseExpr(mChargedAtomic, offerBy+", asset", w), "revenue")
	if err != nil {
		return nil, err
	}
	for _, s := range win {
		o := d.offer(offerKey(s.Metric))
		if o.AtomicWindow == nil {
			o.AtomicWindow = map[string]float64{}
		}
		o.AtomicWindow[string(s.Metric["asset"])] = float64(s.Value)
	}

	if err := p.verifiedRate(ctx, q, d, rules, rulesErr == nil); err != nil {
		return nil, err
	}
	if err := p.sparklines(ctx, q, d, window, now); err != nil {
		return nil, err
	}
	if err := p.spend(ctx, q, d, w); err != nil {
		return nil, err
	}

	for _, o := range d.Offers {
		if o.CallsWindow == nil {
			o.CallsWindow = ptr(0)
		}
		if o.AtomicWindow == nil {
			o.AtomicWindow = map[string]float64{}
		}
		if o.RateWindow == "" {
			o.RateWindow = "1h"
		}
	}
	d.Notes = append(d.Notes, "the "+w+" charged calls and revenue are increase() over "+w+", like the chart's rules (Prometheus extrapolates to the window's edges, so they are estimates, rounded to whole atomic units); the trend and the buyer's window figures are exact counter differences")
	d.Notes = append(d.Notes, q.warnings...)
	return d, nil
}

// windowRules are the chart's rules for each window's charged calls and
// revenue ("" = no rule for that window).
var windowRules = map[Window]struct{ calls, atomic string }{
	Window24h: {RuleRevenue24h, RuleAtomic24h},
	Window7d:  {RuleRevenue7d, RuleAtomic7d},
}

// increaseExpr is the chart's windowed revenue rules as raw PromQL: the
// increase() of counter m over d, summed by the labels in by.
func increaseExpr(m, by, d string) string {
	return fmt.Sprintf("sum by (%s) (increase(%s[%s]))", by, m, d)
}

// windowVector reads rule when Prometheus has it loaded, else raw (the
// same expression) and notes the fallback. Without a rules API, a rule that
// answers nothing while raw does counts as not loaded.
func (p *PrometheusSource) windowVector(ctx context.Context, q *querier, d *Data, rules map[string]bool, rulesKnown bool, rule, raw, what string) (model.Vector, error) {
	fallback := func(why string) (model.Vector, error) {
		d.Notes = append(d.Notes, "window "+what+" computed as raw PromQL: "+why)
		return q.vector(ctx, raw)
	}
	switch {
	case rule == "":
		return fallback("the chart has no recording rule for this window")
	case rulesKnown && rules[rule]:
		return q.vector(ctx, rule)
	case rulesKnown:
		return fallback("recording rule " + rule + " is not loaded")
	}
	vec, err := q.vector(ctx, rule)
	if err != nil || len(vec) > 0 {
		return vec, err
	}
	rawVec, err := q.vector(ctx, raw)
	if err != nil || len(rawVec) == 0 {
		return vec, err
	}
	d.Notes = append(d.Notes, "window "+what+" computed as raw PromQL: recording rule "+rule+" answers nothing")
	return rawVec, nil
}

func (p *PrometheusSource) verifiedRate(ctx context.Context, q *querier, d *Data, rules map[string]bool, rulesKnown bool) error {
	missingNote := "recording rule " + RuleSettlementRate1h + " is not loaded in this Prometheus: computed from raw metrics (install the chart's PrometheusRule to precompute it)"
	var vec model.Vector
	var err error
	switch {
	case rulesKnown && rules[RuleSettlementRate1h]:
		if vec, err = q.vector(ctx, RuleSettlementRate1h); err != nil {
			return err
		}
		d.RecordingRules = "loaded"
		if len(d.RulesFound) < len(contractRules) {
			d.RecordingRules = "partial"
		}
	case rulesKnown:
		if vec, err = q.vector(ctx, verifiedRateExpr); err != nil {
			return err
		}
		d.RecordingRules = "missing"
		d.Notes = append(d.Notes, missingNote)
	default:
		// No rules API (a proxy in front of Prometheus, say): a rule that
		// answers nothing while the raw metrics do is not loaded.
		if vec, err = q.vector(ctx, RuleSettlementRate1h); err != nil {
			return err
		}
		d.RecordingRules = "loaded"
		if len(vec) == 0 {
			raw, err := q.vector(ctx, verifiedRateExpr)
			if err != nil {
				return err
			}
			if len(raw) > 0 {
				vec = raw
				d.RecordingRules = "missing"
				d.Notes = append(d.Notes, missingNote)
			} else {
				d.RecordingRules = "unknown"
			}
		}
	}
	for _, s := range vec {
		v := float64(s.Value)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		o := d.offer(offerKey(s.Metric))
		o.VerifiedRate = ptr(v)
		o.RateWindow = "1h"
	}
	return nil
}

// sparklines reads exact per-bucket amounts with a range query: at each step,
// the counter minus the counter one step earlier.
func (p *PrometheusSource) sparklines(ctx context.Context, q *querier, d *Data, window Window, now time.Time) error {
	step := window.SparkStep()
	n := int(window.Duration() / step)
	// End exactly at now, like the instant queries, so the last bucket sees
	// the same samples they do.
	end := now
	start := end.Add(-time.Duration(n-1) * step)
	ds := promDur(step)
	index := func(t model.Time) int {
		i := int(math.Round(float64(t.Time().Sub(start)) / float64(step)))
		if i < 0 || i >= n {
			return -1
		}
		return i
	}
	calls, err := q.matrix(ctx, deltaExpr(mCharged, offerBy, ds), v1.Range{Start: start, End: end, Step: step})
	if err != nil {
		return err
	}
	atomic, err := q.matrix(ctx, deltaExpr(mChargedAtomic, offerBy+", asset", ds), v1.Range{Start: start, End: end, Step: step})
	if err != nil {
		return err
	}
	for _, o := range d.Offers {
		o.SparkStep = step
		o.SparkCalls = make([]float64, n)
	}
	for _, ss := range calls {
		o, ok := d.Offers[offerKey(ss.Metric)]
		if !ok {
			continue
		}
		for _, sp := range ss.Values {
			if i := index(sp.Timestamp); i >= 0 {
				o.SparkCalls[i] = float64(sp.Value)
			}
		}
	}
	for _, ss := range atomic {
		o, ok := d.Offers[offerKey(ss.Metric)]
		if !ok {
			continue
		}
		if o.SparkAtomic == nil {
			o.SparkAtomic = map[string][]float64{}
		}
		pts := make([]float64, n)
		for _, sp := range ss.Values {
			if i := index(sp.Timestamp); i >= 0 {
				pts[i] = float64(sp.Value)
			}
		}
		o.SparkAtomic[string(ss.Metric["asset"])] = pts
	}
	return nil
}

func (p *PrometheusSource) spend(ctx context.Context, q *querier, d *Data, w string) error {
	const by = "upstream, remote_model, chain"
	counters := []struct {
		m    string
		life func(*SpendData) *float64
		win  func(*SpendData) **float64
	}{
		{mBuyerRequests, func(s *SpendData) *float64 { return &s.Requests }, func(s *SpendData) **float64 { return &s.RequestsW }},
		{mBuyerAttempts, func(s *SpendData) *float64 { return &s.Attempts }, func(s *SpendData) **float64 { return &s.AttemptsW }},
		{mBuyerSuccess, func(s *SpendData) *float64 { return &s.Success }, func(s *SpendData) **float64 { return &s.SuccessW }},
		{mBuyerFailure, func(s *SpendData) *float64 { return &s.Failure }, func(s *SpendData) **float64 { return &s.FailureW }},
		{mBuyerUnsettled, func(s *SpendData) *float64 { return &s.Unsettled }, func(s *SpendData) **float64 { return &s.UnsettledW }},
		{mBuyerConfirmFailure, func(s *SpendData) *float64 { return &s.ConfirmFailure }, func(s *SpendData) **float64 { return &s.ConfirmFailureW }},
	}
	for _, c := range counters {
		vec, err := q.vector(ctx, fmt.Sprintf("sum by (%s) (%s)", by, c.m))
		if err != nil {
			return err
		}
		for _, s := range vec {
			*c.life(d.spend(spendKey(s.Metric))) = float64(s.Value)
		}
		if vec, err = q.vector(ctx, deltaExpr(c.m, by, w)); err != nil {
			return err
		}
		for _, s := range vec {
			*c.win(d.spend(spendKey(s.Metric))) = ptr(float64(s.Value))
		}
	}
	gauges := []struct {
		m   string
		set func(*SpendData) *float64
	}{
		{mAuthRemaining, func(s *SpendData) *float64 { return &s.AuthRemaining }},
		{mAuthSpent, func(s *SpendData) *float64 { return &s.AuthSpent }},
		{mMappings, func(s *SpendData) *float64 { return &s.ActiveModelMappings }},
	}
	for _, g := range gauges {
		vec, err := q.vector(ctx, fmt.Sprintf("sum by (%s) (%s)", by, g.m))
		if err != nil {
			return err
		}
		for _, s := range vec {
			*g.set(d.spend(spendKey(s.Metric))) = float64(s.Value)
		}
	}
	for _, s := range d.Spend {
		for _, c := range counters {
			if wp := c.win(s); *wp == nil {
				*wp = ptr(0)
			}
		}
	}
	return nil
}

func (p *PrometheusSource) loadedRules(ctx context.Context) (map[string]bool, error) {
	res, err := p.API.Rules(ctx, nil)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, g := range res.Groups {
		for _, r := range g.Rules {
			if rr, ok := r.(v1.RecordingRule); ok {
				out[rr.Name] = true
			}
		}
	}
	return out, nil
}

func isUnreachable(err error) bool {
	var apiErr *v1.Error
	if errors.As(err, &apiErr) {
		return false
	}
	return !errors.Is(err, context.Canceled)
}

type querier struct {
	api      PromAPI
	now      time.Time
	warnings []string
}

func (q *querier) vector(ctx context.Context, expr string) (model.Vector, error) {
	v, warns, _, err := q.api.Query(ctx, expr, q.now)
	if err != nil {
		return nil, fmt.Errorf("prometheus query %s: %w", expr, err)
	}
	q.warn(warns)
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("prometheus query %s: got %s, want a vector", expr, v.Type())
	}
	return vec, nil
}

func (q *querier) matrix(ctx context.Context, expr string, r v1.Range) (model.Matrix, error) {
	v, warns, _, err := q.api.QueryRange(ctx, expr, r)
	if err != nil {
		return nil, fmt.Errorf("prometheus range query %s: %w", expr, err)
	}
	q.warn(warns)
	m, ok := v.(model.Matrix)
	if !ok {
		return nil, fmt.Errorf("prometheus range query %s: got %s, want a matrix", expr, v.Type())
	}
	return m, nil
}

func (q *querier) warn(w v1.Warnings) {
	for _, s := range w {
		q.warnings = append(q.warnings, "prometheus warning: "+s)
	}
}

func offerKey(m model.Metric) OfferKey {
	return OfferKey{Namespace: string(m["offer_namespace"]), Name: string(m["offer_name"]), Chain: string(m["chain"])}
}

func spendKey(m model.Metric) SpendKey {
	return SpendKey{Upstream: string(m["upstream"]), RemoteModel: string(m["remote_model"]), Chain: string(m["chain"])}
}

func promDur(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

func ptr(v float64) *float64 { return &v }
