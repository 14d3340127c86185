// Package verifier is the seller's payment gate: it answers unpaid requests
// to priced routes with an x402 402 challenge, has a facilitator verify and
// settle payments, forwards paid requests upstream (proxy mode) or answers
// Traefik's ForwardAuth, and exposes the verifier's Prometheus series.
//
// Routes come from a Config. A route source (the pricing file, or
// ServiceOffers in a cluster) builds one and hands it to
// (*Server).ApplyConfig, which swaps it in atomically and prunes the metric
// series of offers no longer served.
package verifier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/x402"
)

// Facilitator verifies and settles payments (internal/facilitator's client
// satisfies it). Errors mean the facilitator could not answer: the gate
// answers 502 or 503 and never calls the upstream.
type Facilitator interface {
	Verify(ctx context.Context, req x402.VerifyRequest) (*x402.VerifyResponse, error)
	Settle(ctx context.Context, req x402.SettleRequest) (*x402.SettleResponse, error)
}

// Operational endpoints, reserved in every mode.
const (
	PathHealthz = "/healthz"
	PathReadyz  = "/readyz"
	PathMetrics = "/metrics"
	PathVerify  = "/verify" // ForwardAuth mode only; in proxy mode it is an ordinary path
)

// DefaultUpstreamTimeout bounds a paid request's wait for its upstream.
const DefaultUpstreamTimeout = 60 * time.Second

// Options configure a Server.
type Options struct {
	// NewFacilitator returns the client for a facilitator URL; it is called
	// when a config with a new facilitatorURL is applied. Required.
	NewFacilitator func(url string) (Facilitator, error)
	// NewFacilitatorEndpoint, when set, is used instead of NewFacilitator
	// and receives the facilitator's headers too (FacilitatorHTTPClient
	// sends them).
	NewFacilitatorEndpoint func(FacilitatorEndpoint) (Facilitator, error)
	// Registry resolves chains and tokens (default evm.Default()).
	Registry *evm.Registry
	// Metrics receives the verifier's series (nil: none are recorded).
	Metrics *Metrics
	// Gatherer, when set, is served at /metrics.
	Gatherer prometheus.Gatherer
	// Logger (default: discard).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Transport carries requests upstream, free and paid (default:
	// NewUpstreamTransport(UpstreamTransport)).
	Transport http.RoundTripper
	// UpstreamTransport tunes the default Transport.
	UpstreamTransport TransportOptions
	// ClassifyFacilitatorError, when set, decides whether a facilitator
	// error is temporary (503) or not (502); the CLI wires the facilitator
	// client's knowledge here. Without it, timeouts and refused connections
	// are 503 and everything else 502.
	ClassifyFacilitatorError func(err error) (temporary bool)
	// UpstreamTimeout bounds the wait for the upstream's whole answer to a
	// paid request that settles after the response (default
	// DefaultUpstreamTimeout); beyond it the buyer gets 504 and is not
	// charged.
	UpstreamTimeout time.Duration
	// ReplayCacheSize bounds the live entries of the replay record
	// (default DefaultReplayCacheSize); when full, new payments are refused
	// rather than a record dropped before its authorization expires.
	ReplayCacheSize int
	// MaxPending bounds the payments kept pending when their settlement
	// outcome is unknown (default DefaultMaxPending); PendingAnswerBytes
	// bounds the buffered answers kept for them (default
	// DefaultPendingAnswerBytes). See pending.go.
	MaxPending         int
	PendingAnswerBytes int
}

// Server is the gate. Its handler serves "/", "/verify", "/healthz",
// "/readyz" and "/metrics".
type Server struct {
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	metrics *Metrics
	guard   *replayGuard
	pending *pendingSet
	state   atomic.Pointer[state]
	applyMu sync.Mutex

	paidProxy   *httputil.ReverseProxy // settle: after-response
	streamProxy *httputil.ReverseProxy // settle: on-headers
	freeProxy   *httputil.ReverseProxy
	metricsH    http.Handler
}

type state struct {
	cfg    *Config
	fac    Facilitator
	routes *routeIndex // cfg.Routes, indexed by literal prefix
}

// match returns the config's first route matching a clean path.
func (st *state) match(clean string) *Route { return st.routes.match(clean) }

