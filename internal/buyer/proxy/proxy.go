package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/obolstack/obol/internal/buyer"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/x402"
)

// minValidity is how long an authorization must stay valid to be sent: the
// facilitator requires validBefore ≥ now + 6 s.
const minValidity = 6 * time.Second

// validAfterMargin is how long after its validAfter an authorization is
// first sent: the token refuses it in a block whose timestamp is not past
// validAfter, and a block's timestamp may trail the proxy's clock.
const validAfterMargin = 5 * time.Second

// Options configure a Server.
type Options struct {
	// ConfigDir holds the upstream files, unless Load is set.
	ConfigDir string
	// Load, when set, reads the configuration instead of ConfigDir (the
	// buyer's ConfigMap through the API: see ConfigMapSource).
	Load       func() (*Config, error)
	State      *State
	Registry   *evm.Registry
	Registerer prometheus.Registerer
	HTTPClient *http.Client
	Now        func() time.Time
	Logger     *slog.Logger
	// MaxBodyBytes bounds request and response bodies (default 10 MiB).
	MaxBodyBytes int64
	// StripHeaders are more caller headers never forwarded to a seller,
	// besides hop-by-hop and credential headers (Authorization, Cookie,
	// Proxy-Authorization). An upstream's forwardHeaders can allow them.
	StripHeaders []string
	// MaxPendingWait bounds how long a seller's "settlement pending"
	// answer is waited out with the same authorization (0: the engine's
	// buyer.DefaultMaxPendingWait). The caller's request context ends the
	// wait sooner.
	MaxPendingWait time.Duration
}

// Server is the buyer proxy.
//
// The configuration is an immutable snapshot swapped atomically on reload:
// a request reads one snapshot from start to end. Each upstream has its own
// pool lock (kept across reloads), so one seller's payments do not wait
// for another's.
type Server struct {
	opts    Options
	metrics *Metrics
	mux     *http.ServeMux

	snap     atomic.Pointer[snapshot]
	reloadMu sync.Mutex       // one reload at a time
	pools    map[string]*pool // by upstream name; guarded by reloadMu
}

type snapshot struct {
	upstreams map[string]*upstream
	byModel   map[string]*upstream
}

// upstream is one upstream of one snapshot; never changed once built.
type upstream struct {
	cfg    *UpstreamConfig
	labels prometheus.Labels
	pool   *pool
}

// pool serialises taking authorizations of one upstream and the updates of
// its gauges.
type pool struct {
	mu   sync.Mutex
	cfg  *UpstreamConfig // the auth list next refers to
	next int             // auths before next are used or expired
}

// New builds a Server and loads the config directory.
func New(opts Options) (*Server, error) {
	if opts.Registry == nil {
		opts.Registry = evm.Default()
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 120 * time.Second}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.MaxBodyBytes == 0 {
		opts.MaxBodyBytes = 10 << 20
	}
	if opts.State == nil {
		st, err := LoadState("")
		if err != nil {
			return nil, err
		}
		opts.State = st
	}
	m, err := NewMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: opts, metrics: m, pools: map[string]*pool{}}
	s.snap.Store(&snapshot{upstreams: map[string]*upstream{}, byModel: map[string]*upstream{}})
	if err := s.Reload(); err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/chat/completions", s.handleModel)
	mux.HandleFunc("POST /v1/responses", s.handleModel)
	mux.HandleFunc("/upstream/{name}/{rest...}", s.handleUpstream)
	mux.HandleFunc("GET /status", s.handleStatus)
	mux.HandleFunc("POST /admin/reload", s.handleReload)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	s.mux = mux
	return s, nil
}

// Handler serves the proxy's endpoints (not /metrics; the caller mounts it).
func (s *Server) Handler() http.Handler { return s.mux }

// Reload re-reads the configuration (Options.Load, else the config
// directory). A broken configuration keeps the last good one and returns
// the error.
func (s *Server) Reload() error {
	var cfg *Config
	var err error
	if s.opts.Load != nil {
		cfg, err = s.opts.Load()
	} else {
		cfg, err = LoadDir(s.opts.ConfigDir, s.opts.Registry)
	}
	if err != nil {
		return err
	}
	s.Apply(cfg)
	return nil
}

