// Package facilitator is an x402 facilitator for the "exact" scheme on EVM
// chains (EIP-3009 transferWithAuthorization): a server that verifies and
// settles payments against any EVM JSON-RPC endpoint from a fee-payer key,
// and a client for any facilitator that speaks the x402 HTTP API.
package facilitator

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/x402"
)

// Defaults of Config.
const (
	DefaultRPCTimeout     = 10 * time.Second
	DefaultReceiptTimeout = 45 * time.Second
	DefaultReceiptPoll    = 100 * time.Millisecond
	DefaultLogLookback    = 10000
	// MinValidity is how long an authorization must still be valid when it
	// is verified (validBefore ≥ now + MinValidity), so that it cannot
	// expire between verification and settlement.
	MinValidity = 6 * time.Second
	// MaxBodyBytes bounds a request body.
	MaxBodyBytes = 64 << 10
)

// Config configures a Server.
type Config struct {
	// RPCURL is the chain's JSON-RPC endpoint (http or https).
	RPCURL string
	// Chain is the chain this facilitator settles on: a name, alias or
	// CAIP-2 id known to Registry. The node's eth_chainId must match.
	Chain string
	// Registry resolves chains and tokens (default evm.Default()). Only
	// tokens registered on Chain are settled.
	Registry *evm.Registry
	// Key is the fee payer: it signs and pays for the settlement
	// transactions.
	Key *ecdsa.PrivateKey
	// Registerer receives the metrics (nil: not registered).
	Registerer prometheus.Registerer
	// Gatherer, when set, is served on /metrics. When nil and Registerer is
	// also a Gatherer (a *prometheus.Registry), that is served.
	Gatherer prometheus.Gatherer
	// Now is the clock (default time.Now).
	Now func() time.Time
	// RPCTimeout bounds each JSON-RPC call (default 10s).
	RPCTimeout time.Duration
	// ReceiptTimeout bounds the wait for a settlement's receipt (default 45s).
	ReceiptTimeout time.Duration
	// ReceiptPoll is the longest wait between receipt polls (default
	// 100ms); the first polls follow each other after 5, 10, 20 ms...
	ReceiptPoll time.Duration
	// LogLookback is how many blocks back a settle looks for the
	// transaction that already used an authorization (default 10000).
	LogLookback uint64
	// Logger receives operational logs (default: discarded).
	Logger *slog.Logger
}

// Server is a facilitator bound to one chain and one fee-payer key.
type Server struct {
	cfg      Config
	reg      *evm.Registry
	chain    evm.Chain
	feePayer common.Address
	node     *node
	metrics  *Metrics
	log      *slog.Logger
	now      func() time.Time
	gatherer prometheus.Gatherer

	base   context.Context
	cancel context.CancelFunc

	sender  *sender
	ledger  *ledger
	codeMu  sync.Mutex
	hasCode map[common.Address]bool

	closeOnce sync.Once
}

