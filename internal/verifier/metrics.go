package verifier

import (
	"math"
	"math/big"
	"slices"
	"sort"
	"strings"
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
	MetricSettlementsPending  = metricsNamespacePrefix + "settlements_pending"
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

// reasonNames are the bounded reasons in label order; reasonIndex numbers
// them, so an offer keeps one counter per reason in a fixed array.
var (
	reasonNames = func() []string {
		names := make([]string, 0, len(failureReasons))
		for r := range failureReasons {
			names = append(names, r)
		}
		sort.Strings(names)
		if len(names) > len(reasonCounters{}) {
			panic("verifier: more failure reasons than reasonCounters holds")
		}
		return names
	}()
	reasonIndex = func() map[string]int {
		idx := make(map[string]int, len(reasonNames))
		for i, r := range reasonNames {
			idx[r] = i
		}
		return idx
	}()
)

// Metrics are the verifier's Prometheus series. Build them with NewMetrics;
// there are no globals.
//
// The per-offer families (the *OfferFamily fields) are counted in each
// served offer's own atomic counters and written at /metrics by the
// Server straight from them, beside the families of the registry: with
// 10,000 offers there are 60,000 such series, and building them through
// client_golang's Gather (a dto.Metric each, consistency checks, a sort)
// cost about 300 ms of CPU per scrape. The other families are ordinary
// client_golang collectors registered on the caller's registry.
type Metrics struct {
	Requests           *OfferFamily
	PaymentRequired    *OfferFamily
	PaymentVerified    *OfferFamily
	PaymentFailed      *OfferFamily
	Charged            *OfferFamily
	LastPaymentSuccess *OfferFamily
	ChargedAtomicUnits *OfferFamily // labels: offer's and asset
	PaymentFailures    *OfferFamily // labels: offer's and reason

	FacilitatorDuration *prometheus.HistogramVec
	FacilitatorRequests *prometheus.CounterVec
	ConfigReloads       *prometheus.CounterVec
	Settlements         *prometheus.CounterVec
	// SettlementsPending is the number of payments whose settlement
	// outcome is still unknown, kept pending for the buyer's retry.
	SettlementsPending prometheus.GaugeFunc
	pendingCount       atomic.Pointer[func() int]

	// served is the set of served offers (on their chains). A reload
	// builds a new set and swaps it in; requests never wait for that.
	served atomic.Pointer[servedSet]
	// families are the per-offer families sorted by name; offerReg holds
	// them as collectors, for the formats other than the text format.
	families []*OfferFamily
	offerReg *prometheus.Registry
}

type offerChain struct {
	Offer
	Chain string
}

// servedSet is the served offers in the order client_golang sorts their
// series: by label value, in label-name order.
type servedSet struct {
	byKey     map[offerChain]*offerState
	sorted    []*offerState   // by chain, offer_name, offer_namespace
	assetRows []*assetCounter // by asset, then as sorted
}

// offerState is one served offer's counters. A reload keeps the state of
// a kept offer and drops the state of a removed one: its series leave the
// exposition with it, and a request still holding it counts into a state
// nobody reads (it cannot bring a deleted series back).
type offerState struct {
	lv      []string // offer_namespace, offer_name, chain
	labels  string   // chain="…",offer_name="…",offer_namespace="…" (escaped)
	sortKey string

	requests, paymentRequired, verified, failed, charged atomic.Uint64

	lastPaid    atomic.Bool
	lastPayment atomic.Uint64 // float64 bits

	assets   atomic.Pointer[map[string]*assetCounter]
	failures atomic.Pointer[reasonCounters] // created at the first failure
}

type reasonCounters [64]atomic.Uint64

// assetCounter is an offer's revenue in one asset.
type assetCounter struct {
	st     *offerState
	asset  string
	labels string // asset="…",chain=…,offer_namespace="…"
	bits   atomic.Uint64
}

func (a *assetCounter) add(v float64) {
	for {
		old := a.bits.Load()
		if a.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// offerLabelValues is the one place label values are made.
func offerLabelValues(o Offer, chain string, extra ...string) []string {
	return append([]string{o.Namespace, o.Name, chain}, extra...)
}

func newOfferState(o Offer, chain string) *offerState {
	lv := offerLabelValues(o, chain)
	return &offerState{
		lv:      lv,
		labels:  LabelChain + `="` + escapeLabel(chain) + `",` + LabelOfferName + `="` + escapeLabel(o.Name) + `",` + LabelOfferNamespace + `="` + escapeLabel(o.Namespace) + `"`,
		sortKey: chain + "\x00" + o.Name + "\x00" + o.Namespace,
	}
}

// setAssets makes the offer's revenue series those of assets, keeping the
// counters of the assets it already had.
func (st *offerState) setAssets(assets []string) {
	cur := st.assets.Load()
	if cur != nil && len(*cur) == len(assets) {
		same := true
		for _, a := range assets {
			_, ok := (*cur)[a]
			same = same && ok
		}
		if same {
			return
		}
	}
	next := make(map[string]*assetCounter, len(assets))
	for _, a := range assets {
		if cur != nil && (*cur)[a] != nil {
			next[a] = (*cur)[a]
			continue
		}
		next[a] = &assetCounter{st: st, asset: a, labels: LabelAsset + `="` + escapeLabel(a) + `",` + st.labels}
	}
	st.assets.Store(&next)
}

var labelEscaper = strings.NewReplacer("\\", `\\`, "\n", `\n`, "\"", `\"`)

// escapeLabel escapes a label value for the text format.
func escapeLabel(v string) string {
	if !strings.ContainsAny(v, "\\\n\"") {
		return v
	}
	return labelEscaper.Replace(v)
}

// NewMetrics creates the collectors and registers the families other than
// the per-offer ones on reg (nil: not registered, for tests that read them
// directly). The Server writes the per-offer families at /metrics beside
// the families of its Options.Gatherer.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	counter := func(name, help string, labels []string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	m := &Metrics{
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
			"unknown (no answer within the settle deadline: the answer was kept pending; alert on it), "+
			"settled_late (a pending payment later learned to have settled; one that did not is counted as refused).", []string{LabelResult}),
	}
	m.SettlementsPending = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: MetricSettlementsPending,
		Help: "Payments whose settlement outcome is still unknown: their answers are kept for the buyer's retry."},
		func() float64 {
			if f := m.pendingCount.Load(); f != nil {
				return float64((*f)())
			}
			return 0
		})
	count := func(get func(*offerState) *atomic.Uint64) func(*offerState) (float64, bool) {
		return func(st *offerState) (float64, bool) { return float64(get(st).Load()), true }
	}
	m.Requests = m.family(MetricRequests, "Requests to a priced route.", prometheus.CounterValue, "",
		count(func(st *offerState) *atomic.Uint64 { return &st.requests }))
	m.PaymentRequired = m.family(MetricPaymentRequired, "Unpaid requests answered with a 402 challenge.", prometheus.CounterValue, "",
		count(func(st *offerState) *atomic.Uint64 { return &st.paymentRequired }))
	m.PaymentVerified = m.family(MetricPaymentVerified, "Payments the facilitator verified as valid.", prometheus.CounterValue, "",
		count(func(st *offerState) *atomic.Uint64 { return &st.verified }))
	m.PaymentFailed = m.family(MetricPaymentFailed, "Payments refused: malformed, not matching, invalid, replayed, or not settled.", prometheus.CounterValue, "",
		count(func(st *offerState) *atomic.Uint64 { return &st.failed }))
	m.Charged = m.family(MetricCharged, "Requests whose payment was settled on-chain (the buyer was charged).", prometheus.CounterValue, "",
		count(func(st *offerState) *atomic.Uint64 { return &st.charged }))
	m.LastPaymentSuccess = m.family(MetricLastPaymentSuccess, "Unix time of the last settled payment.", prometheus.GaugeValue, "",
		func(st *offerState) (float64, bool) {
			return math.Float64frombits(st.lastPayment.Load()), st.lastPaid.Load()
		})
	m.ChargedAtomicUnits = m.family(MetricChargedAtomicUnits,
		"Settled revenue in atomic units of the asset (token address); exact while the total stays below 2^53.",
		prometheus.CounterValue, LabelAsset, nil)
	m.PaymentFailures = m.family(MetricPaymentFailures, "Refused payments by reason (a bounded set; unknown reasons are \"other\").",
		prometheus.CounterValue, LabelReason, nil)
	m.families = []*OfferFamily{m.Requests, m.PaymentRequired, m.PaymentVerified, m.PaymentFailed, m.Charged,
		m.LastPaymentSuccess, m.ChargedAtomicUnits, m.PaymentFailures}
	sort.Slice(m.families, func(i, j int) bool { return m.families[i].name < m.families[j].name })
	m.offerReg = prometheus.NewRegistry()
	for _, f := range m.families {
		m.offerReg.MustRegister(f)
	}
	m.served.Store(&servedSet{byKey: map[offerChain]*offerState{}})
	if reg != nil {
		for _, c := range []prometheus.Collector{m.FacilitatorDuration, m.FacilitatorRequests, m.ConfigReloads, m.Settlements, m.SettlementsPending} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	// Make both results visible from the start.
	m.ConfigReloads.WithLabelValues(reloadResultSuccess)
	m.ConfigReloads.WithLabelValues(reloadResultFailure)
	for _, r := range []string{SettleResultSettled, SettleResultSettledAfterRetry, SettleResultRefused, SettleResultUnknown, SettleResultSettledLate} {
		m.Settlements.WithLabelValues(r)
	}
	return m, nil
}

