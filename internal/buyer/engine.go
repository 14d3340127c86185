package buyer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/obolstack/obol/internal/x402"
)

// The pay-and-retry engine is the one place that decides what a buyer sends
// to a seller, for `obol buy pay` and the buyer proxy alike:
//
//   - the unpaid request may follow redirects; the payment goes only to the
//     origin whose 402 asked for it (the URL the redirects ended at);
//   - the paid request never follows a redirect to another origin: the
//     redirect is returned as the answer, and the payment stays where it was
//     asked for;
//   - hop-by-hop and credential headers never reach a seller unless the
//     HeaderPolicy allows them by name, and a caller cannot smuggle a payment
//     header of its own.

// DefaultChallengeBytes bounds the body of a 402 answer the engine reads.
const DefaultChallengeBytes = 1 << 20

// DefaultMaxPendingWait bounds how long the engine keeps asking a seller
// whose answer to the paid request is "settlement pending". The verifier
// keeps a pending payment's answer until the authorization's validBefore
// plus a minute; with the default maxTimeoutSeconds of 60 that is about two
// minutes after signing, so three minutes covers the whole time a seller
// can still answer, and no more.
const DefaultMaxPendingWait = 3 * time.Minute

// pendingBodyBytes bounds the body of a 503 answer read to see whether it
// says "settlement pending".
const pendingBodyBytes = 64 << 10

// Bounds of the wait between two asks of a pending settlement: the seller's
// Retry-After is clamped to [minPendingDelay, maxPendingDelay], and
// defaultPendingDelay is used when it is missing or not whole seconds.
const (
	minPendingDelay     = time.Second
	maxPendingDelay     = 30 * time.Second
	defaultPendingDelay = 5 * time.Second
)

// ReasonSettlementPending is the reason of a seller's 503 saying it took
// the payment but does not know yet whether it settled.
const ReasonSettlementPending = x402.ReasonSettlementPending

// hopByHop are the headers of one connection (RFC 9110 §7.6.1); they are
// never forwarded, whatever the policy says.
var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// credentials are headers that identify the caller to its own services; a
// seller gets them only when a policy allows them by name.
var credentials = []string{"Authorization", "Cookie", "Proxy-Authorization"}

// HeaderPolicy says which request headers may reach a seller.
type HeaderPolicy struct {
	// Strip names more headers never forwarded (an operator's list).
	Strip []string
	// Allow names credential or Strip headers forwarded anyway (an
	// upstream that needs them). Hop-by-hop and payment headers cannot be
	// allowed.
	Allow []string
}

// Filter returns a copy of h without the headers a seller must not get.
func (p HeaderPolicy) Filter(h http.Header) http.Header {
	out := h.Clone()
	if out == nil {
		out = http.Header{}
	}
	allowed := map[string]bool{}
	for _, a := range p.Allow {
		allowed[http.CanonicalHeaderKey(strings.TrimSpace(a))] = true
	}
	for _, c := range h.Values("Connection") {
		for _, name := range strings.Split(c, ",") {
			if name = strings.TrimSpace(name); name != "" {
				out.Del(name)
			}
		}
	}
	for _, name := range hopByHop {
		out.Del(name)
	}
	out.Del("Host")
	out.Del(x402.HeaderPaymentSignature)
	out.Del(x402.HeaderXPayment)
	for _, list := range [][]string{credentials, p.Strip} {
		for _, name := range list {
			if !allowed[http.CanonicalHeaderKey(strings.TrimSpace(name))] {
				out.Del(name)
			}
		}
	}
	return out
}

// Engine sends a request and, when the origin answers 402, asks a PayFunc
// for a payment and sends the request again, once, to that origin.
type Engine struct {
	// Client sends the requests; its CheckRedirect is wrapped, not
	// replaced. nil means http.DefaultClient.
	Client *http.Client
	// Headers filters the request's headers before anything is sent.
	Headers HeaderPolicy
	// MaxChallengeBytes bounds the 402 body read (0: DefaultChallengeBytes).
	MaxChallengeBytes int64
	// MaxPendingWait bounds how long a "settlement pending" answer to the
	// paid request is waited out, by sending the same request with the
	// same payment again (0: DefaultMaxPendingWait).
	MaxPendingWait time.Duration
	// OnPending, when set, is called before each wait for a pending
	// settlement with the number of the paid send that follows (2 for the
	// first resend) and the wait.
	OnPending func(attempt int, wait time.Duration)
}

