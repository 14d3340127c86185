package facilitator

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/obolstack/obol/internal/x402"
)

// Result label values of the verify and settle counters.
const (
	ResultValid   = "valid"   // verify: the payment is good
	ResultInvalid = "invalid" // verify: a payment problem (HTTP 200 or 400)
	ResultSuccess = "success" // settle: the transfer is on chain
	ResultFailure = "failure" // settle: a payment problem (HTTP 200 or 400)
	ResultError   = "error"   // verify or settle: the facilitator or its RPC failed (HTTP 500)
)

// Metrics are the facilitator's collectors. Label values are bounded: result
// is one of the Result constants, reason one of the x402 reason codes (any
// other value is counted as "other"), op one of verify/settle/supported and
// method one of the JSON-RPC methods the server calls.
type Metrics struct {
	Verify          *prometheus.CounterVec
	Settle          *prometheus.CounterVec
	RequestDuration *prometheus.HistogramVec
	RPCDuration     *prometheus.HistogramVec
}

// NewMetrics builds the collectors and registers them on reg (nil: not
// registered anywhere, still usable).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		Verify: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "obol_facilitator_verify_total",
			Help: "Verify requests answered, by result (valid, invalid, error) and reason code.",
		}, []string{"result", "reason"}),
		Settle: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "obol_facilitator_settle_total",
			Help: "Settle requests answered, by result (success, failure, error) and reason code.",
		}, []string{"result", "reason"}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "obol_facilitator_request_duration_seconds",
			Help:    "Time to answer a facilitator HTTP request, by operation (verify, settle, supported).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"op"}),
		RPCDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "obol_facilitator_rpc_duration_seconds",
			Help:    "Duration of JSON-RPC calls to the chain's node, by method.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.Verify, m.Settle, m.RequestDuration, m.RPCDuration} {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if errors.As(err, &are) {
					return nil, fmt.Errorf("register facilitator metrics: %w (one registry per facilitator server)", err)
				}
				return nil, fmt.Errorf("register facilitator metrics: %w", err)
			}
		}
	}
	return m, nil
}

// knownReasons are the reason label values: the x402 codes.
var knownReasons = func() map[string]bool {
	m := map[string]bool{}
	for _, rs := range [][]string{x402.SpecReasons, x402.ExtensionReasons} {
		for _, r := range rs {
			m[r] = true
		}
	}
	return m
}()

// reasonLabel bounds the reason label to the known codes.
func reasonLabel(reason string) string {
	if reason == "" || knownReasons[reason] {
		return reason
	}
	return "other"
}

// rpcMethods are the JSON-RPC methods the server calls; anything else is
// labelled "other".
var rpcMethods = map[string]bool{
	"eth_chainId": true, "eth_call": true, "eth_getCode": true, "eth_estimateGas": true,
	"eth_maxPriorityFeePerGas": true, "eth_getBlockByNumber": true, "eth_getTransactionCount": true,
	"eth_sendRawTransaction": true, "eth_getTransactionReceipt": true, "eth_getTransactionByHash": true,
	"eth_getLogs": true,
}

func methodLabel(m string) string {
	if rpcMethods[m] {
		return m
	}
	return "other"
}

func (m *Metrics) observeVerify(result, reason string) {
	m.Verify.WithLabelValues(result, reasonLabel(reason)).Inc()
}

func (m *Metrics) observeSettle(result, reason string) {
	m.Settle.WithLabelValues(result, reasonLabel(reason)).Inc()
}
