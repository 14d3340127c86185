package verifier

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/obolstack/obol/internal/x402"
)

// proxyDoc sells /weather/* and /joke on one upstream and lets /health
// through free. The weather API lives under /w on the upstream, so its
// stripPrefix cannot map a paid path onto /health or /joke (a config where
// it could is refused at load).
func proxyDoc(upstreamURL string) string {
	return `payTo: 0x209693Bc6afc0C5328bA36FaF03C514EF312287C
chain: base-sepolia
facilitatorURL: http://127.0.0.1:4021
upstream: ` + upstreamURL + `
routes:
  - pattern: /weather/*
    price: "0.001"
    description: Weather now
    mimeType: application/json
    upstream: ` + upstreamURL + `/w
    stripPrefix: true
    upstreamAuth: {header: Authorization, valueFromEnv: UPSTREAM_TOKEN}
  - pattern: /health
    price: "0"
  - pattern: /joke
    price: "0.01"
    offerName: jokes
`
}

func counter(t *testing.T, g *testGate, name, offer string) float64 {
	t.Helper()
	lv := offerLabelValues(Offer{"default", offer}, "eip155:84532")
	switch name {
	case "requests":
		return testutil.ToFloat64(g.metrics.Requests.Series(lv...))
	case "required":
		return testutil.ToFloat64(g.metrics.PaymentRequired.Series(lv...))
	case "verified":
		return testutil.ToFloat64(g.metrics.PaymentVerified.Series(lv...))
	case "failed":
		return testutil.ToFloat64(g.metrics.PaymentFailed.Series(lv...))
	case "charged":
		return testutil.ToFloat64(g.metrics.Charged.Series(lv...))
	case "atomic":
		return testutil.ToFloat64(g.metrics.ChargedAtomicUnits.Series(append(lv, testUSDC)...))
	case "last":
		return testutil.ToFloat64(g.metrics.LastPaymentSuccess.Series(lv...))
	}
	t.Fatalf("unknown counter %s", name)
	return 0
}

func failures(g *testGate, offer, reason string) float64 {
	return testutil.ToFloat64(g.metrics.PaymentFailures.Series(offerLabelValues(Offer{"default", offer}, "eip155:84532", reason)...))
}

func TestUnpaidGets402InBothShapes(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	g := newGate(t, proxyDoc(up.URL))

	r := httptest.NewRequest(http.MethodGet, "http://shop.example/weather/today?city=x", nil)
	r.Header.Set("Origin", "https://app.example")
	w := g.do(r)
	if w.Code != http.StatusPaymentRequired {
		t.Fatalf("status %d", w.Code)
	}
	if up.hits.Load() != 0 {
		t.Fatal("upstream called for an unpaid request")
	}
	if got := w.Header().Get("Access-Control-Expose-Headers"); got != x402.ExposedHeaders {
		t.Fatalf("expose headers %q", got)
	}
	if w.Header().Get("Access-Control-Allow-Origin") != "*" {
		t.Fatal("no allow-origin on the 402")
	}
	hv := w.Header().Get(x402.HeaderPaymentRequired)
	var hdr x402.PaymentRequiredV2
	if err := x402.DecodeHeader(x402.HeaderPaymentRequired, hv, &hdr); err != nil {
		t.Fatal(err)
	}
	body := decodeJSON(t, w.Body.Bytes())
	if body["x402Version"] != float64(2) || hdr.X402Version != 2 {
		t.Fatalf("want v2 body and header: %s", w.Body)
	}
	a := hdr.Accepts[0]
	if a.Network != "eip155:84532" || a.Amount != "1000" || a.Asset != testUSDC || a.PayTo != testPayTo || a.MaxTimeoutSeconds != 60 || a.Extra.Name != "USDC" {
		t.Fatalf("accepts: %+v", a)
	}
	if hdr.Resource == nil || hdr.Resource.URL != "http://shop.example/weather/today?city=x" || hdr.Resource.Description != "Weather now" {
		t.Fatalf("resource: %+v", hdr.Resource)
	}

	// X-Forwarded-* decide the resource's scheme and host.
	r = httptest.NewRequest(http.MethodGet, "http://internal:8080/joke", nil)
	r.Header.Set("X-Forwarded-Proto", "https")
	r.Header.Set("X-Forwarded-Host", "api.example.com")
	c, err := x402.ParseChallenge(g.do(r).Header(), nil)
	if err != nil || c.Requirements[0].Resource.URL != "https://api.example.com/joke" {
		t.Fatalf("forwarded resource: %v %+v", err, c)
	}

	// A v1 buyer (X-PAYMENT only) gets a v1 body; PAYMENT-REQUIRED still carries v2.
	g2 := newGate(t, proxyDoc(up.URL)+"challengeVersion: 1\n")
	w = g2.do(httptest.NewRequest(http.MethodGet, "/joke", nil))
	body = decodeJSON(t, w.Body.Bytes())
	accepts := body["accepts"].([]any)[0].(map[string]any)
	if body["x402Version"] != float64(1) || accepts["network"] != "base-sepolia" || accepts["maxAmountRequired"] != "10000" || accepts["resource"] != "http://example.com/joke" {
		t.Fatalf("v1 body: %s", w.Body)
	}
	if w.Header().Get(x402.HeaderPaymentRequired) == "" {
		t.Fatal("v1 answer lacks the PAYMENT-REQUIRED header")
	}
	if counter(t, g, "required", "weather") != 1 || counter(t, g, "required", "jokes") != 1 || counter(t, g, "requests", "weather") != 1 {
		t.Fatal("payment_required/requests not counted")
	}
}

