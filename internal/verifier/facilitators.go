package verifier

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"reflect"
	"sync"
	"time"

	"github.com/obolstack/obol/internal/x402"
)

// facilitatorSet is the configured facilitators in order. Verify goes to
// the first; when it is unavailable (no connection, 5xx, timeout) the next
// one is tried. Settle goes to the facilitator that verified the payment.
type facilitatorSet struct {
	endpoints   []FacilitatorEndpoint
	facs        []Facilitator
	unavailable func(error) bool
	metrics     *Metrics
	log         *slog.Logger

	mu         sync.Mutex
	verifiedBy map[string]verifiedBy // payment payload → who verified it
}

type verifiedBy struct {
	index   int
	expires time.Time
}

// verifiedByTTL bounds how long the set remembers who verified a payment
// that was never settled (the upstream failed, the buyer left).
const verifiedByTTL = 10 * time.Minute

func sameEndpoints(a, b []FacilitatorEndpoint) bool { return reflect.DeepEqual(a, b) }

func (fs *facilitatorSet) observe(i int, op string, err error) {
	if fs.metrics == nil {
		return
	}
	result := "ok"
	switch {
	case err != nil && fs.unavailable(err):
		result = "unavailable"
	case err != nil:
		result = "error"
	}
	fs.metrics.FacilitatorRequests.WithLabelValues(fs.endpoints[i].Name, op, result).Inc()
}

func (fs *facilitatorSet) Verify(ctx context.Context, req x402.VerifyRequest) (*x402.VerifyResponse, error) {
	var lastErr error
	for i, f := range fs.facs {
		actx, cancel := ctx, context.CancelFunc(func() {})
		if d, ok := ctx.Deadline(); ok && i < len(fs.facs)-1 {
			// Leave the facilitators after this one a share of the time.
			actx, cancel = context.WithTimeout(ctx, time.Until(d)/time.Duration(len(fs.facs)-i))
		}
		vr, err := f.Verify(actx, req)
		cancel()
		fs.observe(i, facilitatorOpVerify, err)
		if err == nil {
			fs.remember(string(req.PaymentPayload), i)
			return vr, nil
		}
		lastErr = err
		if !fs.unavailable(err) || ctx.Err() != nil {
			return nil, err
		}
		if i < len(fs.facs)-1 {
			fs.log.Warn("facilitator unavailable; trying the next one", "facilitator", fs.endpoints[i].Name, "next", fs.endpoints[i+1].Name, "err", err)
		}
	}
	return nil, lastErr
}

func (fs *facilitatorSet) Settle(ctx context.Context, req x402.SettleRequest) (*x402.SettleResponse, error) {
	i := fs.take(string(req.PaymentPayload))
	sr, err := fs.facs[i].Settle(ctx, req)
	fs.observe(i, facilitatorOpSettle, err)
	return sr, err
}

func (fs *facilitatorSet) remember(key string, i int) {
	if len(fs.facs) == 1 {
		return
	}
	now := time.Now()
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.verifiedBy == nil {
		fs.verifiedBy = map[string]verifiedBy{}
	}
	if len(fs.verifiedBy) >= 10000 {
		for k, v := range fs.verifiedBy {
			if now.After(v.expires) {
				delete(fs.verifiedBy, k)
			}
		}
	}
	fs.verifiedBy[key] = verifiedBy{index: i, expires: now.Add(verifiedByTTL)}
}

// take returns (and forgets) who verified a payment; the first
// facilitator when nobody did.
func (fs *facilitatorSet) take(key string) int {
	if len(fs.facs) == 1 {
		return 0
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	v, ok := fs.verifiedBy[key]
	delete(fs.verifiedBy, key)
	if !ok {
		return 0
	}
	return v.index
}

// headerTransport adds a facilitator's configured headers to every
// request; the values never reach a log.
type headerTransport struct {
	base   http.RoundTripper
	header http.Header
}

func (t *headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range t.header {
		r.Header[k] = v
	}
	return t.base.RoundTrip(r)
}

// FacilitatorHTTPClient returns an HTTP client that sends the endpoint's
// headers with every request (for facilitator clients).
func FacilitatorHTTPClient(e FacilitatorEndpoint, base http.RoundTripper) *http.Client {
	if base == nil {
		base = http.DefaultTransport
	}
	if len(e.Header) == 0 {
		return &http.Client{Transport: base}
	}
	return &http.Client{Transport: &headerTransport{base: base, header: e.Header.Clone()}}
}

var errHeadersUnsupported = errors.New("the facilitator has headers configured but this verifier was built without Options.NewFacilitatorEndpoint, which could send them")