// serve makes the per-offer series match the offers of a new config: an
// offer no longer served (or no longer on that chain) leaves with all its
// series, an asset it no longer charges in with its revenue series; new
// offers start at zero (see docs/verifier.md, "Which series exist": the
// recording rules take increase() of the five per-offer counters and the
// revenue, which cannot count the step from no series to the first value);
// kept offers keep their values. The cost is a map and a sort of the
// served offers, and no request waits on it.
func (m *Metrics) serve(offers []servedOffer) {
	old := m.served.Load()
	next := &servedSet{byKey: make(map[offerChain]*offerState, len(offers)), sorted: make([]*offerState, 0, len(offers))}
	rows := 0
	for _, o := range offers {
		key := offerChain{o.Offer, o.Chain}
		st := old.byKey[key]
		if st == nil {
			st = newOfferState(o.Offer, o.Chain)
		}
		st.setAssets(o.Assets)
		rows += len(o.Assets)
		next.byKey[key] = st
		next.sorted = append(next.sorted, st)
	}
	slices.SortFunc(next.sorted, func(a, b *offerState) int { return strings.Compare(a.sortKey, b.sortKey) })
	next.assetRows = make([]*assetCounter, 0, rows)
	for _, st := range next.sorted {
		for _, a := range *st.assets.Load() {
			next.assetRows = append(next.assetRows, a)
		}
	}
	slices.SortStableFunc(next.assetRows, func(a, b *assetCounter) int {
		if c := strings.Compare(a.asset, b.asset); c != 0 {
			return c
		}
		return strings.Compare(a.st.sortKey, b.st.sortKey)
	})
	m.served.Store(next)
}