func TestPreflightAllowsPaymentHeaders(t *testing.T) {
	t.Parallel()
	g := newGate(t, proxyDoc(newUpstream(t).URL))
	r := httptest.NewRequest(http.MethodOptions, "/weather/x", nil)
	r.Header.Set("Origin", "https://app.example")
	r.Header.Set("Access-Control-Request-Method", "GET")
	r.Header.Set("Access-Control-Request-Headers", "payment-signature")
	w := g.do(r)
	if w.Code != http.StatusNoContent {
		t.Fatalf("status %d", w.Code)
	}
	allow := w.Header().Get("Access-Control-Allow-Headers")
	if !strings.Contains(allow, "PAYMENT-SIGNATURE") || !strings.Contains(allow, "X-PAYMENT") || w.Header().Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("preflight headers: %v", w.Header())
	}
	if counter(t, g, "requests", "weather") != 0 {
		t.Fatal("preflight counted as a request")
	}
}

func TestPaidProxyBothVersions(t *testing.T) {
	t.Parallel()
	for _, version := range []int{x402.Version1, x402.Version2} {
		t.Run(map[int]string{1: "v1", 2: "v2"}[version], func(t *testing.T) {
			up := newUpstream(t)
			g := newGate(t, proxyDoc(up.URL))
			req := challenge(t, g.h, "/weather/today")
			name, value := newBuyer(t).pay(t, g.evm, version, req)
			r := httptest.NewRequest(http.MethodGet, "/weather/today?x=1", nil)
			r.Header.Set(name, value)
			before := time.Now()
			w := g.do(r)
			if w.Code != http.StatusOK || w.Body.String() != `{"weather":"sunny"}` {
				t.Fatalf("status %d body %s", w.Code, w.Body)
			}
			respHeader := x402.ResponseHeaderName(version)
			sr, err := x402.DecodeSettleResponse(respHeader, w.Header().Get(respHeader))
			if err != nil || !sr.Success || sr.Transaction == "" {
				t.Fatalf("%s: %v %+v", respHeader, err, sr)
			}
			if !strings.Contains(w.Header().Get("Access-Control-Expose-Headers"), "PAYMENT-RESPONSE") {
				t.Fatal("expose header missing on the paid answer")
			}
			last := up.lastRequest()
			if last.URL.Path != "/w/today" || last.URL.RawQuery != "x=1" {
				t.Fatalf("upstream got %s (stripPrefix)", last.URL)
			}
			if last.Header.Get("Authorization") != "s3cret" {
				t.Fatal("upstream auth header not set")
			}
			if last.Header.Get(x402.HeaderPaymentSignature) != "" || last.Header.Get(x402.HeaderXPayment) != "" {
				t.Fatal("payment header forwarded upstream")
			}
			// The facilitator saw our requirement in the buyer's version.
			if g.fac.lastVerify.X402Version != version {
				t.Fatalf("verify request version %d", g.fac.lastVerify.X402Version)
			}
			if v, s := g.fac.calls(); v != 1 || s != 1 {
				t.Fatalf("facilitator calls verify=%d settle=%d", v, s)
			}
			if counter(t, g, "charged", "weather") != 1 || counter(t, g, "atomic", "weather") != 1000 || counter(t, g, "verified", "weather") != 1 {
				t.Fatal("charge not counted")
			}
			last2 := counter(t, g, "last", "weather")
			if last2 < float64(before.Unix())-1 || last2 > float64(time.Now().Unix())+1 {
				t.Fatalf("last payment gauge %v", last2)
			}
		})
	}
}