// Apply makes cfg the configuration. Pools of upstreams that stay keep
// their lock; series of upstreams that are gone (or changed labels) are
// deleted.
func (s *Server) Apply(cfg *Config) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	next := &snapshot{upstreams: map[string]*upstream{}, byModel: map[string]*upstream{}}
	pools := map[string]*pool{}
	var sets []prometheus.Labels
	for _, c := range cfg.Upstreams {
		p := s.pools[c.Name]
		if p == nil {
			p = &pool{}
		}
		pools[c.Name] = p
		u := &upstream{cfg: c, labels: labels(c), pool: p}
		next.upstreams[c.Name] = u
		for _, m := range c.Models {
			next.byModel[m] = u
		}
		sets = append(sets, u.labels)
	}
	s.pools = pools
	s.metrics.serve(sets)
	s.snap.Store(next)
	for _, u := range next.upstreams {
		s.refreshGauges(u)
	}
}

// refreshGauges recomputes an upstream's gauges under its pool lock, so a
// payment's own update cannot interleave.
func (s *Server) refreshGauges(u *upstream) {
	u.pool.mu.Lock()
	defer u.pool.mu.Unlock()
	taken, _, _ := s.opts.State.Counts(u.cfg.Name)
	s.metrics.set(s.metrics.remaining, u.labels, float64(s.remaining(u.cfg)))
	s.metrics.set(s.metrics.spent, u.labels, float64(taken))
	s.metrics.set(s.metrics.mappings, u.labels, float64(len(u.cfg.Models)))
}

// remaining counts pool entries not taken and not expired.
func (s *Server) remaining(c *UpstreamConfig) int {
	now := s.opts.Now()
	n := 0
	for _, a := range c.PreSignedAuths {
		if s.opts.State.Used(a.Authorization.From, a.Authorization.Nonce) {
			continue
		}
		auth, err := evm.AuthorizationFromWire(a.Authorization)
		if err != nil || auth.ValidBefore.Cmp(big.NewInt(now.Add(minValidity).Unix())) < 0 {
			continue // expired: never usable again
		}
		n++
	}
	return n
}

func (s *Server) handleModel(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, s.opts.MaxBodyBytes+1))
	if err != nil || int64(len(body)) > s.opts.MaxBodyBytes {
		writeError(w, http.StatusRequestEntityTooLarge, "request body too large or unreadable")
		return
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(body, &probe); err != nil {
		writeError(w, http.StatusBadRequest, "request body is not a JSON object")
		return
	}
	var model string
	_ = json.Unmarshal(probe["model"], &model)
	u := s.snap.Load().byModel[model]
	if u == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no paid upstream serves model %q; add a PurchaseRequest for it", model))
		return
	}
	if rm := u.cfg.RemoteModel; rm != "" && rm != model {
		probe["model"], _ = json.Marshal(rm)
		body, _ = json.Marshal(probe)
	}
	s.forward(w, r, u, r.URL.Path, body)
}

func (s *Server) handleUpstream(w http.ResponseWriter, r *http.Request) {
	u := s.snap.Load().upstreams[r.PathValue("name")]
	if u == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no paid upstream named %q", r.PathValue("name")))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, s.opts.MaxBodyBytes+1))
	if err != nil || int64(len(body)) > s.opts.MaxBodyBytes {
		writeError(w, http.StatusRequestEntityTooLarge, "request body too large or unreadable")
		return
	}
	s.forward(w, r, u, "/"+r.PathValue("rest"), body)
}

// refusal is a payment the proxy would not make; nothing was sent.
type refusal struct {
	status     int
	reason     string // metric label
	err        error
	retryAfter time.Duration // > 0: sent as Retry-After
}

func (r *refusal) Error() string { return r.err.Error() }