// PayFunc turns a challenge into a payment header for the request at
// origin. It returns name "" to stop without paying (the 402 is the
// answer), or an error, in which case nothing is sent either.
type PayFunc func(ctx context.Context, ch *x402.Challenge, origin *url.URL) (name, value string, err error)

// Exchange is what the engine did.
type Exchange struct {
	// Response is the final answer. Its body has not been read, except for
	// a 402 that was not paid, whose body is the buffered challenge. The
	// caller closes it.
	Response *http.Response
	// Challenge is the parsed 402 answer, nil when none came.
	Challenge *x402.Challenge
	// ChallengeURL is the URL that asked for the payment (and got it).
	ChallengeURL *url.URL
	// Paid says a payment header was sent.
	Paid bool
	// Receipt is the seller's settlement header, when it sent one;
	// ReceiptErr says why one present was unreadable.
	Receipt    *Receipt
	ReceiptErr error
	// PendingRetries counts the times the paid request was sent again,
	// with the same payment, because the seller answered "settlement
	// pending".
	PendingRetries int
}

// ErrSendPaid wraps a transport error of the paid request: the
// authorization left this machine and may still be settled.
var ErrSendPaid = errors.New("the paid request failed")

// ErrSettlementPending: the seller still answered "settlement pending" when
// the engine stopped asking (MaxPendingWait passed or ctx ended). The
// payment may have been charged; the Exchange's Response is the last 503.
var ErrSettlementPending = errors.New("the seller has not confirmed the settlement")

// Do runs the exchange for req. req's body must be replayable (GetBody set
// or no body).
func (e *Engine) Do(ctx context.Context, req *http.Request, pay PayFunc) (*Exchange, error) {
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return nil, errors.New("request body is not replayable")
	}
	first, err := e.client(false, nil).Do(e.prepare(ctx, req, req.URL, req.Method))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), err)
	}
	if first.StatusCode != http.StatusPaymentRequired {
		return &Exchange{Response: first}, nil
	}
	body, err := readBounded(first.Body, e.challengeLimit())
	first.Body.Close()
	first.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return &Exchange{Response: first}, fmt.Errorf("%w: %v", ErrBadChallenge, err)
	}
	// The origin that asked is where the redirects (if any) ended.
	asked := first.Request
	ex := &Exchange{Response: first, ChallengeURL: asked.URL}
	ch, err := x402.ParseChallenge(first.Header, body)
	if err != nil {
		return ex, fmt.Errorf("%w: %v", ErrBadChallenge, err)
	}
	ex.Challenge = ch
	name, value, err := pay(ctx, ch, asked.URL)
	if err != nil || name == "" {
		return ex, err
	}
	// A 307/308 redirect kept the body (the client set GetBody for it); a
	// 301/302/303 one turned the request into a GET without a body.
	ex.Paid = true
	send := func() (*http.Response, error) {
		paidReq := e.prepare(ctx, asked, asked.URL, asked.Method)
		paidReq.Header.Set(name, value)
		resp, err := e.client(true, asked.URL).Do(paidReq)
		if err != nil {
			return nil, fmt.Errorf("%w: %s %s: %v", ErrSendPaid, asked.Method, asked.URL.Redacted(), err)
		}
		return resp, nil
	}
	resp, err := send()
	if err != nil {
		return ex, err
	}
	// A seller that took the payment but cannot tell yet whether it
	// settled answers 503 settlement_pending and keeps the answer for the
	// same request with the same payment: ask again with exactly that,
	// never with a new payment, and only the origin paid.
	start := time.Now()
	limit := e.MaxPendingWait
	if limit <= 0 {
		limit = DefaultMaxPendingWait
	}
	for {
		delay, pending := settlementPending(resp)
		if !pending {
			break
		}
		left := limit - time.Since(start)
		if left <= 0 || ctx.Err() != nil {
			ex.Response = resp
			return ex, e.pendingErr(ex, asked, time.Since(start), ctx.Err())
		}
		delay = min(delay, left)
		if e.OnPending != nil {
			e.OnPending(ex.PendingRetries+2, delay)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			ex.Response = resp
			return ex, e.pendingErr(ex, asked, time.Since(start), ctx.Err())
		case <-t.C:
		}
		next, err := send()
		if err != nil {
			resp.Body.Close()
			return ex, err
		}
		resp.Body.Close()
		resp = next
		ex.PendingRetries++
	}
	ex.Response = resp
	ex.Receipt, ex.ReceiptErr = readReceipt(resp.Header, ch.Version)
	return ex, nil
}