func TestUpstreamErrorIsNotCharged(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	up.status.Store(500)
	g := newGate(t, proxyDoc(up.URL))
	name, value := newBuyer(t).pay(t, g.evm, 2, challenge(t, g.h, "/joke"))
	r := httptest.NewRequest(http.MethodGet, "/joke", nil)
	r.Header.Set(name, value)
	w := g.do(r)
	if w.Code != 500 || w.Body.String() != `{"weather":"sunny"}` {
		t.Fatalf("want the upstream's 500 passed through, got %d %s", w.Code, w.Body)
	}
	if w.Header().Get(x402.HeaderPaymentResponse) != "" {
		t.Fatal("payment response on an upstream error")
	}
	if _, s := g.fac.calls(); s != 0 {
		t.Fatal("settled after an upstream error")
	}
	if counter(t, g, "charged", "jokes") != 0 {
		t.Fatal("charged for an upstream error")
	}
	// The authorization was not spent: the buyer may retry with it.
	up.status.Store(200)
	w = g.do(r.Clone(context.Background()))
	if w.Code != 200 || counter(t, g, "charged", "jokes") != 1 {
		t.Fatalf("retry with the same unspent authorization: %d", w.Code)
	}
}

func TestUpstreamUnreachableAndTooLarge(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	g := newGate(t, proxyDoc(up.URL)+"maxResponseBytes: 8\n")
	name, value := newBuyer(t).pay(t, g.evm, 2, challenge(t, g.h, "/joke"))
	r := httptest.NewRequest(http.MethodGet, "/joke", nil)
	r.Header.Set(name, value)
	w := g.do(r)
	if w.Code != http.StatusBadGateway || strings.Contains(w.Body.String(), "sunny") {
		t.Fatalf("too large: %d %s", w.Code, w.Body)
	}
	up.Close()
	w = g.do(r.Clone(context.Background()))
	if w.Code != http.StatusBadGateway {
		t.Fatalf("unreachable: %d", w.Code)
	}
	if _, s := g.fac.calls(); s != 0 || counter(t, g, "charged", "jokes") != 0 {
		t.Fatal("settled without a delivered answer")
	}
}

func TestFacilitatorFailureNeverReachesUpstream(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		err    error
		status int
		reason string
	}{
		{"error", errors.New("facilitator answered 500"), http.StatusBadGateway, ReasonFacilitatorError},
		{"timeout", context.DeadlineExceeded, http.StatusServiceUnavailable, ReasonFacilitatorUnavailable},
		{"refused", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}, http.StatusServiceUnavailable, ReasonFacilitatorUnavailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			up := newUpstream(t)
			g := newGate(t, proxyDoc(up.URL))
			g.fac.verify = func(x402.VerifyRequest) (*x402.VerifyResponse, error) { return nil, tc.err }
			name, value := newBuyer(t).pay(t, g.evm, 2, challenge(t, g.h, "/joke"))
			r := httptest.NewRequest(http.MethodGet, "/joke", nil)
			r.Header.Set(name, value)
			w := g.do(r)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d", w.Code, tc.status)
			}
			if up.hits.Load() != 0 {
				t.Fatal("upstream called though the facilitator failed")
			}
			if failures(g, "jokes", tc.reason) != 1 {
				t.Fatalf("failure reason %s not counted", tc.reason)
			}
		})
	}
}

