package verifier

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"strings"
	"syscall"
	"time"

	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/x402"
)

// payment is one admitted payment: decoded, matched to the route, locked
// against concurrent use and verified by the facilitator.
type payment struct {
	s       *Server
	st      *state
	route   *Route
	p       *x402.Payment
	req     x402.Requirement
	vreq    x402.VerifyRequest
	key     authKey
	amount  *big.Int
	expires time.Time
	payer   string

	used      bool   // remember the authorization as spent on finish
	settleKey string // idempotency key of this payment's settle requests
	resource  string // the URL paid for

	// presettled is the pending payment this request collects: its
	// outcome is known to be settled, and nothing is settled again.
	presettled *pendingPayment
}

// newSettleKey is a random idempotency key: one per payment, the same for
// every settle attempt of it.
func newSettleKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// version is the x402 version the buyer used; answers use it.
func (pm *payment) version() int { return pm.p.Version }

// finish releases the in-flight lock.
func (pm *payment) finish() {
	if pm.presettled == nil {
		pm.s.guard.release(pm.key, pm.used, pm.expires)
	}
}

// challengeVersion picks the version of the 402 body for a request that
// carries no usable payment: v1 when the buyer sent only a v1 X-PAYMENT
// header, else the configured version (2 by default). The PAYMENT-REQUIRED
// header (a v2 construct) is sent either way.
func challengeVersion(r *http.Request, cfg *Config) int {
	if r.Header.Get(x402.HeaderXPayment) != "" && r.Header.Get(x402.HeaderPaymentSignature) == "" {
		return x402.Version1
	}
	return cfg.ChallengeVersion
}