// with runs f on the state of the route's offer when it is served.
func (m *Metrics) with(r *Route, f func(st *offerState)) {
	if m == nil || r == nil {
		return
	}
	if st := m.served.Load().byKey[offerChain{r.Offer, r.Chain.CAIP2}]; st != nil {
		f(st)
	}
}

func (m *Metrics) request(r *Route) {
	m.with(r, func(st *offerState) { st.requests.Add(1) })
}

func (m *Metrics) paymentRequired(r *Route) {
	m.with(r, func(st *offerState) { st.paymentRequired.Add(1) })
}

func (m *Metrics) verified(r *Route) {
	m.with(r, func(st *offerState) { st.verified.Add(1) })
}

func (m *Metrics) failed(r *Route, reason string) {
	m.with(r, func(st *offerState) {
		st.failed.Add(1)
		rc := st.failures.Load()
		if rc == nil {
			st.failures.CompareAndSwap(nil, new(reasonCounters))
			rc = st.failures.Load()
		}
		rc[reasonIndex[reasonLabel(reason)]].Add(1)
	})
}

func (m *Metrics) charged(r *Route, amount *big.Int, now time.Time) {
	m.with(r, func(st *offerState) {
		st.charged.Add(1)
		if a := (*st.assets.Load())[r.asset()]; a != nil {
			a.add(atomicFloat(amount))
		}
		st.lastPayment.Store(math.Float64bits(float64(now.UnixNano()) / 1e9))
		st.lastPaid.Store(true)
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

// countPending makes SettlementsPending read f.
func (m *Metrics) countPending(f func() int) {
	if m != nil {
		m.pendingCount.Store(&f)
	}
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