// NewServer checks the configuration, connects to the RPC endpoint and
// checks that it serves the configured chain.
func NewServer(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.RPCURL == "" {
		return nil, errors.New("facilitator: no RPC URL: give the chain's JSON-RPC endpoint (--rpc)")
	}
	if cfg.Key == nil {
		return nil, errors.New("facilitator: no fee-payer key: give the key that pays for settlement transactions (--key-file)")
	}
	if cfg.Registry == nil {
		cfg.Registry = evm.Default()
	}
	chain, err := cfg.Registry.Chain(cfg.Chain)
	if err != nil {
		return nil, fmt.Errorf("facilitator: %w", err)
	}
	toks, err := cfg.Registry.Tokens(chain.CAIP2)
	if err != nil {
		return nil, fmt.Errorf("facilitator: %w", err)
	}
	if len(toks) == 0 {
		return nil, fmt.Errorf("facilitator: no token is registered on %s (%s): register the token to settle (obol facilitator serve --asset ...)", chain.Name, chain.CAIP2)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RPCTimeout <= 0 {
		cfg.RPCTimeout = DefaultRPCTimeout
	}
	if cfg.ReceiptTimeout <= 0 {
		cfg.ReceiptTimeout = DefaultReceiptTimeout
	}
	if cfg.ReceiptPoll <= 0 {
		cfg.ReceiptPoll = DefaultReceiptPoll
	}
	if cfg.LogLookback == 0 {
		cfg.LogLookback = DefaultLogLookback
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	m, err := NewMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	g := cfg.Gatherer
	if g == nil {
		if rg, ok := cfg.Registerer.(prometheus.Gatherer); ok {
			g = rg
		}
	}
	n, err := dialNode(ctx, cfg.RPCURL, cfg.RPCTimeout, m)
	if err != nil {
		return nil, fmt.Errorf("facilitator: %w", err)
	}
	id, err := n.chainID(ctx)
	if err != nil {
		n.close()
		return nil, fmt.Errorf("facilitator: cannot reach the chain's RPC endpoint: %w (is the node running and the URL right?)", err)
	}
	if id.Cmp(chain.ChainIDBig()) != 0 {
		n.close()
		return nil, fmt.Errorf("facilitator: the RPC endpoint %s serves chain id %s, but the configured chain %s is %s (id %d): point --rpc at a %s node or fix --chain",
			n.safeURL, id, chain.Name, chain.CAIP2, chain.ChainID, chain.Name)
	}
	base, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg: cfg, reg: cfg.Registry, chain: chain, node: n, metrics: m, log: cfg.Logger, now: cfg.Now,
		gatherer: g, base: base, cancel: cancel, feePayer: crypto.PubkeyToAddress(cfg.Key.PublicKey),
		ledger: newLedger(), hasCode: map[common.Address]bool{},
	}
	s.sender = &sender{node: n, key: cfg.Key, from: s.feePayer, chainID: chain.ChainIDBig()}
	s.log.Info("facilitator ready", "chain", chain.CAIP2, "name", chain.Name, "rpc", n.safeURL, "feePayer", s.feePayer.Hex())
	return s, nil
}

// FeePayer is the address that sends and pays for settlements.
func (s *Server) FeePayer() common.Address { return s.feePayer }

// Chain is the chain the server settles on.
func (s *Server) Chain() evm.Chain { return s.chain }

// Metrics returns the server's collectors.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Close aborts in-flight RPC calls and closes the connection to the node.
// Call it after the HTTP server has stopped handing requests to Handler.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.cancel()
		s.node.close()
	})
}

// Handler serves POST /verify, POST /settle, GET /supported, GET /healthz
// and, when a gatherer is configured, GET /metrics.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /verify", s.handleVerify)
	mux.HandleFunc("POST /settle", s.handleSettle)
	mux.HandleFunc("GET /supported", s.handleSupported)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	if s.gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{}))
	}
	return mux
}

// Supported is the answer of GET /supported: exact on this chain for v1
// (network name) and v2 (CAIP-2), with the fee payer as signer.
func (s *Server) Supported() x402.SupportedResponse {
	return x402.SupportedResponse{
		Kinds: []x402.SupportedKind{
			{X402Version: x402.Version1, Scheme: x402.SchemeExact, Network: s.chain.Name},
			{X402Version: x402.Version2, Scheme: x402.SchemeExact, Network: s.chain.CAIP2},
		},
		Extensions: []string{},
		Signers:    map[string][]string{"eip155:*": {s.feePayer.Hex()}},
	}
}

func (s *Server) handleSupported(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { s.metrics.RequestDuration.WithLabelValues("supported").Observe(time.Since(start).Seconds()) }()
	writeJSON(w, http.StatusOK, s.Supported())
}