func TestFacilitatorTimeoutIsEnforced(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	g := newGate(t, proxyDoc(up.URL)+"facilitatorTimeout: 50ms\n")
	// The facilitator answers only when the gate gives up on it (its
	// context ends), or says "valid" after 10 s if the gate never does.
	g.fac.verifyCtx = func(ctx context.Context, _ x402.VerifyRequest) (*x402.VerifyResponse, error) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(10 * time.Second):
			return &x402.VerifyResponse{IsValid: true}, nil
		}
	}
	name, value := newBuyer(t).pay(t, g.evm, 2, challenge(t, g.h, "/joke"))
	r := httptest.NewRequest(http.MethodGet, "/joke", nil)
	r.Header.Set(name, value)
	start := time.Now()
	w := g.do(r)
	if took := time.Since(start); w.Code != http.StatusServiceUnavailable || up.hits.Load() != 0 || took > 5*time.Second {
		t.Fatalf("status %d hits %d after %s, want 503 and no upstream call after about 50ms", w.Code, up.hits.Load(), took)
	}
}

func TestSettleFailures(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	g := newGate(t, "facilitatorTimeout: 50ms\n"+proxyDoc(up.URL))
	g.fac.settle = func(x402.SettleRequest) (*x402.SettleResponse, error) {
		return &x402.SettleResponse{Success: false, ErrorReason: x402.ReasonInsufficientFunds, Network: "eip155:84532"}, nil
	}
	name, value := newBuyer(t).pay(t, g.evm, 2, challenge(t, g.h, "/joke"))
	r := httptest.NewRequest(http.MethodGet, "/joke", nil)
	r.Header.Set(name, value)
	w := g.do(r)
	if w.Code != http.StatusPaymentRequired || strings.Contains(w.Body.String(), "sunny") {
		t.Fatalf("settle refused: %d %s", w.Code, w.Body)
	}
	sr, err := x402.DecodeSettleResponse(x402.HeaderPaymentResponse, w.Header().Get(x402.HeaderPaymentResponse))
	if err != nil || sr.Success || sr.ErrorReason != x402.ReasonInsufficientFunds {
		t.Fatalf("PAYMENT-RESPONSE on failure: %v %+v", err, sr)
	}
	if counter(t, g, "charged", "jokes") != 0 || failures(g, "jokes", x402.ReasonInsufficientFunds) != 1 {
		t.Fatal("settle failure counted wrong")
	}

	// A settle that keeps erroring leaves the outcome unknown: asked again
	// until the settle deadline (4 × 50ms), then 503 settlement_pending,
	// the answer withheld and kept; the same payment again is answered the
	// same while the outcome stays unknown, without a new verify.
	g.fac.settle = func(x402.SettleRequest) (*x402.SettleResponse, error) { return nil, errors.New("boom") }
	name, value = newBuyer(t).pay(t, g.evm, 2, challenge(t, g.h, "/joke"))
	r = httptest.NewRequest(http.MethodGet, "/joke", nil)
	r.Header.Set(name, value)
	_, settlesBefore := g.fac.calls()
	if w := g.do(r); w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), ReasonSettlementPending) || strings.Contains(w.Body.String(), "sunny") {
		t.Fatalf("settle error: %d %s", w.Code, w.Body)
	}
	verifies, settles := g.fac.calls()
	if settles-settlesBefore < 2 {
		t.Errorf("an unknown settle outcome was asked %d times, want again until the deadline", settles-settlesBefore)
	}
	if got := testutil.ToFloat64(g.metrics.Settlements.WithLabelValues(SettleResultUnknown)); got != 1 {
		t.Errorf("settlements{unknown} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(g.metrics.Settlements.WithLabelValues(SettleResultRefused)); got != 1 {
		t.Errorf("settlements{refused} = %v, want 1", got)
	}
	if w := g.do(r.Clone(context.Background())); w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), ReasonSettlementPending) {
		t.Fatalf("asked again while the settlement is unknown: %d %s", w.Code, w.Body)
	}
	if v, _ := g.fac.calls(); v != verifies {
		t.Fatal("facilitator asked again about a spent authorization")
	}
}