// admit runs everything before the upstream: decode, match, replay checks,
// verify. On any refusal it writes the answer and returns nil.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, st *state, route *Route, resource string) *payment {
	req := route.Requirement(resource)
	p, err := x402.PaymentFromHeader(r.Header)
	if errors.Is(err, x402.ErrNoPayment) {
		s.metrics.paymentRequired(route)
		v := challengeVersion(r, st.cfg)
		msg := x402.HeaderPaymentSignature + " header is required"
		if v == x402.Version1 {
			msg = x402.HeaderXPayment + " header is required"
		}
		s.writeUnpaid(w, r, st, v, msg, route, req)
		return nil
	}
	if err != nil {
		s.metrics.failed(route, ReasonMalformedPayment)
		writeMalformed(w, r, err)
		return nil
	}
	refuse := func(reason string) *payment {
		s.metrics.failed(route, reason)
		s.log.Debug("payment refused", "offer", route.Offer.Name, "reason", reason)
		writeChallenge(w, r, http.StatusPaymentRequired, p.Version, reason, req)
		return nil
	}
	if pm, handled := s.pendingRetry(w, r, st, route, p, req, resource, refuse); handled {
		// The buyer asks again for a payment kept pending: it is
		// answered as it was made, whatever a reload changed since.
		return pm
	}
	if p.Scheme != x402.SchemeExact || p.Exact == nil {
		return refuse(x402.ReasonInvalidScheme)
	}
	if nw, err := s.opts.Registry.Normalize(p.Network); err != nil || nw != route.Chain.CAIP2 {
		return refuse(x402.ReasonInvalidNetwork)
	}
	if p.Version == x402.Version2 {
		a := p.V2.Accepted
		amt, err := evm.ParseAtomic(a.Amount)
		if !strings.EqualFold(a.Asset, req.Asset) || !strings.EqualFold(a.PayTo, req.PayTo) || err != nil || amt.Cmp(route.Amount) != 0 {
			return refuse(x402.ReasonNoMatchingRequirement)
		}
	}
	auth, err := evm.AuthorizationFromWire(p.Exact.Authorization)
	if err != nil {
		s.metrics.failed(route, ReasonMalformedPayment)
		field := ""
		var fe *evm.FieldError
		if errors.As(err, &fe) {
			field = "payload.authorization." + fe.Field
		}
		writeMalformed(w, r, &x402.DecodeError{Header: p.Header, Field: field, Err: errors.Unwrap(err)})
		return nil
	}
	key := newAuthKey(route.Chain.CAIP2, route.asset(), auth.From.Hex(), p.Exact.Authorization.Nonce)
	if auth.To != route.PayTo {
		return refuse(x402.ReasonRecipientMismatch)
	}
	if auth.Value.Cmp(route.Amount) != 0 {
		return refuse(x402.ReasonValueMismatch)
	}
	now := s.now()
	if err := evm.CheckMaxValidity(auth, now, time.Duration(req.MaxTimeoutSeconds)*time.Second); err != nil {
		// Longer than the replay record is kept for it: it could be
		// served again after the record expired.
		s.log.Debug("payment refused", "offer", route.Offer.Name, "err", err)
		return refuse(x402.ReasonValidBefore)
	}
	pm := &payment{s: s, st: st, route: route, p: p, req: req, amount: auth.Value, payer: auth.From.Hex(),
		key: key, settleKey: newSettleKey(), resource: resource}
	pm.expires = expiry(auth.ValidBefore, now)
	ok, used, full := s.guard.acquire(pm.key, now)
	if used {
		return refuse(ReasonAuthorizationReused)
	}
	if full {
		s.metrics.failed(route, ReasonReplayRecordFull)
		s.log.Error("replay record full: payment refused; raise the replay cache size or lower maxTimeoutSeconds", "offer", route.Offer.Name)
		writeJSONError(w, r, http.StatusServiceUnavailable, errorBody{Error: "the gate is at its limit of payments in their validity window: nothing was served or charged; try again shortly", Reason: ReasonReplayRecordFull})
		return nil
	}
	if !ok {
		return refuse(x402.ReasonAuthorizationInFlight)
	}
	pm.vreq, err = x402.NewVerifyRequest(p, req)
	if err != nil {
		pm.finish()
		s.metrics.failed(route, ReasonMalformedPayment)
		writeMalformed(w, r, &x402.DecodeError{Header: p.Header, Err: err})
		return nil
	}

	ctx, cancel := context.WithTimeout(r.Context(), st.cfg.FacilitatorTimeout)
	start := time.Now()
	vr, err := st.fac.Verify(ctx, pm.vreq)
	cancel()
	s.metrics.facilitatorDuration(facilitatorOpVerify, time.Since(start))
	if err == nil && vr == nil {
		err = errors.New("facilitator answered verify with nothing")
	}
	if err != nil {
		pm.finish()
		status, reason := s.facilitatorFailure(err)
		s.metrics.failed(route, reason)
		s.log.Warn("facilitator verify failed; request refused, upstream not called", "offer", route.Offer.Name, "err", err)
		writeJSONError(w, r, status, errorBody{Error: facilitatorMessage(status, facilitatorOpVerify), Reason: reason})
		return nil
	}
	if !vr.IsValid {
		pm.finish()
		reason := vr.InvalidReason
		if reason == "" {
			reason = x402.ReasonInvalidPayload
		}
		s.metrics.failed(route, reason)
		s.log.Debug("payment invalid", "offer", route.Offer.Name, "reason", reason, "message", vr.InvalidMessage, "payer", pm.payer)
		writeChallenge(w, r, http.StatusPaymentRequired, p.Version, reason, req)
		return nil
	}
	if vr.Payer != "" {
		pm.payer = vr.Payer
	}
	s.metrics.verified(route)
	return pm
}