func (e *Engine) pendingErr(ex *Exchange, asked *http.Request, waited time.Duration, cause error) error {
	msg := fmt.Sprintf("%s %s still answers settlement pending after resending it %d times over %s; the payment may have been charged: check the payer's balance / the seller's settlement before paying again",
		asked.Method, asked.URL.Redacted(), ex.PendingRetries, waited.Round(100*time.Millisecond))
	if cause != nil {
		return fmt.Errorf("%w: %s (stopped waiting: %w)", ErrSettlementPending, msg, cause)
	}
	return fmt.Errorf("%w: %s", ErrSettlementPending, msg)
}

// settlementPending reports whether resp is a 503 whose JSON body has
// reason settlement_pending, and the wait its Retry-After asks for. It
// reads at most pendingBodyBytes of a 503's body and leaves the body
// readable from its start.
func settlementPending(resp *http.Response) (time.Duration, bool) {
	if resp.StatusCode != http.StatusServiceUnavailable {
		return 0, false
	}
	orig := resp.Body
	b, err := io.ReadAll(io.LimitReader(orig, pendingBodyBytes+1))
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(b), orig), orig}
	if err != nil || len(b) > pendingBodyBytes {
		return 0, false
	}
	var body struct {
		Reason string `json:"reason"`
	}
	if json.Unmarshal(b, &body) != nil || body.Reason != ReasonSettlementPending {
		return 0, false
	}
	delay := defaultPendingDelay
	if n, err := strconv.ParseInt(strings.TrimSpace(resp.Header.Get("Retry-After")), 10, 64); err == nil {
		n = min(max(n, int64(minPendingDelay/time.Second)), int64(maxPendingDelay/time.Second))
		delay = time.Duration(n) * time.Second
	}
	return delay, true
}

// prepare clones req for url with the policy's headers (the body is set by
// the caller or from GetBody).
func (e *Engine) prepare(ctx context.Context, req *http.Request, u *url.URL, method string) *http.Request {
	r := req.Clone(ctx)
	r.Method = method
	r.URL = u
	r.Header = e.Headers.Filter(req.Header)
	r.RequestURI = ""
	if req.GetBody != nil {
		if b, err := req.GetBody(); err == nil {
			r.Body = b
		}
	} else if req.Body == nil || req.Body == http.NoBody {
		r.Body = nil
	}
	return r
}

// client returns the client for one step: a paid request never follows a
// redirect to another origin than the one paid.
func (e *Engine) client(paid bool, origin *url.URL) *http.Client {
	base := e.Client
	if base == nil {
		base = http.DefaultClient
	}
	c := *base
	next := base.CheckRedirect
	c.CheckRedirect = func(r *http.Request, via []*http.Request) error {
		if paid && !sameOrigin(r.URL, origin) {
			return http.ErrUseLastResponse
		}
		if len(via) > 0 && !sameOrigin(r.URL, via[0].URL) {
			// Headers allowed for the seller are not allowed for whoever
			// it redirects to.
			for _, list := range [][]string{credentials, e.Headers.Strip} {
				for _, name := range list {
					r.Header.Del(name)
				}
			}
		}
		if next != nil {
			return next(r, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &c
}

func (e *Engine) challengeLimit() int64 {
	if e.MaxChallengeBytes > 0 {
		return e.MaxChallengeBytes
	}
	return DefaultChallengeBytes
}

// sameOrigin compares scheme and host:port, as browsers do.
func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(hostPort(a), hostPort(b))
}

func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return u.Hostname() + ":443"
	case "http":
		return u.Hostname() + ":80"
	}
	return u.Host
}

func readBounded(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("the 402 answer is larger than %d bytes", limit)
	}
	return b, nil
}