func TestUnknownSettleOutcomeIsAskedAgainAndServed(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	g := newGate(t, "facilitatorTimeout: 1s\n"+proxyDoc(up.URL))
	var keys []string
	var mu sync.Mutex
	fails := 2
	g.fac.settleCtx = func(ctx context.Context, _ x402.SettleRequest) (*x402.SettleResponse, error) {
		mu.Lock()
		defer mu.Unlock()
		keys = append(keys, x402.IdempotencyKey(ctx))
		if fails > 0 {
			fails--
			if fails == 0 {
				return nil, &httpStatusError{status: http.StatusInternalServerError}
			}
			return nil, context.DeadlineExceeded
		}
		return &x402.SettleResponse{Success: true, Transaction: "0x" + strings.Repeat("cd", 32), Network: "eip155:84532"}, nil
	}
	name, value := newBuyer(t).pay(t, g.evm, 2, challenge(t, g.h, "/joke"))
	r := httptest.NewRequest(http.MethodGet, "/joke", nil)
	r.Header.Set(name, value)
	w := g.do(r)
	if w.Code != 200 || !strings.Contains(w.Body.String(), "sunny") {
		t.Fatalf("settled after two unknown outcomes: %d %s", w.Code, w.Body)
	}
	sr, err := x402.DecodeSettleResponse(x402.HeaderPaymentResponse, w.Header().Get(x402.HeaderPaymentResponse))
	if err != nil || !sr.Success || sr.Transaction != "0x"+strings.Repeat("cd", 32) {
		t.Fatalf("payment response: %v %+v", err, sr)
	}
	if len(keys) != 3 || keys[0] == "" || keys[0] != keys[1] || keys[1] != keys[2] {
		t.Fatalf("idempotency keys of the attempts: %q, want three equal, non-empty", keys)
	}
	if got := testutil.ToFloat64(g.metrics.Settlements.WithLabelValues(SettleResultSettledAfterRetry)); got != 1 {
		t.Errorf("settlements{settled_after_retry} = %v, want 1", got)
	}
	if counter(t, g, "charged", "jokes") != 1 {
		t.Error("not counted as charged")
	}
}

// httpStatusError is a facilitator failure with an HTTP status.
type httpStatusError struct{ status int }

func (e *httpStatusError) Error() string   { return http.StatusText(e.status) }
func (e *httpStatusError) HTTPStatus() int { return e.status }