// pendingRetry answers a request that carries a payment kept pending (see
// pending.go): handled is false when it carries none.
func (s *Server) pendingRetry(w http.ResponseWriter, r *http.Request, st *state, route *Route, p *x402.Payment, req x402.Requirement, resource string,
	refuse func(string) *payment) (pm *payment, handled bool) {
	if p.Exact == nil {
		return nil, false
	}
	auth, err := evm.AuthorizationFromWire(p.Exact.Authorization)
	if err != nil {
		return nil, false
	}
	key := newAuthKey(route.Chain.CAIP2, route.asset(), auth.From.Hex(), p.Exact.Authorization.Nonce)
	pp, found, same, retryAfter := s.pending.claim(key, buyerMethod(r, st.cfg), resource, s.now())
	switch {
	case !found:
		return nil, false
	case !same:
		s.log.Debug("payment refused: pending for another request", "offer", route.Offer.Name, "method", pp.method, "resource", pp.uri)
		return refuse(ReasonAuthorizationReused), true
	case retryAfter > 0:
		pendingAnswer(r, retryAfter).write(w)
		return nil, true
	case !pp.sr.Success:
		pp.pm.outcome(r, pp.sr).fail.write(w)
		return nil, true
	}
	return &payment{s: s, st: st, route: route, p: p, req: req, amount: pp.pm.amount, payer: pp.pm.payer,
		key: key, resource: resource, presettled: pp}, true
}

// expiry is how long a used authorization is remembered: until a minute
// after its validBefore (the token refuses it after that anyway). admit
// has checked that validBefore lies within maxTimeoutSeconds (+ skew).
func expiry(validBefore *big.Int, now time.Time) time.Time {
	if validBefore == nil || !validBefore.IsInt64() {
		return now.Add(24 * time.Hour) // unreachable after CheckMaxValidity
	}
	return time.Unix(validBefore.Int64(), 0).Add(time.Minute)
}

// settleOutcome is the result of settling: the response to send in the
// payment response header, or a failure answer.
type settleOutcome struct {
	resp   *x402.SettleResponse
	header string // encoded resp
	fail   *answer
}

// Settle results, the values of the settlements metric's result label.
const (
	SettleResultSettled           = "settled"             // settled at the first attempt
	SettleResultSettledAfterRetry = "settled_after_retry" // settled after asking again about an unknown outcome
	SettleResultRefused           = "refused"             // known not settled: the buyer was not charged
	SettleResultUnknown           = "unknown"             // no answer within the settle deadline: the answer was withheld (kept pending)
	SettleResultSettledLate       = "settled_late"        // a withheld (pending) payment later learned to have settled
)

// Settle retry bounds: the first pause after an unknown outcome, and the
// longest pause between attempts.
const (
	settleBackoffFirst = 100 * time.Millisecond
	settleBackoffMax   = 5 * time.Second
)

// settleDeadline bounds all settle attempts of one payment. It outlasts
// the facilitator's worst case (obol's: about 45 s of receipt wait plus a
// few RPC calls of up to 10 s), so that an outcome the facilitator learns
// late still reaches the buyer.
func settleDeadline(cfg *Config) time.Duration {
	return SettleDeadline(cfg.FacilitatorTimeout)
}

// SettleDeadline is the settle deadline for a facilitatorTimeout: how long
// a paid request may wait for its settlement, which a stopping verifier
// must let it finish.
func SettleDeadline(facilitatorTimeout time.Duration) time.Duration {
	return settleAttempts * facilitatorTimeout
}

// settleAttempts × facilitatorTimeout is the settle deadline.
const settleAttempts = 4

// settled is the facilitator's answer to a settle that is known: success,
// or a refusal that means the transfer did not happen.
func settleKnown(sr *x402.SettleResponse) bool {
	if sr.Success {
		return true
	}
	switch sr.ErrorReason {
	case x402.ReasonUnexpectedSettleError, x402.ReasonAuthorizationInFlight, "":
		return false
	}
	return true
}

// askOnce asks the facilitator once to settle, under the payment's
// idempotency key. An error means the outcome is unknown: no answer, a
// timeout, a 5xx, or an answer that is neither success nor a refusal.
//
// again says an earlier question may have led to a transfer. A refusal
// because the authorization expired then says nothing: a facilitator that
// re-verifies before it looks at the chain (obol's looks first) refuses a
// payment it settled once validBefore has passed. It counts as unknown.
func (pm *payment) askOnce(ctx context.Context, again bool) (*x402.SettleResponse, error) {
	cfg := pm.st.cfg
	actx, cancel := context.WithTimeout(x402.WithIdempotencyKey(ctx, pm.settleKey), cfg.FacilitatorTimeout)
	defer cancel()
	start := time.Now()
	sr, err := pm.st.fac.Settle(actx, pm.vreq)
	pm.s.metrics.facilitatorDuration(facilitatorOpSettle, time.Since(start))
	if err == nil && sr == nil {
		err = errors.New("facilitator answered settle with nothing")
	}
	if err == nil && (!settleKnown(sr) || again && !sr.Success && x402.CanonicalReason(sr.ErrorReason) == x402.ReasonValidBefore) {
		err = fmt.Errorf("facilitator settle: %s: %s", sr.ErrorReason, sr.ErrorMessage)
	}
	return sr, err
}

