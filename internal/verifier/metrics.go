package verifier

import (
	"math/big"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/obolstack/obol/internal/x402"
)

// Metric label names. offer_namespace, offer_name and chain are a contract:
// dashboards and recording rules read them. chain is always the canonical
// CAIP-2 id the route charges on.
const (
	LabelOfferNamespace = "offer_namespace"
	LabelOfferName      = "offer_name"
	LabelChain          = "chain"
	LabelAsset          = "asset"
	LabelReason         = "reason"
	LabelOp             = "op"
	LabelResult         = "result"
	LabelFacilitator    = "facilitator"
)

// Metric names: a contract, like the labels (recording rules, dashboards
// and obol earnings read them).
const (
	MetricRequests            = metricsNamespacePrefix + "requests_total"
	MetricPaymentRequired     = metricsNamespacePrefix + "payment_required_total"
	MetricPaymentVerified     = metricsNamespacePrefix + "payment_verified_total"
	MetricPaymentFailed       = metricsNamespacePrefix + "payment_failed_total"
	MetricCharged             = metricsNamespacePrefix + "charged_requests_total"
	MetricLastPaymentSuccess  = metricsNamespacePrefix + "last_payment_success_seconds"
	MetricChargedAtomicUnits  = metricsNamespacePrefix + "charged_atomic_units_total"
	MetricPaymentFailures     = metricsNamespacePrefix + "payment_failures_total"
	MetricFacilitatorDuration = metricsNamespacePrefix + "facilitator_request_duration_seconds"
	MetricConfigReloads       = metricsNamespacePrefix + "config_reloads_total"
	MetricSettlements         = metricsNamespacePrefix + "settlements_total"
	MetricFacilitatorRequests = metricsNamespacePrefix + "facilitator_requests_total"
)

// Failure reasons of the verifier itself, beside the facilitator's codes.
const (
	ReasonMalformedPayment             = "malformed_payment"
	ReasonAuthorizationReused          = "authorization_reused"
	ReasonFacilitatorError             = "facilitator_error"
	ReasonFacilitatorUnavailable       = "facilitator_unavailable"
	ReasonSettleFailed                 = "settle_failed"
	ReasonReplayRecordFull             = "replay_record_full"
	ReasonOther                        = "other"
	reloadResultSuccess                = "success"
	reloadResultFailure                = "failure"
	facilitatorOpVerify                = "verify"
	facilitatorOpSettle                = "settle"
	metricsNamespacePrefix             = "obol_x402_verifier_"
	maxExactFloat                int64 = 1 << 53
)

// failureReasons is the bounded set of reason label values: the x402 codes
// and the verifier's own; anything else is reported as "other".
var failureReasons = func() map[string]bool {
	m := map[string]bool{}
	for _, rs := range [][]string{x402.SpecReasons, x402.ExtensionReasons, {
		ReasonMalformedPayment, ReasonAuthorizationReused, ReasonFacilitatorError,
		ReasonFacilitatorUnavailable, ReasonSettleFailed, ReasonReplayRecordFull, ReasonOther,
	}} {
		for _, r := range rs {
			m[r] = true
		}
	}
	return m
}()

// reasonLabel maps a reason to its bounded label value.
func reasonLabel(reason string) string {
	reason = x402.CanonicalReason(reason)
	if failureReasons[reason] {
		return reason
	}
	return ReasonOther
}

// reasonBits numbers the bounded reasons, so an offer can remember in one
// word which reason series it has created (and a reload delete exactly
// those).
var reasonBits = func() map[string]uint64 {
	names := make([]string, 0, len(failureReasons))
	for r := range failureReasons {
		names = append(names, r)
	}
	sort.Strings(names)
	if len(names) > 64 {
		panic("verifier: more than 64 failure reasons")
	}
	bits := make(map[string]uint64, len(names))
	for i, r := range names {
		bits[r] = 1 << i
	}
	return bits
}()