// forward sends the request upstream through the pay-and-retry engine; on
// 402 it pays once from the pool. A "settlement pending" answer is waited
// out by the engine with the same authorization, within the caller's
// request context, so the payment is taken and recorded once whatever the
// number of sends.
func (s *Server) forward(w http.ResponseWriter, in *http.Request, u *upstream, path string, body []byte) {
	c, l := u.cfg, u.labels
	s.metrics.inc(s.metrics.requests, l)
	target := *c.endpointURL
	target.Path = strings.TrimRight(target.Path, "/") + path
	target.RawQuery = in.URL.RawQuery

	req, err := http.NewRequestWithContext(in.Context(), in.Method, target.String(), bytes.NewReader(body))
	if err != nil {
		writeError(w, http.StatusBadRequest, "build upstream request: "+err.Error())
		return
	}
	req.Header = in.Header.Clone()
	eng := &buyer.Engine{Client: s.opts.HTTPClient, Headers: buyer.HeaderPolicy{Strip: s.opts.StripHeaders, Allow: c.ForwardHeaders}, MaxPendingWait: s.opts.MaxPendingWait}
	var taken *x402.ExactEVMPayload
	ex, err := eng.Do(in.Context(), req, func(_ context.Context, ch *x402.Challenge, _ *url.URL) (string, string, error) {
		pay, idx, err := s.take(u, ch)
		if err != nil {
			return "", "", err
		}
		taken = &pay
		payment, err := x402.NewExactPayment(ch.Version, ch.Requirements[idx], pay)
		if err == nil {
			var name, value string
			if name, value, err = payment.Encode(); err == nil {
				s.metrics.inc(s.metrics.attempts, l)
				return name, value, nil
			}
		}
		// Never sent: the authorization stays taken all the same.
		s.finish(u, pay, "failed", "")
		return "", "", &refusal{status: http.StatusInternalServerError, reason: "build_error", err: fmt.Errorf("build payment: %w", err)}
	})
	var ref *refusal
	switch {
	case errors.As(err, &ref):
		if ex != nil {
			ex.Response.Body.Close()
		}
		if ref.reason != "build_error" {
			s.metrics.refused(l, ref.reason)
		}
		if ref.retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(ref.retryAfter.Seconds()+0.999)))
		}
		writeError(w, ref.status, ref.Error())
		return
	case errors.Is(err, buyer.ErrSendPaid):
		// The seller may still settle what it received: the authorization
		// stays taken and is never offered again.
		s.finish(u, *taken, "failed", "")
		s.metrics.inc(s.metrics.failure, l)
		writeError(w, http.StatusBadGateway, "upstream unreachable after paying: "+err.Error())
		return
	case errors.Is(err, buyer.ErrSettlementPending):
		// The seller took the payment and never said whether it settled:
		// the record stays pending (spent for the daily cap, never offered
		// again), since it may yet be charged.
		ex.Response.Body.Close()
		s.metrics.inc(s.metrics.failure, l)
		s.opts.Logger.Warn("seller never confirmed the settlement of a payment", "upstream", c.Name, "nonce", taken.Authorization.Nonce, "resends", ex.PendingRetries, "err", err)
		writeError(w, http.StatusBadGateway, "paid, but "+err.Error())
		return
	case errors.Is(err, buyer.ErrBadChallenge):
		ex.Response.Body.Close()
		s.metrics.inc(s.metrics.failure, l)
		writeError(w, http.StatusBadGateway, "upstream answered 402 with an unreadable challenge: "+err.Error())
		return
	case err != nil:
		if ex != nil {
			ex.Response.Body.Close()
		}
		writeError(w, http.StatusBadGateway, "upstream unreachable: "+err.Error())
		return
	}
	resp := ex.Response
	defer resp.Body.Close()
	if ex.Paid {
		tx := ""
		if ex.Receipt != nil {
			tx = ex.Receipt.Transaction
		}
		switch {
		case resp.StatusCode >= 400:
			s.finish(u, *taken, "failed", tx)
			s.metrics.inc(s.metrics.failure, l)
		case ex.Receipt == nil:
			// Served, but no settlement header: the authorization is
			// spent as far as we know (the seller holds it), yet no
			// settlement was seen. Not a success.
			s.finish(u, *taken, "settled", "")
			s.metrics.inc(s.metrics.unsettled, l)
		default:
			s.finish(u, *taken, "settled", tx)
			s.metrics.inc(s.metrics.success, l)
		}
	}
	s.relay(w, resp)
}