func TestVerifyInvalidIs402(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	g := newGate(t, proxyDoc(up.URL))
	g.fac.verify = func(x402.VerifyRequest) (*x402.VerifyResponse, error) {
		return &x402.VerifyResponse{IsValid: false, InvalidReason: x402.ReasonInvalidSignature}, nil
	}
	name, value := newBuyer(t).pay(t, g.evm, 1, challenge(t, g.h, "/joke"))
	r := httptest.NewRequest(http.MethodGet, "/joke", nil)
	r.Header.Set(name, value)
	w := g.do(r)
	body := decodeJSON(t, w.Body.Bytes())
	if w.Code != 402 || body["x402Version"] != float64(1) || body["error"] != x402.ReasonInvalidSignature {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if up.hits.Load() != 0 || failures(g, "jokes", x402.ReasonInvalidSignature) != 1 {
		t.Fatal("invalid payment reached upstream or was not counted")
	}
	g.fac.verify = func(x402.VerifyRequest) (*x402.VerifyResponse, error) {
		return &x402.VerifyResponse{IsValid: false, InvalidReason: "made_up_reason"}, nil
	}
	g.do(r.Clone(context.Background()))
	if failures(g, "jokes", ReasonOther) != 1 {
		t.Fatal("unknown reason not mapped to other")
	}
}

func TestMalformedPaymentIs400NamingTheField(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	g := newGate(t, proxyDoc(up.URL))
	bad, _ := x402.EncodeHeader(map[string]any{"x402Version": 2, "accepted": map[string]any{"scheme": "exact", "network": "eip155:84532"},
		"payload": map[string]any{"signature": "0x00", "authorization": map[string]any{"from": "0x1"}}})
	for _, tc := range []struct{ header, value, field string }{
		{x402.HeaderPaymentSignature, bad, "payload.authorization.to"},
		{x402.HeaderPaymentSignature, "%%%not-base64", ""},
		{x402.HeaderXPayment, "eyJ4NDAyVmVyc2lvbiI6MX0=", "scheme"},
	} {
		r := httptest.NewRequest(http.MethodGet, "/joke", nil)
		r.Header.Set(tc.header, tc.value)
		w := g.do(r)
		body := decodeJSON(t, w.Body.Bytes())
		if w.Code != http.StatusBadRequest || body["header"] != tc.header || (tc.field != "" && body["field"] != tc.field) {
			t.Fatalf("%s %q: %d %s", tc.header, tc.value, w.Code, w.Body)
		}
		if w.Header().Get("Access-Control-Expose-Headers") == "" {
			t.Fatal("no CORS on the 400")
		}
	}
	// An authorization field that parses as JSON but not as a value.
	req := challenge(t, g.h, "/joke")
	p, _ := x402.NewExactPayment(2, req, x402.ExactEVMPayload{Signature: "0x01", Authorization: x402.EIP3009Authorization{
		From: "0x857b06519E91e3A54538791bDbb0E22373e36b66", To: testPayTo, Value: "10000", ValidAfter: "0", ValidBefore: "99999999999", Nonce: "0x1234"}})
	name, value, _ := p.Encode()
	r := httptest.NewRequest(http.MethodGet, "/joke", nil)
	r.Header.Set(name, value)
	w := g.do(r)
	if body := decodeJSON(t, w.Body.Bytes()); w.Code != 400 || body["field"] != "payload.authorization.nonce" {
		t.Fatalf("bad nonce: %d %s", w.Code, w.Body)
	}
	if v, _ := g.fac.calls(); v != 0 || up.hits.Load() != 0 {
		t.Fatal("malformed payments reached the facilitator or upstream")
	}
	if failures(g, "jokes", ReasonMalformedPayment) != 4 {
		t.Fatalf("malformed not counted: %v", failures(g, "jokes", ReasonMalformedPayment))
	}
}

func TestRequirementMismatchSkipsFacilitator(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	g := newGate(t, proxyDoc(up.URL))
	b := newBuyer(t)
	weather := challenge(t, g.h, "/weather/x") // 0.001
	cases := []struct {
		name   string
		mutate func(*x402.Requirement)
		reason string
	}{
		{"cheaper route's price", func(r *x402.Requirement) {}, x402.ReasonNoMatchingRequirement},
		{"other network", func(r *x402.Requirement) { r.Network = "eip155:8453"; r.NetworkV1 = "base" }, x402.ReasonInvalidNetwork},
		{"other payTo", func(r *x402.Requirement) { r.PayTo = "0x857b06519E91e3A54538791bDbb0E22373e36b66" }, x402.ReasonNoMatchingRequirement},
	}
	for _, tc := range cases {
		req := weather
		tc.mutate(&req)
		name, value := b.pay(t, g.evm, 2, req)
		r := httptest.NewRequest(http.MethodGet, "/joke", nil) // costs 0.01
		r.Header.Set(name, value)
		w := g.do(r)
		if w.Code != 402 || decodeJSON(t, w.Body.Bytes())["error"] != tc.reason {
			t.Fatalf("%s: %d %s", tc.name, w.Code, w.Body)
		}
	}
	// v1 has no echoed requirement: the authorization's value decides.
	name, value := b.pay(t, g.evm, 1, weather)
	r := httptest.NewRequest(http.MethodGet, "/joke", nil)
	r.Header.Set(name, value)
	if w := g.do(r); w.Code != 402 || decodeJSON(t, w.Body.Bytes())["error"] != x402.ReasonValueMismatch {
		t.Fatalf("v1 value mismatch: %d %s", w.Code, w.Body)
	}
	if v, _ := g.fac.calls(); v != 0 || up.hits.Load() != 0 {
		t.Fatal("mismatched payments reached the facilitator or upstream")
	}
}

func TestSamePaymentTwiceIsRefused(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	g := newGate(t, proxyDoc(up.URL))
	name, value := newBuyer(t).pay(t, g.evm, 2, challenge(t, g.h, "/joke"))
	r := httptest.NewRequest(http.MethodGet, "/joke", nil)
	r.Header.Set(name, value)
	if w := g.do(r); w.Code != 200 {
		t.Fatalf("first: %d", w.Code)
	}
	w := g.do(r.Clone(context.Background()))
	if w.Code != 402 || decodeJSON(t, w.Body.Bytes())["error"] != ReasonAuthorizationReused {
		t.Fatalf("second: %d %s", w.Code, w.Body)
	}
	if v, s := g.fac.calls(); v != 1 || s != 1 || up.hits.Load() != 1 {
		t.Fatalf("second use reached the facilitator (%d,%d) or upstream (%d)", v, s, up.hits.Load())
	}
}

func TestConcurrentUseOfOneAuthorization(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	g := newGate(t, proxyDoc(up.URL))
	entered := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	g.fac.verify = func(x402.VerifyRequest) (*x402.VerifyResponse, error) {
		once.Do(func() { close(entered) })
		<-release
		return &x402.VerifyResponse{IsValid: true}, nil
	}
	name, value := newBuyer(t).pay(t, g.evm, 2, challenge(t, g.h, "/joke"))
	r := httptest.NewRequest(http.MethodGet, "/joke", nil)
	r.Header.Set(name, value)
	first := make(chan int)
	go func() { first <- g.do(r.Clone(context.Background())).Code }()
	<-entered
	w := g.do(r.Clone(context.Background()))
	close(release)
	if w.Code != 402 || decodeJSON(t, w.Body.Bytes())["error"] != x402.ReasonAuthorizationInFlight {
		t.Fatalf("concurrent second: %d %s", w.Code, w.Body)
	}
	if code := <-first; code != 200 {
		t.Fatalf("first: %d", code)
	}
	if up.hits.Load() != 1 || counter(t, g, "charged", "jokes") != 1 {
		t.Fatal("served twice")
	}
}

func TestUnmatchedPaths(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	// The default is deny: an unmatched path reaches no upstream.
	g := newGate(t, proxyDoc(up.URL))
	if w := g.do(httptest.NewRequest(http.MethodGet, "/about", nil)); w.Code != 404 || up.hits.Load() != 0 {
		t.Fatalf("default unmatched: %d, upstream hits %d", w.Code, up.hits.Load())
	}
	if w := g.do(httptest.NewRequest(http.MethodGet, "/health", nil)); w.Code != 200 || counter(t, g, "requests", "health") != 1 {
		t.Fatalf("free route: %d", w.Code)
	}

	// unmatched: free passes through to a global upstream that serves
	// nothing priced; the paid routes have an upstream of their own.
	site := newUpstream(t)
	paidHits := up.hits.Load()
	doc := strings.Replace(proxyDoc(site.URL), "    offerName: jokes\n", "    offerName: jokes\n    upstream: "+up.URL+"\n", 1) + "unmatched: free\n"
	doc = strings.Replace(doc, site.URL+"/w", up.URL+"/w", 1)
	g = newGate(t, doc)
	w := g.do(httptest.NewRequest(http.MethodGet, "/about", nil))
	var err error
	if w.Code != 200 || w.Header().Get("X-Upstream-Path") != "/about" || site.hits.Load() != 1 {
		t.Fatalf("free pass-through: %d", w.Code)
	}
	// Path tricks do not dodge a price.
	for _, p := range []string{"/about/../joke", "//joke", "/./joke", "/about/%2e%2e/joke"} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if r.URL, err = url.ParseRequestURI(p); err != nil {
			t.Fatal(err)
		}
		if w := g.do(r); w.Code != 402 {
			t.Fatalf("%s: %d", p, w.Code)
		}
	}
	// Spellings an upstream might resolve differently from the matcher
	// (a backslash, a disguised dot segment, double encoding) are refused.
	for _, p := range []string{"/about/..;/joke", "/about\\..\\joke", "/about/%252e%252e/joke", "/about/.../joke", "/joke%00.png"} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		if r.URL, err = url.ParseRequestURI(p); err != nil {
			t.Fatal(err)
		}
		if w := g.do(r); w.Code != 400 {
			t.Fatalf("%s: %d, want 400", p, w.Code)
		}
	}
	if site.hits.Load() != 1 {
		t.Fatalf("a refused spelling reached the free upstream (%d hits)", site.hits.Load())
	}
	if n := up.hits.Load() - paidHits; n != 0 {
		t.Fatalf("%d unpaid requests reached the priced upstream", n)
	}

	// The same free fallback on the upstream that serves the paid routes
	// is refused at load.
	_, err = ParseAndCompile("pricing.yaml", []byte(proxyDoc(up.URL)+"unmatched: free\n"), g.evm, Environment{Getenv: func(string) string { return "s3cret" }})
	if err == nil || !strings.Contains(err.Error(), "unmatched: free forwards every path no route matches to "+up.URL+", which also serves the priced routes[0] (/weather/*), routes[2] (/joke)") {
		t.Fatalf("unsafe fallback: %v", err)
	}
}