// askSettle asks the facilitator to settle until the outcome is known:
// success, or a refusal. An outcome left unknown is asked again, under the
// same idempotency key, with backoff, until the settle deadline. It returns
// the last answer or error and how many attempts were made. It runs to
// completion even if the buyer goes away meanwhile, so the gate always
// knows what happened.
func (pm *payment) askSettle(ctx context.Context) (*x402.SettleResponse, int, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleDeadline(pm.st.cfg))
	defer cancel()
	backoff := settleBackoffFirst
	for attempt := 1; ; attempt++ {
		sr, err := pm.askOnce(ctx, attempt > 1)
		if err == nil {
			return sr, attempt, nil
		}
		pm.s.log.Warn("settlement outcome unknown; asking again", "offer", pm.route.Offer.Name, "payer", pm.payer, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return nil, attempt, err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, settleBackoffMax)
	}
}

// settle settles the payment (see askSettle) and prepares the answer:
// the payment response on success; a 402 when the facilitator refused (the
// buyer's money did not move). When the outcome stayed unknown, the
// payment is kept pending (see pending.go) with the answer keep returns
// (nil: none) and the buyer is told to ask again: 503 settlement_pending.
func (pm *payment) settle(ctx context.Context, r *http.Request, keep func() *storedAnswer) settleOutcome {
	s, route := pm.s, pm.route
	sr, attempts, err := pm.askSettle(ctx)
	if err != nil {
		// The outcome on chain is still unknown: never serve now, and
		// never accept this authorization for another request.
		pm.used = true
		s.metrics.settlement(SettleResultUnknown)
		var answer *storedAnswer
		if keep != nil {
			answer = keep()
		}
		if p, ok := s.pending.add(pm, r, pm.resource, answer); ok {
			s.metrics.failed(route, ReasonSettlementPending)
			s.log.Error("settlement outcome unknown after the settle deadline; answer kept pending for the buyer's retry", "offer", route.Offer.Name, "payer", pm.payer,
				"attempts", attempts, "deadline", settleDeadline(pm.st.cfg), "answer_kept", p.answer != nil, "err", err)
			return settleOutcome{fail: pendingAnswer(r, pendingRetryAfter)}
		}
		status, _ := s.facilitatorFailure(err)
		s.metrics.failed(route, ReasonSettlementUnknown)
		s.log.Error("settlement outcome unknown after the settle deadline and no room to keep it pending; answer withheld", "offer", route.Offer.Name, "payer", pm.payer,
			"attempts", attempts, "deadline", settleDeadline(pm.st.cfg), "err", err)
		return settleOutcome{fail: jsonAnswer(r, status, errorBody{Error: facilitatorMessage(status, facilitatorOpSettle), Reason: ReasonSettlementUnknown})}
	}
	pm.complete(sr)
	result := SettleResultSettled
	switch {
	case !sr.Success:
		result = SettleResultRefused
	case attempts > 1:
		result = SettleResultSettledAfterRetry
	}
	pm.record(sr, result)
	pm.used = sr.Success
	return pm.outcome(r, sr)
}

// complete fills in what the facilitator may leave out of its answer.
func (pm *payment) complete(sr *x402.SettleResponse) {
	if sr.Network == "" {
		// The network as the buyer's version names it (v1: base-sepolia).
		sr.Network = pm.route.Chain.CAIP2
		if pm.version() == x402.Version1 {
			sr.Network = pm.req.V1().Network
		}
	}
	if sr.Payer == "" {
		// v1's SettlementResponse requires payer; the facilitator may omit it.
		sr.Payer = pm.payer
	}
}

