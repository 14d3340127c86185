package verifier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"time"

	"github.com/obolstack/obol/internal/x402"
)

type proxyCtxKey struct{}

// proxyCtx travels with a request through the reverse proxy.
type proxyCtx struct {
	in       *http.Request
	target   *url.URL
	path     string // clean path to send upstream (after stripPrefix)
	route    *Route // nil for an unmatched path
	pay      *payment
	maxBytes int64
	// body is the buffered upstream answer (settle: after-response).
	body []byte
	// headerTimer bounds the wait for the upstream's headers (settle:
	// on-headers).
	headerTimer *time.Timer
}

func proxyCtxOf(r *http.Request) *proxyCtx {
	pc, _ := r.Context().Value(proxyCtxKey{}).(*proxyCtx)
	return pc
}

var (
	errResponseTooLarge = errors.New("upstream answer too large")
	errClientGone       = errors.New("buyer went away before settlement")
	errUpgradeOnPaid    = errors.New("protocol upgrade on a paid route")
	errUpstreamTimeout  = errors.New("the upstream did not answer within the upstream timeout")
)

// serveProxy is "/" in proxy mode: match, (for priced routes) verify,
// forward with the answer buffered, settle only when the upstream answered
// below 400, then send the answer with the payment response header.
func (s *Server) serveProxy(w http.ResponseWriter, r *http.Request, st *state) {
	cfg := st.cfg
	clean := cleanRequestPath(r.URL.Path)
	if why := suspiciousPath(clean); why != "" {
		writeJSONError(w, r, http.StatusBadRequest, errorBody{Error: "the path has " + why + ": refused, since the upstream might read it as another path than the one priced"})
		return
	}
	route := st.match(clean)
	if route == nil {
		if cfg.Unmatched == UnmatchedDeny || cfg.Upstream == nil {
			writeJSONError(w, r, http.StatusNotFound, errorBody{Error: "no priced route matches " + clean})
			return
		}
		s.forward(s.freeProxy, w, r, &proxyCtx{target: cfg.Upstream, path: clean})
		return
	}
	target := route.Upstream
	path := forwardPath(route, clean)
	if route.Free {
		s.metrics.request(route)
		s.forward(s.freeProxy, w, r, &proxyCtx{target: target, path: path, route: route})
		return
	}
	if isPreflight(r.Method, r.Header) {
		writePreflight(w, r)
		return
	}
	s.metrics.request(route)
	if r.Header.Get("Upgrade") != "" {
		writeJSONError(w, r, http.StatusBadRequest, errorBody{Error: "protocol upgrades (websockets) are not supported on paid routes: the answer must be complete before settlement"})
		return
	}
	pm := s.admit(w, r, st, route, resourceURL(r, r.URL.RequestURI()))
	if pm == nil {
		return
	}
	defer pm.finish()
	if pm.presettled != nil && pm.presettled.answer != nil {
		// A pending payment, now settled, collected with its kept answer.
		s.writeKept(w, r, pm)
		return
	}
	p := s.paidProxy
	timeout := s.upstreamTimeout(route)
	pc := &proxyCtx{target: target, path: path, route: route, pay: pm, maxBytes: cfg.MaxResponseBytes}
	if route.SettleOnHeaders {
		// The status and headers must arrive within the upstream timeout;
		// the body then streams for as long as it takes. modifyPaid stops
		// the timer before it settles; a timer that already fired wins.
		p = s.streamProxy
		ctx, cancel := context.WithCancelCause(r.Context())
		defer cancel(nil)
		pc.headerTimer = time.AfterFunc(timeout, func() { cancel(errUpstreamTimeout) })
		defer pc.headerTimer.Stop()
		r = r.WithContext(ctx)
	} else {
		// A buffered answer must arrive within the upstream timeout: the
		// authorization stays locked while the gate waits.
		ctx, cancel := context.WithTimeoutCause(r.Context(), timeout, errUpstreamTimeout)
		defer cancel()
		r = r.WithContext(ctx)
	}
	s.forward(p, w, r, pc)
}

// upstreamTimeout is the route's upstreamTimeout, or the server's.
func (s *Server) upstreamTimeout(route *Route) time.Duration {
	if route != nil && route.UpstreamTimeout > 0 {
		return route.UpstreamTimeout
	}
	return s.opts.UpstreamTimeout
}

func (s *Server) forward(p *httputil.ReverseProxy, w http.ResponseWriter, r *http.Request, pc *proxyCtx) {
	if pc.target == nil {
		writeJSONError(w, r, http.StatusBadGateway, errorBody{Error: "route has no upstream"})
		return
	}
	pc.in = r
	p.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), proxyCtxKey{}, pc)))
}

// forwardPath is the path route sends upstream for a clean request path
// (below the upstream URL's own path, which rewrite joins in front).
func forwardPath(route *Route, clean string) string {
	if route.StripPrefix {
		return stripPrefix(clean, route.Pattern.LiteralPrefix())
	}
	return clean
}