// New builds a Server. It is not ready until ApplyConfig succeeds.
func New(opts Options) (*Server, error) {
	if opts.NewFacilitator == nil && opts.NewFacilitatorEndpoint == nil {
		return nil, errors.New("verifier: Options.NewFacilitator is required")
	}
	if opts.Registry == nil {
		opts.Registry = evm.Default()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.UpstreamTimeout <= 0 {
		opts.UpstreamTimeout = DefaultUpstreamTimeout
	}
	if opts.Transport == nil {
		opts.Transport = NewUpstreamTransport(opts.UpstreamTransport)
	}
	s := &Server{opts: opts, log: opts.Logger, now: opts.Now, metrics: opts.Metrics, guard: newReplayGuard(opts.ReplayCacheSize),
		pending: newPendingSet(opts.MaxPending, opts.PendingAnswerBytes)}
	s.metrics.countPending(s.pending.unknown)
	s.paidProxy = &httputil.ReverseProxy{
		Rewrite:        s.rewrite,
		Transport:      &bufferingTransport{base: opts.Transport},
		ModifyResponse: s.modifyPaid,
		ErrorHandler:   s.proxyError,
	}
	// on-headers: modifyPaid settles when the status and headers arrive;
	// the body then streams, flushed at every write.
	s.streamProxy = &httputil.ReverseProxy{
		Rewrite:        s.rewrite,
		Transport:      opts.Transport,
		ModifyResponse: s.modifyPaid,
		ErrorHandler:   s.proxyError,
		FlushInterval:  -1,
	}
	// Free answers stream with ReverseProxy's default flushing: buffered
	// writes, except that text/event-stream answers and answers of unknown
	// length (chunked streams) are flushed at every write.
	s.freeProxy = &httputil.ReverseProxy{
		Rewrite:        s.rewrite,
		Transport:      opts.Transport,
		ModifyResponse: func(res *http.Response) error { exposePaymentHeaders(res.Header); return nil },
		ErrorHandler:   s.proxyError,
	}
	if opts.Gatherer != nil {
		s.metricsH = newMetricsHandler(opts.Gatherer, opts.Metrics)
	}
	return s, nil
}

// ApplyConfig swaps in a new config atomically: requests already running
// finish on the old one. Metric series of offers the new config no longer
// serves (or serves on another chain or asset) are deleted; kept offers keep
// their values. It counts a successful reload.
func (s *Server) ApplyConfig(cfg *Config) error {
	if cfg == nil {
		return errors.New("verifier: nil config")
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	old := s.state.Load()
	var fac Facilitator
	if old != nil && sameEndpoints(old.cfg.Facilitators, cfg.Facilitators) {
		fac = old.fac
	} else {
		f, err := s.newFacilitators(cfg.Facilitators)
		if err != nil {
			s.metrics.reload(false)
			return err
		}
		fac = f
	}
	// Everything is built before the swap; requests keep using the old
	// state until then and never wait for a reload.
	next := &state{cfg: cfg, fac: fac, routes: newRouteIndex(cfg.Routes)}
	if s.metrics != nil {
		s.metrics.serve(cfg.offers())
	}
	s.state.Store(next)
	s.metrics.reload(true)
	s.log.Info("pricing config applied", "source", cfg.Source, "mode", cfg.Mode, "routes", len(cfg.Routes), "facilitators", facilitatorNames(cfg.Facilitators))
	if len(cfg.Routes) <= maxLoggedRoutes {
		for _, line := range cfg.Summary() {
			s.log.Info("route", "route", line)
		}
	} else {
		s.log.Info("routes not listed one by one", "routes", len(cfg.Routes), "limit", maxLoggedRoutes)
	}
	return nil
}

// Close stops asking the facilitator about pending payments (see
// pending.go); their buyers can no longer collect their answers here. It
// returns how many were still unknown.
func (s *Server) Close() int {
	n := s.pending.close()
	if n > 0 {
		s.log.Error("stopping with payments whose settlement outcome is unknown; their answers are lost", "pending", n)
	}
	return n
}

// newFacilitators builds the clients of the configured facilitators.
func (s *Server) newFacilitators(eps []FacilitatorEndpoint) (Facilitator, error) {
	if len(eps) == 0 {
		return nil, errors.New("verifier: no facilitator configured")
	}
	fs := &facilitatorSet{endpoints: eps, metrics: s.metrics, log: s.log,
		unavailable: func(err error) bool { st, _ := s.facilitatorFailure(err); return st == http.StatusServiceUnavailable }}
	names := map[string]bool{}
	for _, e := range eps {
		var f Facilitator
		var err error
		switch {
		case s.opts.NewFacilitatorEndpoint != nil:
			f, err = s.opts.NewFacilitatorEndpoint(e)
		case len(e.Header) > 0:
			err = errHeadersUnsupported
		default:
			f, err = s.opts.NewFacilitator(e.URL)
		}
		if err != nil {
			return nil, fmt.Errorf("facilitator client for %s (%s): %w", e.Name, e.URL, err)
		}
		fs.facs = append(fs.facs, f)
		names[e.Name] = true
	}
	s.metrics.keepFacilitators(names)
	return fs, nil
}

// maxLoggedRoutes bounds the per-route log lines of a reload: a config of
// thousands of offers is summarised, not listed.
const maxLoggedRoutes = 100

// ReportReloadFailure records a config that could not be loaded: the last
// good config stays in force.
func (s *Server) ReportReloadFailure(err error) {
	s.metrics.reload(false)
	if s.Ready() {
		s.log.Error("pricing config not reloaded; keeping the last good config", "err", err)
	} else {
		s.log.Error("pricing config not loaded; not ready", "err", err)
	}
}

// Ready reports whether a valid config is loaded.
func (s *Server) Ready() bool { return s.state.Load() != nil }

// Config returns the config in force (nil before the first ApplyConfig).
func (s *Server) Config() *Config {
	if st := s.state.Load(); st != nil {
		return st.cfg
	}
	return nil
}

// Handler returns the HTTP handler.
func (s *Server) Handler() http.Handler { return s }

// ServeHTTP dispatches the operational endpoints, then the gate.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case PathHealthz:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
		return
	case PathReadyz:
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !s.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("no valid pricing config loaded\n"))
			return
		}
		_, _ = w.Write([]byte("ok\n"))
		return
	case PathMetrics:
		if s.metricsH != nil {
			s.metricsH.ServeHTTP(w, r)
			return
		}
	}
	st := s.state.Load()
	if st == nil {
		writeJSONError(w, r, http.StatusServiceUnavailable, errorBody{Error: "the payment gate has no valid pricing config yet; see its logs"})
		return
	}
	if s.serveDiscovery(w, r, st) {
		return
	}
	if st.cfg.Mode == ModeForwardAuth {
		if r.URL.Path == PathVerify {
			s.serveForwardAuth(w, r, st)
			return
		}
		writeJSONError(w, r, http.StatusNotFound, errorBody{Error: "this gate runs in forwardAuth mode: point Traefik's ForwardAuth at " + PathVerify})
		return
	}
	s.serveProxy(w, r, st)
}

func facilitatorNames(eps []FacilitatorEndpoint) []string {
	out := make([]string, len(eps))
	for i, e := range eps {
		out[i] = e.Name + "=" + e.URL
	}
	return out
}
