package proxy

import (
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the buyer's series, names and labels as dashboards expect.
//
// Every update goes through the served set: a request still holding the
// configuration of before a reload cannot re-create the series that reload
// deleted (the verifier's pattern).
type Metrics struct {
	requests  *prometheus.CounterVec
	attempts  *prometheus.CounterVec
	success   *prometheus.CounterVec
	failure   *prometheus.CounterVec
	unsettled *prometheus.CounterVec
	confirm   *prometheus.CounterVec
	remaining *prometheus.GaugeVec
	spent     *prometheus.GaugeVec
	mappings  *prometheus.GaugeVec
	refusals  *prometheus.CounterVec
	vectors   []interface {
		prometheus.Collector
		DeletePartialMatch(prometheus.Labels) int
	}

	mu     sync.RWMutex
	served map[string]prometheus.Labels
}

var labelNames = []string{"upstream", "remote_model", "chain"}

// NewMetrics builds the buyer series and registers them on reg (nil: not
// registered). A registration conflict is returned, not panicked on.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	counter := func(name, help string, extra ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "obol_x402_buyer_" + name, Help: help}, append(append([]string{}, labelNames...), extra...))
	}
	gauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "obol_x402_buyer_" + name, Help: help}, labelNames)
	}
	m := &Metrics{
		requests: counter("requests_total", "Requests proxied to a paid upstream."),
		attempts: counter("payment_attempts_total", "Paid retries sent with a pre-signed authorization."),
		success:  counter("payment_success_total", "Payments the seller settled."),
		failure:  counter("payment_failure_total", "Payments that were refused or failed to settle."),
		// A paid 2xx with no settlement header: the authorization is spent
		// as far as the buyer knows, but no settlement was seen. Non-zero
		// means the seller settles out of band or is misconfigured: alert.
		unsettled: counter("payment_unsettled_confirmations_total", "Paid answers with status below 400 that carried no settlement (payment-response) header: the authorization is consumed without an observed settlement."),
		confirm:   counter("confirm_spend_failure_total", "Payment outcomes the proxy could not record in its state journal (the authorization stays taken and is never offered again)."),
		remaining: gauge("auth_remaining", "Pre-signed authorizations not yet used."),
		spent:     gauge("auth_spent", "Authorizations used so far."),
		mappings:  gauge("active_model_mappings", "Model names routed to the upstream."),
		refusals:  counter("payment_refused_total", "Calls the proxy refused to pay, by reason (no matching authorization, daily cap, pool empty).", "reason"),
		served:    map[string]prometheus.Labels{},
	}
	m.vectors = []interface {
		prometheus.Collector
		DeletePartialMatch(prometheus.Labels) int
	}{m.requests, m.attempts, m.success, m.failure, m.unsettled, m.confirm, m.remaining, m.spent, m.mappings, m.refusals}
	if reg != nil {
		for _, v := range m.vectors {
			if err := reg.Register(v); err != nil {
				return nil, fmt.Errorf("register buyer metrics: %w", err)
			}
		}
	}
	return m, nil
}

// labels is the one place label values come from.
func labels(u *UpstreamConfig) prometheus.Labels {
	return prometheus.Labels{"upstream": u.Name, "remote_model": u.RemoteModel, "chain": u.chain}
}

func labelKey(l prometheus.Labels) string {
	return l["upstream"] + "\x00" + l["remote_model"] + "\x00" + l["chain"]
}

func withReason(l prometheus.Labels, reason string) prometheus.Labels {
	out := prometheus.Labels{"reason": reason}
	for k, v := range l {
		out[k] = v
	}
	return out
}

// serve makes sets the label sets series may exist for, and deletes the
// series of every other set.
func (m *Metrics) serve(sets []prometheus.Labels) {
	next := map[string]prometheus.Labels{}
	for _, l := range sets {
		next[labelKey(l)] = l
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, l := range m.served {
		if _, ok := next[k]; !ok {
			for _, v := range m.vectors {
				v.DeletePartialMatch(l)
			}
		}
	}
	m.served = next
}

// update runs fn when l is served, excluding a concurrent serve.
func (m *Metrics) update(l prometheus.Labels, fn func()) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if _, ok := m.served[labelKey(l)]; ok {
		fn()
	}
}

func (m *Metrics) inc(v *prometheus.CounterVec, l prometheus.Labels) {
	m.update(l, func() { v.With(l).Inc() })
}

func (m *Metrics) refused(l prometheus.Labels, reason string) {
	m.update(l, func() { m.refusals.With(withReason(l, reason)).Inc() })
}

func (m *Metrics) set(v *prometheus.GaugeVec, l prometheus.Labels, x float64) {
	m.update(l, func() { v.With(l).Set(x) })
}

func (m *Metrics) add(v *prometheus.GaugeVec, l prometheus.Labels, x float64) {
	m.update(l, func() { v.With(l).Add(x) })
}