// rewrite builds the upstream request.
func (s *Server) rewrite(pr *httputil.ProxyRequest) {
	pc := proxyCtxOf(pr.In)
	pr.Out.URL.Path = pc.path
	pr.Out.URL.RawPath = ""
	pr.SetURL(pc.target)
	pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
	pr.SetXForwarded()
	for _, h := range []string{"X-Forwarded-Host", "X-Forwarded-Proto"} {
		if v := pr.In.Header.Get(h); v != "" {
			pr.Out.Header.Set(h, v)
		}
	}
	if pc.pay != nil {
		// The upstream has no use for a spendable authorization.
		pr.Out.Header.Del(x402.HeaderPaymentSignature)
		pr.Out.Header.Del(x402.HeaderXPayment)
	}
	if pc.route != nil && pc.route.authHeader != "" {
		pr.Out.Header.Set(pc.route.authHeader, pc.route.authValue)
	}
}

// modifyPaid settles after a successful upstream answer: buffered by
// bufferingTransport (settle: after-response), or only its status and
// headers (settle: on-headers). Nothing has reached the buyer yet; when
// settlement fails the proxy answers with the error and drops the body.
func (s *Server) modifyPaid(res *http.Response) error {
	exposePaymentHeaders(res.Header)
	pc := proxyCtxOf(res.Request)
	if pc == nil || pc.pay == nil {
		return nil
	}
	if res.StatusCode == http.StatusSwitchingProtocols {
		return errUpgradeOnPaid
	}
	if res.StatusCode >= 400 {
		s.log.Info("upstream answered an error; passed through, buyer not charged", "offer", pc.route.Offer.Name, "status", res.StatusCode)
		return nil
	}
	if pc.headerTimer != nil && !pc.headerTimer.Stop() {
		return errUpstreamTimeout // the headers came too late: not settled
	}
	if pc.in.Context().Err() != nil && pc.pay.presettled == nil {
		return errClientGone
	}
	var out settleOutcome
	if pp := pc.pay.presettled; pp != nil {
		// Settled already (a pending payment collected without a kept
		// answer): the upstream answered again, nothing is settled again.
		out = pp.pm.outcome(pc.in, pp.sr)
	} else {
		var keep func() *storedAnswer
		if pc.body != nil {
			keep = func() *storedAnswer {
				return &storedAnswer{status: res.StatusCode, header: res.Header.Clone(), body: pc.body}
			}
		}
		out = pc.pay.settle(pc.in.Context(), pc.in, keep)
	}
	if out.fail != nil {
		return out.fail
	}
	if out.header != "" {
		res.Header.Set(x402.ResponseHeaderName(pc.pay.version()), out.header)
	}
	return nil
}

// writeKept answers a collected pending payment with the upstream answer
// kept for it and its payment response.
func (s *Server) writeKept(w http.ResponseWriter, r *http.Request, pm *payment) {
	pp := pm.presettled
	out := pp.pm.outcome(r, pp.sr)
	h := w.Header()
	for k, v := range pp.answer.header {
		h[k] = v
	}
	exposePaymentHeaders(h)
	if out.header != "" {
		h.Set(x402.ResponseHeaderName(pm.version()), out.header)
	}
	h.Set("Content-Length", strconv.Itoa(len(pp.answer.body)))
	w.WriteHeader(pp.answer.status)
	_, _ = w.Write(pp.answer.body)
	s.log.Info("pending payment collected: kept answer served", "offer", pm.route.Offer.Name, "payer", pm.payer, "tx", pp.sr.Transaction)
}

// proxyError answers when the upstream could not be reached, its answer
// was too large, or settlement failed. The buyer is never charged here.
func (s *Server) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	var a *answer
	switch {
	case errors.As(err, &a):
		a.write(w)
	case errors.Is(context.Cause(r.Context()), errUpstreamTimeout), errors.Is(err, errUpstreamTimeout):
		var route *Route
		if pc := proxyCtxOf(r); pc != nil {
			route = pc.route
		}
		writeJSONError(w, r, http.StatusGatewayTimeout, errorBody{Error: fmt.Sprintf("the upstream did not answer within %s: not served, not charged", s.upstreamTimeout(route))})
	case errors.Is(err, errClientGone), errors.Is(err, context.Canceled):
		w.WriteHeader(http.StatusBadGateway)
	case errors.Is(err, errResponseTooLarge):
		writeJSONError(w, r, http.StatusBadGateway, errorBody{Error: "the upstream answer is larger than maxResponseBytes: not served, not charged"})
	case errors.Is(err, errUpgradeOnPaid):
		writeJSONError(w, r, http.StatusBadGateway, errorBody{Error: "the upstream switched protocols on a paid route: not served, not charged"})
	default:
		pc := proxyCtxOf(r)
		if pc != nil && pc.route != nil {
			s.log.Warn("upstream unreachable", "offer", pc.route.Offer.Name, "err", err)
		}
		writeJSONError(w, r, http.StatusBadGateway, errorBody{Error: "the upstream did not answer; not charged"})
	}
}

// bufferingTransport reads the whole upstream answer of a paid request
// into memory (bounded) before the proxy writes anything, so settlement can
// still decide whether the answer is delivered.
type bufferingTransport struct {
	base http.RoundTripper
}

func (t *bufferingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	pc := proxyCtxOf(req)
	if pc == nil || pc.pay == nil {
		return res, nil
	}
	if res.StatusCode == http.StatusSwitchingProtocols {
		res.Body.Close()
		return nil, errUpgradeOnPaid
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, pc.maxBytes+1))
	res.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read upstream answer: %w", err)
	}
	if int64(len(body)) > pc.maxBytes {
		return nil, errResponseTooLarge
	}
	pc.body = body
	res.Body = io.NopCloser(bytes.NewReader(body))
	res.ContentLength = int64(len(body))
	return res, nil
}