// record counts and logs a known settle outcome.
func (pm *payment) record(sr *x402.SettleResponse, result string) {
	s, route := pm.s, pm.route
	s.metrics.settlement(result)
	if !sr.Success {
		reason := sr.ErrorReason
		if reason == "" {
			reason = ReasonSettleFailed
		}
		s.metrics.failed(route, reason)
		s.log.Info("settlement refused; answer withheld, buyer not charged", "offer", route.Offer.Name, "payer", pm.payer, "reason", reason, "message", sr.ErrorMessage)
		return
	}
	s.metrics.charged(route, pm.amount, s.now())
	s.log.Info("payment settled", "offer", route.Offer.Namespace+"/"+route.Offer.Name, "chain", route.Chain.CAIP2,
		"amount", pm.amount.String(), "asset", route.asset(), "payer", pm.payer, "tx", sr.Transaction, "result", result)
}

// outcome is the answer to a known settle outcome: the payment response
// header on success, a 402 with it on a refusal.
func (pm *payment) outcome(r *http.Request, sr *x402.SettleResponse) settleOutcome {
	hv, encErr := x402.EncodeSettleResponse(*sr)
	if !sr.Success {
		reason := sr.ErrorReason
		if reason == "" {
			reason = ReasonSettleFailed
		}
		a := challengeAnswer(r, http.StatusPaymentRequired, pm.version(), reason, pm.req)
		if encErr == nil {
			a.header.Set(x402.ResponseHeaderName(pm.version()), hv)
		}
		return settleOutcome{resp: sr, fail: a}
	}
	if encErr != nil {
		hv = ""
	}
	return settleOutcome{resp: sr, header: hv}
}

// facilitatorFailure maps a facilitator client error to the answer status:
// 503 when it timed out or could not be reached, 502 otherwise.
func (s *Server) facilitatorFailure(err error) (int, string) {
	if s.opts.ClassifyFacilitatorError != nil {
		if s.opts.ClassifyFacilitatorError(err) {
			return http.StatusServiceUnavailable, ReasonFacilitatorUnavailable
		}
		return http.StatusBadGateway, ReasonFacilitatorError
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) {
		return http.StatusServiceUnavailable, ReasonFacilitatorUnavailable
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return http.StatusServiceUnavailable, ReasonFacilitatorUnavailable
	}
	var t interface{ Timeout() bool }
	if errors.As(err, &t) && t.Timeout() {
		return http.StatusServiceUnavailable, ReasonFacilitatorUnavailable
	}
	var sc interface{ HTTPStatus() int }
	if errors.As(err, &sc) && (sc.HTTPStatus() == http.StatusServiceUnavailable || sc.HTTPStatus() == http.StatusGatewayTimeout) {
		return http.StatusServiceUnavailable, ReasonFacilitatorUnavailable
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return http.StatusServiceUnavailable, ReasonFacilitatorUnavailable
	}
	return http.StatusBadGateway, ReasonFacilitatorError
}

// facilitatorMessage is what the buyer is told when the facilitator failed;
// the details (URLs, upstream errors) go to the log only.
func facilitatorMessage(status int, op string) string {
	if op == facilitatorOpSettle {
		return "the payment facilitator could not tell whether the settlement happened: the resource was withheld and this authorization will not be accepted again; check the payer's balance before paying again"
	}
	if status == http.StatusServiceUnavailable {
		return "the payment facilitator is unavailable: nothing was served or charged; try again shortly"
	}
	return "the payment facilitator failed: nothing was served or charged"
}

// answer is a prepared response.
type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a *answer) write(w http.ResponseWriter) {
	h := w.Header()
	for k, v := range a.header {
		h[k] = v
	}
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)
}

func (a *answer) Error() string { return fmt.Sprintf("answered %d", a.status) }

type errorBody struct {
	Error  string `json:"error"`
	Reason string `json:"reason,omitempty"`
	Header string `json:"header,omitempty"`
	Field  string `json:"field,omitempty"`
}

