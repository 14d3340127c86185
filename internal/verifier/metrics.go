package verifier

import (
	"math/big"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/obolstack/obol/internal/x402"
)

// Metric label names. offer_namespace, offer_name and chain are the seed's
// contract; chain is always the canonical CAIP-2 id the route charges on.
const (
	LabelOfferNamespace = "offer_namespace"
	LabelOfferName      = "offer_name"
	LabelChain          = "chain"
	LabelAsset          = "asset"
	LabelReason         = "reason"
	LabelOp             = "op"
	LabelResult         = "result"
)

// Failure reasons of the verifier itself, beside the facilitator's codes.
const (
	ReasonMalformedPayment             = "malformed_payment"
	ReasonAuthorizationReused          = "authorization_reused"
	ReasonFacilitatorError             = "facilitator_error"
	ReasonFacilitatorUnavailable       = "facilitator_unavailable"
	ReasonSettleFailed                 = "settle_failed"
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
		ReasonFacilitatorUnavailable, ReasonSettleFailed, ReasonOther,
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
	ConfigReloads       *prometheus.CounterVec

	// mu guards served: observations take it shared and skip offers that
	// are no longer served, so a request racing a reload cannot bring a
	// pruned series back.
	mu     sync.RWMutex
	served map[offerChain]map[string]bool // → assets
}

type offerChain struct {
	Offer
	Chain string
}

// offerLabelValues is the one place label values are made.
func offerLabelValues(o Offer, chain string, extra ...string) []string {
	return append([]string{o.Namespace, o.Name, chain}, extra...)
}

func offerLabels(o Offer, chain string) prometheus.Labels {
	return prometheus.Labels{LabelOfferNamespace: o.Namespace, LabelOfferName: o.Name, LabelChain: chain}
}

// NewMetrics creates the collectors and registers them on reg (nil: not
// registered, for tests that read them directly).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	offer := []string{LabelOfferNamespace, LabelOfferName, LabelChain}
	counter := func(name, help string, labels []string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: metricsNamespacePrefix + name, Help: help}, labels)
	}
	m := &Metrics{
		Requests:        counter("requests_total", "Requests to a priced route.", offer),
		PaymentRequired: counter("payment_required_total", "Unpaid requests answered with a 402 challenge.", offer),
		PaymentVerified: counter("payment_verified_total", "Payments the facilitator verified as valid.", offer),
		PaymentFailed:   counter("payment_failed_total", "Payments refused: malformed, not matching, invalid, replayed, or not settled.", offer),
		Charged:         counter("charged_requests_total", "Requests whose payment was settled on-chain (the buyer was charged).", offer),
		LastPaymentSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: metricsNamespacePrefix + "last_payment_success_seconds",
			Help: "Unix time of the last settled payment.",
		}, offer),
		ChargedAtomicUnits: counter("charged_atomic_units_total",
			"Settled revenue in atomic units of the asset (token address); exact while the total stays below 2^53.",
			append(append([]string{}, offer...), LabelAsset)),
		PaymentFailures: counter("payment_failures_total", "Refused payments by reason (a bounded set; unknown reasons are \"other\").",
			append(append([]string{}, offer...), LabelReason)),
		FacilitatorDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    metricsNamespacePrefix + "facilitator_request_duration_seconds",
			Help:    "Duration of calls to the facilitator, by operation (verify, settle).",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}, []string{LabelOp}),
		ConfigReloads: counter("config_reloads_total", "Route configuration loads by result (success, failure).", []string{LabelResult}),
		served:        map[offerChain]map[string]bool{},
	}
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
	return m, nil
}

func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.Requests, m.PaymentRequired, m.PaymentVerified, m.PaymentFailed, m.Charged,
		m.LastPaymentSuccess, m.ChargedAtomicUnits, m.PaymentFailures, m.FacilitatorDuration, m.ConfigReloads}
}

func (m *Metrics) offerVecs() []interface {
	DeletePartialMatch(prometheus.Labels) int
} {
	return []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{m.Requests, m.PaymentRequired, m.PaymentVerified, m.PaymentFailed, m.Charged,
		m.LastPaymentSuccess, m.ChargedAtomicUnits, m.PaymentFailures}
}

// serve makes the metric series match the offers of a new config: series
// of offers no longer served (or no longer on that chain, or no longer in
// that asset) are deleted from every vector; new offers start at zero;
// kept offers keep their values.
func (m *Metrics) serve(offers []servedOffer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	next := make(map[offerChain]map[string]bool, len(offers))
	for _, o := range offers {
		assets := map[string]bool{}
		for _, a := range o.Assets {
			assets[a] = true
		}
		next[offerChain{o.Offer, o.Chain}] = assets
	}
	for oc, assets := range m.served {
		nextAssets, kept := next[oc]
		if !kept {
			for _, v := range m.offerVecs() {
				v.DeletePartialMatch(offerLabels(oc.Offer, oc.Chain))
			}
			continue
		}
		for a := range assets {
			if !nextAssets[a] {
				m.ChargedAtomicUnits.DeleteLabelValues(offerLabelValues(oc.Offer, oc.Chain, a)...)
			}
		}
	}
	for oc, assets := range next {
		lv := offerLabelValues(oc.Offer, oc.Chain)
		m.Requests.WithLabelValues(lv...)
		m.PaymentRequired.WithLabelValues(lv...)
		m.PaymentVerified.WithLabelValues(lv...)
		m.PaymentFailed.WithLabelValues(lv...)
		m.Charged.WithLabelValues(lv...)
		for a := range assets {
			m.ChargedAtomicUnits.WithLabelValues(offerLabelValues(oc.Offer, oc.Chain, a)...)
		}
	}
	m.served = next
}

// with runs f with the route's label values when its offer is still
// served.
func (m *Metrics) with(r *Route, f func(lv []string)) {
	if m == nil || r == nil {
		return
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if _, ok := m.served[offerChain{r.Offer, r.Chain.CAIP2}]; !ok {
		return
	}
	f(offerLabelValues(r.Offer, r.Chain.CAIP2))
}

func (m *Metrics) request(r *Route) {
	m.with(r, func(lv []string) { m.Requests.WithLabelValues(lv...).Inc() })
}

func (m *Metrics) paymentRequired(r *Route) {
	m.with(r, func(lv []string) { m.PaymentRequired.WithLabelValues(lv...).Inc() })
}

func (m *Metrics) verified(r *Route) {
	m.with(r, func(lv []string) { m.PaymentVerified.WithLabelValues(lv...).Inc() })
}

func (m *Metrics) failed(r *Route, reason string) {
	m.with(r, func(lv []string) {
		m.PaymentFailed.WithLabelValues(lv...).Inc()
		m.PaymentFailures.WithLabelValues(append(lv, reasonLabel(reason))...).Inc()
	})
}

func (m *Metrics) charged(r *Route, amount *big.Int, now time.Time) {
	m.with(r, func(lv []string) {
		m.Charged.WithLabelValues(lv...).Inc()
		m.ChargedAtomicUnits.WithLabelValues(append(lv, r.Token.Address.Hex())...).Add(atomicFloat(amount))
		m.LastPaymentSuccess.WithLabelValues(lv...).Set(float64(now.UnixNano()) / 1e9)
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