// take picks an unused authorization that matches one of the challenge's
// requirements exactly and records it durably; it returns a *refusal when
// it will not pay.
func (s *Server) take(u *upstream, ch *x402.Challenge) (x402.ExactEVMPayload, int, error) {
	c := u.cfg
	match := -1
	var why []string
	for i, r := range ch.Requirements {
		if m := c.mismatch(s.opts.Registry, r); m != "" {
			why = append(why, m)
			continue
		}
		match = i
		break
	}
	if match < 0 {
		return x402.ExactEVMPayload{}, 0, &refusal{status: http.StatusPaymentRequired, reason: "no_matching_authorization", err: fmt.Errorf("not paying %s: no pre-signed authorization matches the seller's terms (%s); the seller may have changed its price: re-create or refill the PurchaseRequest", c.Name, strings.Join(why, "; "))}
	}
	p := u.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	now := s.opts.Now()
	if c.dailyCap != nil {
		spent := s.opts.State.SpentSince(c.Name, now.Add(-24*time.Hour))
		if new(big.Int).Add(spent, c.price).Cmp(c.dailyCap) > 0 {
			return x402.ExactEVMPayload{}, 0, &refusal{status: http.StatusTooManyRequests, reason: "daily_cap", err: fmt.Errorf("not paying %s: daily spend cap reached (%s of %s atomic units spent in the last 24h, the next call costs %s)", c.Name, spent, c.dailyCap, c.price)}
		}
	}
	if p.cfg != c {
		p.cfg, p.next = c, 0
	}
	var later *big.Int // earliest validAfter among those not valid yet (a later window: Spread)
	front := true      // still in the prefix of used or expired entries
	for i := p.next; i < len(c.PreSignedAuths); i++ {
		a := c.PreSignedAuths[i]
		if s.opts.State.Used(a.Authorization.From, a.Authorization.Nonce) {
			if front {
				p.next = i + 1
			}
			continue
		}
		auth, err := evm.AuthorizationFromWire(a.Authorization)
		if err != nil || evm.CheckWindow(auth, now.Add(-validAfterMargin), 0) != nil || evm.CheckWindow(auth, now, minValidity) != nil {
			if front && (err != nil || auth.ValidBefore.Cmp(big.NewInt(now.Add(minValidity).Unix())) < 0) {
				p.next = i + 1 // expired for good
			} else {
				front = false
			}
			if err == nil && errors.Is(evm.CheckWindow(auth, now.Add(-validAfterMargin), 0), evm.ErrNotYetValid) {
				if from := new(big.Int).Add(auth.ValidAfter, big.NewInt(int64(validAfterMargin/time.Second))); later == nil || from.Cmp(later) < 0 {
					later = from
				}
			}
			continue
		}
		use := Use{Upstream: c.Name, From: a.Authorization.From, Nonce: a.Authorization.Nonce, Value: a.Authorization.Value, At: now, ValidBefore: auth.ValidBefore.Int64()}
		if err := s.opts.State.Take(use); err != nil {
			return x402.ExactEVMPayload{}, 0, &refusal{status: http.StatusPaymentRequired, reason: "state_error", err: fmt.Errorf("not paying %s: %w", c.Name, err)}
		}
		if front {
			p.next = i + 1
		}
		s.metrics.add(s.metrics.remaining, u.labels, -1)
		s.metrics.add(s.metrics.spent, u.labels, 1)
		return a, match, nil
	}
	if later != nil {
		from := time.Unix(later.Int64(), 0)
		return x402.ExactEVMPayload{}, 0, &refusal{status: http.StatusTooManyRequests, reason: "window_used", err: fmt.Errorf("not paying %s: this window's pre-signed authorizations are used up; the next window's become valid at %s (in %s); sign more per window (obol buy refill %s --count N)",
			c.Name, from.UTC().Format(time.RFC3339), from.Sub(now).Round(time.Second), c.Name), retryAfter: from.Sub(now)}
	}
	return x402.ExactEVMPayload{}, 0, &refusal{status: http.StatusPaymentRequired, reason: "pool_empty", err: fmt.Errorf("not paying %s: no unused, unexpired pre-signed authorization left; refill the PurchaseRequest (obol buy refill %s)", c.Name, c.Name)}
}

// mismatch says why requirement r cannot be paid from this pool ("" = it can).
func (c *UpstreamConfig) mismatch(reg *evm.Registry, r x402.Requirement) string {
	if r.Scheme != x402.SchemeExact {
		return fmt.Sprintf("scheme %q", r.Scheme)
	}
	chain, err := reg.Normalize(r.Network)
	if err != nil || chain != c.chain {
		return fmt.Sprintf("network %s, ours %s", r.Network, c.chain)
	}
	if !strings.EqualFold(r.Asset, c.Asset) {
		return fmt.Sprintf("asset %s, ours %s", r.Asset, c.Asset)
	}
	if !common.IsHexAddress(r.PayTo) || common.HexToAddress(r.PayTo) != common.HexToAddress(c.PayTo) {
		return fmt.Sprintf("payTo %s, ours %s", r.PayTo, c.PayTo)
	}
	if r.Amount != c.price.String() {
		return fmt.Sprintf("price %s, ours %s", r.Amount, c.price)
	}
	if c.EIP712Name != "" && r.Extra.Name != "" && r.Extra.Name != c.EIP712Name {
		return fmt.Sprintf("EIP-712 name %q, ours %q", r.Extra.Name, c.EIP712Name)
	}
	if c.EIP712Version != "" && r.Extra.Version != "" && r.Extra.Version != c.EIP712Version {
		return fmt.Sprintf("EIP-712 version %q, ours %q", r.Extra.Version, c.EIP712Version)
	}
	return ""
}