// readRequest decodes a verify/settle body. On failure it returns the
// problem as a 400 outcome.
func readRequest(w http.ResponseWriter, r *http.Request) (x402.VerifyRequest, *outcome) {
	var vr x402.VerifyRequest
	body := http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	dec := json.NewDecoder(body)
	if err := dec.Decode(&vr); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return vr, badRequest(x402.ReasonInvalidPayload, fmt.Sprintf("request body larger than %d bytes", MaxBodyBytes))
		default:
			var te *json.UnmarshalTypeError
			var se *json.SyntaxError
			switch {
			case errors.As(err, &te) && te.Field != "":
				return vr, badRequest(reasonForField(te.Field), fmt.Sprintf("malformed request body: field %s: %s", te.Field, x402.TypeErrorText(te)))
			case errors.As(err, &te):
				return vr, badRequest(x402.ReasonInvalidPayload, "malformed request body: want a JSON object {x402Version, paymentPayload, paymentRequirements}, got "+strings.TrimPrefix(x402.TypeErrorText(te), "want an object, got "))
			case errors.As(err, &se):
				return vr, badRequest(x402.ReasonInvalidPayload, fmt.Sprintf("malformed request body: not valid JSON at byte %d: %v", se.Offset, se))
			}
			return vr, badRequest(x402.ReasonInvalidPayload, "malformed request body: want a JSON object {x402Version, paymentPayload, paymentRequirements}: "+err.Error())
		}
	}
	return vr, nil
}

func (s *Server) handleVerify(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { s.metrics.RequestDuration.WithLabelValues("verify").Observe(time.Since(start).Seconds()) }()
	vr, bad := readRequest(w, r)
	var o *outcome
	if bad != nil {
		o = bad
	} else {
		ctx, cancel := s.requestContext(r.Context())
		o = s.verify(ctx, vr)
		cancel()
	}
	resp := x402.VerifyResponse{IsValid: o.reason == "", InvalidReason: o.reason, InvalidMessage: o.message, Payer: o.payer}
	result := ResultValid
	switch {
	case o.status >= 500:
		result = ResultError
	case o.reason != "":
		result = ResultInvalid
	}
	s.metrics.observeVerify(result, o.reason)
	if o.status >= 500 {
		s.log.Warn("verify failed", "reason", o.reason, "message", o.message, "payer", o.payer)
	} else {
		s.log.Debug("verify", "valid", resp.IsValid, "reason", o.reason, "payer", o.payer)
	}
	writeJSON(w, o.statusCode(), resp)
}

func (s *Server) handleSettle(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { s.metrics.RequestDuration.WithLabelValues("settle").Observe(time.Since(start).Seconds()) }()
	vr, bad := readRequest(w, r)
	var o *outcome
	if bad != nil {
		o = bad
	} else {
		// A settlement is not abandoned when the caller hangs up: once a
		// transaction is sent its outcome must be recorded. It is bounded
		// by the RPC and receipt timeouts and by Close.
		o = s.settle(s.base, vr, r.Header.Get(x402.HeaderIdempotencyKey))
	}
	network := o.network
	if network == "" {
		network = networkAsSent(vr, s.chain.CAIP2)
	}
	resp := x402.SettleResponse{Success: o.reason == "", ErrorReason: o.reason, ErrorMessage: o.message,
		Payer: o.payer, Transaction: o.tx, Network: network}
	if !resp.Success {
		resp.Transaction = ""
	}
	result := ResultSuccess
	switch {
	case o.status >= 500:
		result = ResultError
	case o.reason != "":
		result = ResultFailure
	}
	s.metrics.observeSettle(result, o.reason)
	switch {
	case resp.Success:
		s.log.Info("settled", "tx", resp.Transaction, "payer", o.payer, "network", network)
	case o.status >= 500:
		s.log.Warn("settle failed", "reason", o.reason, "message", o.message, "payer", o.payer)
	default:
		s.log.Info("settle refused", "reason", o.reason, "message", o.message, "payer", o.payer)
	}
	writeJSON(w, o.statusCode(), resp)
}

// requestContext ends when the request's context or the server ends.
func (s *Server) requestContext(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(parent)
	stop := context.AfterFunc(s.base, cancel)
	return ctx, func() { stop(); cancel() }
}

// networkAsSent returns paymentRequirements.network as the caller sent it,
// or def when it cannot be read.
func networkAsSent(vr x402.VerifyRequest, def string) string {
	var probe struct {
		Network string `json:"network"`
	}
	if len(vr.PaymentRequirements) > 0 && json.Unmarshal(vr.PaymentRequirements, &probe) == nil && probe.Network != "" {
		return probe.Network
	}
	return def
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"error":"encode answer"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
