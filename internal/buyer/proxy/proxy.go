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
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/x402"
)

// minValidity is how long an authorization must stay valid to be sent: the
// facilitator requires validBefore ≥ now + 6 s.
const minValidity = 6 * time.Second

// Options configure a Server.
type Options struct {
	ConfigDir  string
	State      *State
	Registry   *evm.Registry
	Registerer prometheus.Registerer
	HTTPClient *http.Client
	Now        func() time.Time
	Logger     *slog.Logger
	// MaxBodyBytes bounds request and response bodies (default 10 MiB).
	MaxBodyBytes int64
}

// Server is the buyer proxy.
type Server struct {
	opts    Options
	metrics *Metrics
	mux     *http.ServeMux

	mu        sync.RWMutex
	upstreams map[string]*upstream
	byModel   map[string]*upstream
	loaded    bool
}

type upstream struct {
	cfg *UpstreamConfig
	mu  sync.Mutex // serializes taking authorizations from the pool
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
	s := &Server{opts: opts, metrics: NewMetrics(opts.Registerer), upstreams: map[string]*upstream{}, byModel: map[string]*upstream{}}
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

// Reload re-reads the config directory. A broken directory keeps the last
// good configuration and returns the error. Series of upstreams that are gone
// (or changed labels) are deleted.
func (s *Server) Reload() error {
	cfg, err := LoadDir(s.opts.ConfigDir, s.opts.Registry)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	next := map[string]*upstream{}
	byModel := map[string]*upstream{}
	for _, c := range cfg.Upstreams {
		u := &upstream{cfg: c}
		if old, ok := s.upstreams[c.Name]; ok {
			old.mu.Lock()
			u = old
			u.cfg = c
			old.mu.Unlock()
		}
		next[c.Name] = u
		for _, m := range c.Models {
			byModel[m] = u
		}
	}
	for name, old := range s.upstreams {
		if n, ok := next[name]; !ok || !sameLabels(labels(n.cfg), labels(old.cfg)) {
			s.metrics.prune(labels(old.cfg))
		}
	}
	s.upstreams, s.byModel, s.loaded = next, byModel, true
	for _, u := range next {
		s.refreshGauges(u.cfg)
	}
	return nil
}

func sameLabels(a, b prometheus.Labels) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func (s *Server) refreshGauges(c *UpstreamConfig) {
	l := labels(c)
	taken, _, _ := s.opts.State.Counts(c.Name)
	s.metrics.remaining.With(l).Set(float64(s.remaining(c)))
	s.metrics.spent.With(l).Set(float64(taken))
	s.metrics.mappings.With(l).Set(float64(len(c.Models)))
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
	s.mu.RLock()
	u := s.byModel[model]
	s.mu.RUnlock()
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
	s.mu.RLock()
	u := s.upstreams[r.PathValue("name")]
	s.mu.RUnlock()
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

// forward sends the request upstream; on 402 it pays once from the pool.
func (s *Server) forward(w http.ResponseWriter, in *http.Request, u *upstream, path string, body []byte) {
	c := u.cfg
	l := labels(c)
	s.metrics.requests.With(l).Inc()
	target := *c.endpointURL
	target.Path = strings.TrimRight(target.Path, "/") + path
	target.RawQuery = in.URL.RawQuery

	resp, err := s.send(in.Context(), in, target.String(), body, "", "")
	if err != nil {
		writeError(w, http.StatusBadGateway, "upstream unreachable: "+err.Error())
		return
	}
	if resp.status != http.StatusPaymentRequired {
		resp.write(w)
		return
	}
	ch, err := x402.ParseChallenge(resp.header, resp.body)
	if err != nil {
		s.metrics.failure.With(l).Inc()
		writeError(w, http.StatusBadGateway, "upstream answered 402 with an unreadable challenge: "+err.Error())
		return
	}
	pay, reqIdx, reason, err := s.take(u, ch)
	if err != nil {
		s.metrics.refusals.With(withReason(l, reason)).Inc()
		status := http.StatusPaymentRequired
		if reason == "daily_cap" {
			status = http.StatusTooManyRequests
		}
		writeError(w, status, err.Error())
		return
	}
	req := ch.Requirements[reqIdx]
	payment, err := x402.NewExactPayment(ch.Version, req, pay)
	if err != nil {
		s.finish(c, pay, "failed", "")
		writeError(w, http.StatusInternalServerError, "build payment: "+err.Error())
		return
	}
	name, value, err := payment.Encode()
	if err != nil {
		s.finish(c, pay, "failed", "")
		writeError(w, http.StatusInternalServerError, "encode payment: "+err.Error())
		return
	}
	s.metrics.attempts.With(l).Inc()
	paid, err := s.send(in.Context(), in, target.String(), body, name, value)
	if err != nil {
		// The seller may still settle what it received: the authorization
		// stays taken and is never offered again.
		s.finish(c, pay, "failed", "")
		s.metrics.failure.With(l).Inc()
		writeError(w, http.StatusBadGateway, "upstream unreachable after paying: "+err.Error())
		return
	}
	tx := ""
	settled := false
	// The settlement result comes in the challenge version's header; a
	// seller mid-migration may use the other name.
	for _, name := range []string{x402.ResponseHeaderName(ch.Version), x402.ResponseHeaderName(3 - ch.Version)} {
		if v := paid.header.Get(name); v != "" {
			if sr, derr := x402.DecodeSettleResponse(name, v); derr == nil {
				tx, settled = sr.Transaction, sr.Success
				break
			}
		}
	}
	if paid.status < 400 && (settled || tx != "") {
		s.finish(c, pay, "settled", tx)
		s.metrics.success.With(l).Inc()
	} else if paid.status < 400 {
		// Served without a settlement header: count as paid, record no tx.
		s.finish(c, pay, "settled", "")
		s.metrics.success.With(l).Inc()
	} else {
		s.finish(c, pay, "failed", tx)
		s.metrics.failure.With(l).Inc()
	}
	s.refreshGauges(c)
	paid.write(w)
}

// take picks an unused authorization that matches one of the challenge's
// requirements exactly and records it durably. reason is a short code for
// metrics when it refuses.
func (s *Server) take(u *upstream, ch *x402.Challenge) (x402.ExactEVMPayload, int, string, error) {
	c := u.cfg
	u.mu.Lock()
	defer u.mu.Unlock()
	now := s.opts.Now()

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
		return x402.ExactEVMPayload{}, 0, "no_matching_authorization", fmt.Errorf("not paying %s: no pre-signed authorization matches the seller's terms (%s); the seller may have changed its price: re-create or refill the PurchaseRequest", c.Name, strings.Join(why, "; "))
	}
	if c.dailyCap != nil {
		spent := s.opts.State.SpentSince(c.Name, now.Add(-24*time.Hour))
		if new(big.Int).Add(spent, c.price).Cmp(c.dailyCap) > 0 {
			return x402.ExactEVMPayload{}, 0, "daily_cap", fmt.Errorf("not paying %s: daily spend cap reached (%s of %s atomic units spent in the last 24h, the next call costs %s)", c.Name, spent, c.dailyCap, c.price)
		}
	}
	for _, a := range c.PreSignedAuths {
		if s.opts.State.Used(a.Authorization.From, a.Authorization.Nonce) {
			continue
		}
		auth, err := evm.AuthorizationFromWire(a.Authorization)
		if err != nil || evm.CheckWindow(auth, now, minValidity) != nil {
			continue
		}
		use := Use{Upstream: c.Name, From: a.Authorization.From, Nonce: a.Authorization.Nonce, Value: a.Authorization.Value, At: now}
		if err := s.opts.State.Take(use); err != nil {
			return x402.ExactEVMPayload{}, 0, "state_error", fmt.Errorf("not paying %s: %w", c.Name, err)
		}
		return a, match, "", nil
	}
	return x402.ExactEVMPayload{}, 0, "pool_empty", fmt.Errorf("not paying %s: no unused, unexpired pre-signed authorization left; refill the PurchaseRequest (obol buy refill %s)", c.Name, c.Name)
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

func (s *Server) finish(c *UpstreamConfig, a x402.ExactEVMPayload, outcome, tx string) {
	if err := s.opts.State.Finish(a.Authorization.From, a.Authorization.Nonce, outcome, tx); err != nil {
		s.opts.Logger.Error("record payment outcome", "upstream", c.Name, "err", err)
	}
}

type upstreamResponse struct {
	status int
	header http.Header
	body   []byte
}

func (r *upstreamResponse) write(w http.ResponseWriter) {
	for k, vs := range r.header {
		if hopByHop[http.CanonicalHeaderKey(k)] {
			continue
		}
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(r.status)
	_, _ = w.Write(r.body)
}

var hopByHop = map[string]bool{"Connection": true, "Keep-Alive": true, "Transfer-Encoding": true, "Upgrade": true, "Proxy-Connection": true, "Te": true, "Trailer": true, "Content-Length": true}

func (s *Server) send(ctx context.Context, in *http.Request, url string, body []byte, payHeader, payValue string) (*upstreamResponse, error) {
	req, err := http.NewRequestWithContext(ctx, in.Method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, vs := range in.Header {
		ck := http.CanonicalHeaderKey(k)
		if hopByHop[ck] || ck == "Host" || ck == http.CanonicalHeaderKey(x402.HeaderPaymentSignature) || ck == http.CanonicalHeaderKey(x402.HeaderXPayment) {
			continue
		}
		req.Header[ck] = vs
	}
	if payHeader != "" {
		req.Header.Set(payHeader, payValue)
	}
	resp, err := s.opts.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, s.opts.MaxBodyBytes+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > s.opts.MaxBodyBytes {
		return nil, errors.New("upstream response larger than the proxy's limit")
	}
	return &upstreamResponse{status: resp.StatusCode, header: resp.Header, body: b}, nil
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
	s.mu.RLock()
	defer s.mu.RUnlock()
	now := s.opts.Now()
	out := []UpstreamStatus{}
	for _, u := range s.upstreams {
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