// Metrics are the verifier's Prometheus collectors. Build them with
// NewMetrics on a registry the caller owns; there are no globals.
type Metrics struct {
	Requests            *prometheus.CounterVec
	PaymentRequired     *prometheus.CounterVec
	PaymentVerified     *prometheus.CounterVec
	PaymentFailed       *prometheus.CounterVec
	Charged             *prometheus.CounterVec
	LastPaymentSuccess  *prometheus.GaugeVec
	ChargedAtomicUnits  *prometheus.CounterVec
	PaymentFailures     *prometheus.CounterVec
	FacilitatorDuration *prometheus.HistogramVec
	FacilitatorRequests *prometheus.CounterVec
	ConfigReloads       *prometheus.CounterVec
	Settlements         *prometheus.CounterVec

	// served maps each served offer (on its chain) to its state. A reload
	// builds a new map and swaps it in; requests never wait for that.
	served atomic.Pointer[map[offerChain]*offerState]
}

type offerChain struct {
	Offer
	Chain string
}

// offerState is one served offer's series bookkeeping. Observations hold
// mu shared; a reload that drops the offer takes it exclusively, marks it
// removed and deletes its series, so a request racing the reload cannot
// bring a deleted series back. Only requests to that very offer can wait
// on it, and only for its own few deletions.
type offerState struct {
	lv      []string // offer_namespace, offer_name, chain
	mu      sync.RWMutex
	removed bool
	assets  map[string]bool // guarded by mu: assets charged in
	reasons atomic.Uint64   // reasonBits of the reason series created
}

// offerLabelValues is the one place label values are made.
func offerLabelValues(o Offer, chain string, extra ...string) []string {
	return append([]string{o.Namespace, o.Name, chain}, extra...)
}

// NewMetrics creates the collectors and registers them on reg (nil: not
// registered, for tests that read them directly).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	offer := []string{LabelOfferNamespace, LabelOfferName, LabelChain}
	counter := func(name, help string, labels []string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	m := &Metrics{
		Requests:        counter(MetricRequests, "Requests to a priced route.", offer),
		PaymentRequired: counter(MetricPaymentRequired, "Unpaid requests answered with a 402 challenge.", offer),
		PaymentVerified: counter(MetricPaymentVerified, "Payments the facilitator verified as valid.", offer),
		PaymentFailed:   counter(MetricPaymentFailed, "Payments refused: malformed, not matching, invalid, replayed, or not settled.", offer),
		Charged:         counter(MetricCharged, "Requests whose payment was settled on-chain (the buyer was charged).", offer),
		LastPaymentSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: MetricLastPaymentSuccess,
			Help: "Unix time of the last settled payment.",
		}, offer),
		ChargedAtomicUnits: counter(MetricChargedAtomicUnits,
			"Settled revenue in atomic units of the asset (token address); exact while the total stays below 2^53.",
			append(append([]string{}, offer...), LabelAsset)),
		PaymentFailures: counter(MetricPaymentFailures, "Refused payments by reason (a bounded set; unknown reasons are \"other\").",
			append(append([]string{}, offer...), LabelReason)),
		FacilitatorDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    MetricFacilitatorDuration,
			Help:    "Duration of calls to the facilitator, by operation (verify, settle).",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}, []string{LabelOp}),
		FacilitatorRequests: counter(MetricFacilitatorRequests,
			"Calls to each configured facilitator by operation and result (ok, error, unavailable); facilitator is its configured name.",
			[]string{LabelFacilitator, LabelOp, LabelResult}),
		ConfigReloads: counter(MetricConfigReloads, "Route configuration loads by result (success, failure).", []string{LabelResult}),
		Settlements: counter(MetricSettlements, "Settle outcomes by result: settled, settled_after_retry, refused (not charged), "+
			"unknown (no answer within the settle deadline: alert on it).", []string{LabelResult}),
	}
	m.served.Store(&map[offerChain]*offerState{})
	if reg != nil {
		for _, c := range m.collectors() {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	// Make both results visible from the start.
	m.ConfigReloads.WithLabelValues(reloadResultSuccess)
	m.ConfigReloads.WithLabelValues(reloadResultFailure)
	for _, r := range []string{SettleResultSettled, SettleResultSettledAfterRetry, SettleResultRefused, SettleResultUnknown} {
		m.Settlements.WithLabelValues(r)
	}
	return m, nil
}

func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.Requests, m.PaymentRequired, m.PaymentVerified, m.PaymentFailed, m.Charged,
		m.LastPaymentSuccess, m.ChargedAtomicUnits, m.PaymentFailures, m.FacilitatorDuration, m.FacilitatorRequests, m.ConfigReloads, m.Settlements}
}

