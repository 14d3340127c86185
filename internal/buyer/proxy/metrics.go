package proxy

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the buyer's series, names and labels as dashboards expect.
type Metrics struct {
	requests   *prometheus.CounterVec
	attempts   *prometheus.CounterVec
	success    *prometheus.CounterVec
	failure    *prometheus.CounterVec
	remaining  *prometheus.GaugeVec
	spent      *prometheus.GaugeVec
	mappings   *prometheus.GaugeVec
	refusals   *prometheus.CounterVec
	vectors    []prometheus.Collector
	deletables []interface {
		DeletePartialMatch(prometheus.Labels) int
	}
}

var labelNames = []string{"upstream", "remote_model", "chain"}

// NewMetrics registers the buyer series on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	counter := func(name, help string, extra ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "obol_x402_buyer_" + name, Help: help}, append(append([]string{}, labelNames...), extra...))
	}
	gauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "obol_x402_buyer_" + name, Help: help}, labelNames)
	}
	m := &Metrics{
		requests:  counter("requests_total", "Requests proxied to a paid upstream."),
		attempts:  counter("payment_attempts_total", "Paid retries sent with a pre-signed authorization."),
		success:   counter("payment_success_total", "Payments the seller settled."),
		failure:   counter("payment_failure_total", "Payments that were refused or failed to settle."),
		remaining: gauge("auth_remaining", "Pre-signed authorizations not yet used."),
		spent:     gauge("auth_spent", "Authorizations used so far."),
		mappings:  gauge("active_model_mappings", "Model names routed to the upstream."),
		refusals:  counter("payment_refused_total", "Calls the proxy refused to pay, by reason (no matching authorization, daily cap, pool empty).", "reason"),
	}
	m.vectors = []prometheus.Collector{m.requests, m.attempts, m.success, m.failure, m.remaining, m.spent, m.mappings, m.refusals}
	m.deletables = []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{m.requests, m.attempts, m.success, m.failure, m.remaining, m.spent, m.mappings, m.refusals}
	if reg != nil {
		reg.MustRegister(m.vectors...)
	}
	return m
}

// labels is the one place label values come from.
func labels(u *UpstreamConfig) prometheus.Labels {
	return prometheus.Labels{"upstream": u.Name, "remote_model": u.RemoteModel, "chain": u.chain}
}

func withReason(l prometheus.Labels, reason string) prometheus.Labels {
	out := prometheus.Labels{"reason": reason}
	for k, v := range l {
		out[k] = v
	}
	return out
}

// prune deletes every series carrying the label set l.
func (m *Metrics) prune(l prometheus.Labels) {
	for _, v := range m.deletables {
		v.DeletePartialMatch(l)
	}
}