func jsonAnswer(r *http.Request, status int, body errorBody) *answer {
	b, _ := json.Marshal(body)
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	corsHeaders(h, r)
	return &answer{status: status, header: h, body: append(b, '\n')}
}

func writeJSONError(w http.ResponseWriter, r *http.Request, status int, body errorBody) {
	jsonAnswer(r, status, body).write(w)
}

func writeMalformed(w http.ResponseWriter, r *http.Request, err error) {
	body := errorBody{Error: err.Error(), Reason: x402.ReasonInvalidPayload}
	var de *x402.DecodeError
	if errors.As(err, &de) {
		body.Header, body.Field = de.Header, de.Field
	}
	writeJSONError(w, r, http.StatusBadRequest, body)
}

// challengeAnswer is a 402: the JSON body in the given version and, always,
// the v2 PAYMENT-REQUIRED header.
func challengeAnswer(r *http.Request, status, version int, msg string, req x402.Requirement) *answer {
	reqs := []x402.Requirement{req}
	body, hv, err := x402.PaymentRequired(version, msg, reqs)
	if err != nil {
		return jsonAnswer(r, http.StatusInternalServerError, errorBody{Error: "render 402: " + err.Error()})
	}
	if version != x402.Version2 {
		if _, hv, err = x402.PaymentRequired(x402.Version2, msg, reqs); err != nil {
			hv = ""
		}
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	if hv != "" {
		h.Set(x402.HeaderPaymentRequired, hv)
	}
	corsHeaders(h, r)
	return &answer{status: status, header: h, body: body}
}

func writeChallenge(w http.ResponseWriter, r *http.Request, status, version int, msg string, req x402.Requirement) {
	challengeAnswer(r, status, version, msg, req).write(w)
}

// corsHeaders lets browsers read the payment headers of the gate's own
// answers.
func corsHeaders(h http.Header, r *http.Request) {
	h.Set("Access-Control-Expose-Headers", x402.ExposedHeaders)
	if r != nil && r.Header.Get("Origin") != "" {
		h.Set("Access-Control-Allow-Origin", "*")
	}
}

// exposePaymentHeaders adds the payment headers to an upstream answer's
// Access-Control-Expose-Headers, keeping what the upstream exposes.
func exposePaymentHeaders(h http.Header) {
	prev := h.Values("Access-Control-Expose-Headers")
	if len(prev) == 0 {
		h.Set("Access-Control-Expose-Headers", x402.ExposedHeaders)
		return
	}
	joined := strings.Join(prev, ", ")
	if strings.Contains(joined, "*") {
		return
	}
	h.Set("Access-Control-Expose-Headers", joined+", "+x402.ExposedHeaders)
}

// isPreflight reports a CORS preflight request.
func isPreflight(method string, h http.Header) bool {
	return method == http.MethodOptions && h.Get("Access-Control-Request-Method") != "" && h.Get("Origin") != ""
}

// writePreflight answers a CORS preflight for a priced route, allowing the
// payment headers.
func writePreflight(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
	allow := []string{x402.HeaderPaymentSignature, x402.HeaderXPayment, "Content-Type", "Authorization"}
	if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
		allow = append(allow, req)
	}
	h.Set("Access-Control-Allow-Headers", strings.Join(allow, ", "))
	h.Set("Access-Control-Expose-Headers", x402.ExposedHeaders)
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

// resourceURL is the URL of the paid resource as the buyer sees it: scheme
// and host from X-Forwarded-Proto/-Host when a proxy in front set them.
func resourceURL(r *http.Request, requestURI string) string {
	scheme := firstValue(r.Header.Get("X-Forwarded-Proto"))
	if scheme != "http" && scheme != "https" {
		scheme = "http"
		if r.TLS != nil {
			scheme = "https"
		}
	}
	host := firstValue(r.Header.Get("X-Forwarded-Host"))
	if host == "" {
		host = r.Host
	}
	return scheme + "://" + host + requestURI
}

func firstValue(v string) string {
	first, _, _ := strings.Cut(v, ",")
	return strings.ToLower(strings.TrimSpace(first))
}