// perOffer are the vectors labelled by offer and chain alone.
func (m *Metrics) perOffer() []interface{ DeleteLabelValues(...string) bool } {
	return []interface{ DeleteLabelValues(...string) bool }{
		m.Requests, m.PaymentRequired, m.PaymentVerified, m.PaymentFailed, m.Charged, m.LastPaymentSuccess}
}

// precreate starts at 0 the series the recording rules take increase()
// of (see docs/verifier.md, "Which series exist"): increase() cannot count
// the step from no series to the first value, so a series created at its
// first use would lose that first event from every rate and revenue rule.
func (m *Metrics) precreate(st *offerState) {
	m.Requests.WithLabelValues(st.lv...)
	m.PaymentRequired.WithLabelValues(st.lv...)
	m.PaymentVerified.WithLabelValues(st.lv...)
	m.PaymentFailed.WithLabelValues(st.lv...)
	m.Charged.WithLabelValues(st.lv...)
	for a := range st.assets {
		m.ChargedAtomicUnits.WithLabelValues(append(st.lv[:3:3], a)...)
	}
}

// deleteSeries removes every series the offer may have: its per-offer
// series, one per asset, and one per reason it recorded. st.mu is held.
func (m *Metrics) deleteSeries(st *offerState) {
	for _, v := range m.perOffer() {
		v.DeleteLabelValues(st.lv...)
	}
	for a := range st.assets {
		m.ChargedAtomicUnits.DeleteLabelValues(append(st.lv[:3:3], a)...)
	}
	bits := st.reasons.Load()
	for r, bit := range reasonBits {
		if bits&bit != 0 {
			m.PaymentFailures.DeleteLabelValues(append(st.lv[:3:3], r)...)
		}
	}
}

// serve makes the metric series match the offers of a new config: series
// of offers no longer served (or no longer on that chain, or no longer in
// that asset) are deleted by their exact label values; new offers start
// their revenue series at zero; kept offers keep their values. The cost is
// proportional to what changed (plus one map of the served offers), and no
// request waits on it.
func (m *Metrics) serve(offers []servedOffer) {
	old := *m.served.Load()
	next := make(map[offerChain]*offerState, len(offers))
	for _, o := range offers {
		key := offerChain{o.Offer, o.Chain}
		assets := make(map[string]bool, len(o.Assets))
		for _, a := range o.Assets {
			assets[a] = true
		}
		st, kept := old[key]
		if !kept {
			st = &offerState{lv: offerLabelValues(o.Offer, o.Chain), assets: assets}
			m.precreate(st)
			next[key] = st
			continue
		}
		next[key] = st
		st.mu.RLock()
		same := len(st.assets) == len(assets)
		for a := range assets {
			same = same && st.assets[a]
		}
		st.mu.RUnlock()
		if same {
			continue
		}
		st.mu.Lock()
		for a := range st.assets {
			if !assets[a] {
				m.ChargedAtomicUnits.DeleteLabelValues(append(st.lv[:3:3], a)...)
			}
		}
		st.assets = assets
		m.precreate(st)
		st.mu.Unlock()
	}
	m.served.Store(&next)
	for key, st := range old {
		if _, kept := next[key]; kept {
			continue
		}
		st.mu.Lock()
		st.removed = true
		m.deleteSeries(st)
		st.mu.Unlock()
	}
}