func forwardAuthDoc(extra string) string {
	return `payTo: 0x209693Bc6afc0C5328bA36FaF03C514EF312287C
chain: base-sepolia
facilitatorURL: http://127.0.0.1:4021
mode: forwardAuth
` + extra + `routes:
  - pattern: /joke
    price: "0.01"
    offerName: jokes
`
}

func faRequest(uri string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "http://verifier:8080/verify", nil)
	if uri != "" {
		r.Header.Set(HeaderForwardedURI, uri)
	}
	r.Header.Set(HeaderForwardedHost, "api.example.com")
	r.Header.Set(HeaderForwardedProto, "https")
	r.Header.Set(HeaderForwardedMethod, "GET")
	return r
}

func TestForwardAuth(t *testing.T) {
	t.Parallel()
	g := newGate(t, forwardAuthDoc(""))
	if w := g.do(faRequest("")); w.Code != http.StatusForbidden {
		t.Fatalf("missing X-Forwarded-Uri: %d", w.Code)
	}
	if w := g.do(httptest.NewRequest(http.MethodGet, "/joke", nil)); w.Code != 404 {
		t.Fatalf("proxy path in forwardAuth mode: %d", w.Code)
	}
	if w := g.do(faRequest("/free/thing")); w.Code != 404 {
		t.Fatalf("unmatched (deny by default): %d", w.Code)
	}
	if w := newGate(t, forwardAuthDoc("unmatched: free\n")).do(faRequest("/free/thing")); w.Code != 200 {
		t.Fatalf("unmatched: free: %d", w.Code)
	}
	if w := g.do(faRequest("/joke;x/..;/joke")); w.Code != 400 {
		t.Fatalf("disguised dot segment: %d", w.Code)
	}
	w := g.do(faRequest("/joke?q=1"))
	c, err := x402.ParseChallenge(w.Header(), w.Body.Bytes())
	if w.Code != 402 || err != nil || c.Requirements[0].Resource.URL != "https://api.example.com/joke?q=1" {
		t.Fatalf("unpaid: %d %v", w.Code, err)
	}

	// settle-first (default): charged before the 200.
	name, value := newBuyer(t).pay(t, g.evm, 2, c.Requirements[0])
	r := faRequest("/joke?q=1")
	r.Header.Set(name, value)
	w = g.do(r)
	if w.Code != 200 || w.Header().Get(x402.HeaderPaymentResponse) == "" {
		t.Fatalf("settle-first: %d %v", w.Code, w.Header())
	}
	if _, s := g.fac.calls(); s != 1 || counter(t, g, "charged", "jokes") != 1 {
		t.Fatal("settle-first did not charge")
	}
	if w := g.do(r.Clone(context.Background())); w.Code != 402 {
		t.Fatalf("replay through ForwardAuth: %d", w.Code)
	}
}