// finish records a taken authorization's outcome. A failure to record it
// is counted: the journal then holds the authorization as pending (spent
// for the daily cap, never offered again).
func (s *Server) finish(u *upstream, a x402.ExactEVMPayload, outcome, tx string) {
	if err := s.opts.State.Finish(a.Authorization.From, a.Authorization.Nonce, outcome, tx); err != nil {
		s.opts.Logger.Error("record payment outcome", "upstream", u.cfg.Name, "outcome", outcome, "err", err)
		s.metrics.inc(s.metrics.confirm, u.labels)
	}
}

// responseHopByHop are not passed back to the caller.
var responseHopByHop = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// relay passes the seller's answer back as it arrives: status and headers
// at once, then the body, flushed after every read when the seller streams
// (no Content-Length: SSE, chunked), so a streamed completion streams end
// to end. A body over MaxBodyBytes is cut off (the connection aborted).
func (s *Server) relay(w http.ResponseWriter, resp *http.Response) {
	h := w.Header()
	for k, vs := range resp.Header {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	for _, c := range resp.Header.Values("Connection") {
		for _, name := range strings.Split(c, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range responseHopByHop {
		h.Del(name)
	}
	streaming := resp.ContentLength < 0
	if streaming || resp.ContentLength > s.opts.MaxBodyBytes {
		h.Del("Content-Length")
	}
	w.WriteHeader(resp.StatusCode)
	rc := http.NewResponseController(w)
	if streaming {
		_ = rc.Flush()
	}
	buf := make([]byte, 32<<10)
	var n int64
	for {
		k, err := resp.Body.Read(buf)
		if k > 0 {
			n += int64(k)
			if n > s.opts.MaxBodyBytes {
				s.opts.Logger.Warn("upstream answer larger than the proxy's limit; cut off", "limit", s.opts.MaxBodyBytes)
				panic(http.ErrAbortHandler)
			}
			if _, werr := w.Write(buf[:k]); werr != nil {
				return
			}
			if streaming {
				_ = rc.Flush()
			}
		}
		if err != nil {
			return
		}
	}
}

// UpstreamStatus is one row of /status.
type UpstreamStatus struct {
	Name           string `json:"name"`
	RemoteModel    string `json:"remoteModel,omitempty"`
	Chain          string `json:"chain"`
	Price          string `json:"price"`
	Remaining      int    `json:"remaining"`
	Used           int    `json:"used"`
	Settled        int    `json:"settled"`
	Spent          string `json:"spent"`
	SpentLast24h   string `json:"spentLast24h"`
	MaxSpendPerDay string `json:"maxSpendPerDay,omitempty"`
}

// Status reports every upstream's pool.
func (s *Server) Status() []UpstreamStatus {
	now := s.opts.Now()
	out := []UpstreamStatus{}
	for _, u := range s.snap.Load().upstreams {
		c := u.cfg
		taken, settled, spent := s.opts.State.Counts(c.Name)
		out = append(out, UpstreamStatus{
			Name: c.Name, RemoteModel: c.RemoteModel, Chain: c.chain, Price: c.price.String(),
			Remaining: s.remaining(c), Used: taken, Settled: settled, Spent: spent.String(),
			SpentLast24h: s.opts.State.SpentSince(c.Name, now.Add(-24*time.Hour)).String(), MaxSpendPerDay: c.MaxSpendPerDay,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"upstreams": s.Status()})
}

func (s *Server) handleReload(w http.ResponseWriter, r *http.Request) {
	if err := s.Reload(); err != nil {
		writeError(w, http.StatusUnprocessableEntity, "reload failed, keeping the previous configuration: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"reloaded": true, "upstreams": s.Status()})
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