// with runs f with the route's label values when its offer is still
// served.
func (m *Metrics) with(r *Route, f func(st *offerState)) {
	if m == nil || r == nil {
		return
	}
	st := (*m.served.Load())[offerChain{r.Offer, r.Chain.CAIP2}]
	if st == nil {
		return
	}
	st.mu.RLock()
	defer st.mu.RUnlock()
	if !st.removed {
		f(st)
	}
}

func (m *Metrics) request(r *Route) {
	m.with(r, func(st *offerState) { m.Requests.WithLabelValues(st.lv...).Inc() })
}

func (m *Metrics) paymentRequired(r *Route) {
	m.with(r, func(st *offerState) { m.PaymentRequired.WithLabelValues(st.lv...).Inc() })
}

func (m *Metrics) verified(r *Route) {
	m.with(r, func(st *offerState) { m.PaymentVerified.WithLabelValues(st.lv...).Inc() })
}

func (m *Metrics) failed(r *Route, reason string) {
	m.with(r, func(st *offerState) {
		reason = reasonLabel(reason)
		st.reasons.Or(reasonBits[reason])
		m.PaymentFailed.WithLabelValues(st.lv...).Inc()
		m.PaymentFailures.WithLabelValues(append(st.lv[:3:3], reason)...).Inc()
	})
}

func (m *Metrics) charged(r *Route, amount *big.Int, now time.Time) {
	m.with(r, func(st *offerState) {
		asset := r.Token.Address.Hex()
		m.Charged.WithLabelValues(st.lv...).Inc()
		if st.assets[asset] {
			m.ChargedAtomicUnits.WithLabelValues(append(st.lv[:3:3], asset)...).Add(atomicFloat(amount))
		}
		m.LastPaymentSuccess.WithLabelValues(st.lv...).Set(float64(now.UnixNano()) / 1e9)
	})
}

// atomicFloat converts an amount for a float counter: exact up to 2^53.
func atomicFloat(v *big.Int) float64 {
	if v.IsInt64() && v.Int64() <= maxExactFloat {
		return float64(v.Int64())
	}
	f, _ := new(big.Float).SetInt(v).Float64()
	return f
}

func (m *Metrics) facilitatorDuration(op string, d time.Duration) {
	if m == nil {
		return
	}
	m.FacilitatorDuration.WithLabelValues(op).Observe(d.Seconds())
}

func (m *Metrics) settlement(result string) {
	if m == nil {
		return
	}
	m.Settlements.WithLabelValues(result).Inc()
}

func (m *Metrics) reload(ok bool) {
	if m == nil {
		return
	}
	if ok {
		m.ConfigReloads.WithLabelValues(reloadResultSuccess).Inc()
	} else {
		m.ConfigReloads.WithLabelValues(reloadResultFailure).Inc()
	}
}

// keepFacilitators deletes the series of facilitators no longer configured.
func (m *Metrics) keepFacilitators(names map[string]bool) {
	if m == nil {
		return
	}
	ch := make(chan prometheus.Metric, 64)
	go func() { m.FacilitatorRequests.Collect(ch); close(ch) }()
	gone := map[string]bool{}
	for metric := range ch {
		var d dto.Metric
		if metric.Write(&d) != nil {
			continue
		}
		for _, lp := range d.GetLabel() {
			if lp.GetName() == LabelFacilitator && !names[lp.GetValue()] {
				gone[lp.GetValue()] = true
			}
		}
	}
	for n := range gone {
		m.FacilitatorRequests.DeletePartialMatch(prometheus.Labels{LabelFacilitator: n})
	}
}