func TestForwardAuthVerifyOnly(t *testing.T) {
	t.Parallel()
	g := newGate(t, forwardAuthDoc("forwardAuth: verify-only\nunmatched: deny\n"))
	if w := g.do(faRequest("/other")); w.Code != 404 {
		t.Fatalf("deny: %d", w.Code)
	}
	w := g.do(faRequest("/joke"))
	c, err := x402.ParseChallenge(w.Header(), w.Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	name, value := newBuyer(t).pay(t, g.evm, 1, c.Requirements[0])
	r := faRequest("/joke")
	r.Header.Set(name, value)
	if w := g.do(r); w.Code != 200 || w.Header().Get(x402.HeaderXPaymentResponse) != "" {
		t.Fatalf("verify-only: %d %v", w.Code, w.Header())
	}
	if v, s := g.fac.calls(); v != 1 || s != 0 {
		t.Fatalf("verify-only calls verify=%d settle=%d", v, s)
	}
	if counter(t, g, "verified", "jokes") != 1 || counter(t, g, "charged", "jokes") != 0 {
		t.Fatal("verify-only must count verified, not charged")
	}
	// The gate lets one authorization through once.
	if w := g.do(r.Clone(context.Background())); w.Code != 402 {
		t.Fatalf("verify-only reuse: %d", w.Code)
	}
}
