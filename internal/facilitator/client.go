package facilitator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/obolstack/obol/internal/x402"
)

// Operations, as in Error.Op and WithOpTimeout.
const (
	OpVerify    = "verify"
	OpSettle    = "settle"
	OpSupported = "supported"
)

// Default per-operation timeouts of a Client.
const (
	DefaultVerifyTimeout    = 10 * time.Second
	DefaultSettleTimeout    = 60 * time.Second
	DefaultSupportedTimeout = 10 * time.Second
	maxResponseBytes        = 1 << 20
)

// Error is a facilitator call that produced no usable answer: the network
// failed, the call timed out, the facilitator answered 5xx, or its answer
// could not be understood. A caller must not serve the paid resource: answer
// 502 (or 503 when Temporary) and let the buyer retry. Use errors.As.
type Error struct {
	Op         string // verify, settle or supported
	StatusCode int    // HTTP status, 0 when no answer arrived
	Reason     string // reason code from the answer, if any
	Message    string // message from the answer, or a description
	// Temporary is true for network failures, timeouts and 429/502/503/504:
	// asking again later may work.
	Temporary bool
	Err       error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "facilitator %s", e.Op)
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.StatusCode)
	}
	if e.Reason != "" {
		fmt.Fprintf(&b, ": %s", e.Reason)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Client talks to an x402 facilitator over HTTP.
type Client struct {
	base     *url.URL
	hc       *http.Client
	timeouts map[string]time.Duration
	explicit map[string]bool // timeouts set by an option, not defaults
}

// ClientOption configures a Client.
type ClientOption func(*Client)

// WithHTTPClient uses hc for requests (its own Timeout, if any, applies too).
func WithHTTPClient(hc *http.Client) ClientOption {
	return func(c *Client) {
		if hc != nil {
			c.hc = hc
		}
	}
}

// WithTimeout sets the timeout of every operation.
func WithTimeout(d time.Duration) ClientOption {
	return func(c *Client) {
		for op := range c.timeouts {
			c.timeouts[op] = d
			c.explicit[op] = true
		}
	}
}

// WithOpTimeout sets the timeout of one operation (OpVerify, OpSettle,
// OpSupported). Defaults: verify 10s, settle 60s, supported 10s. A default
// applies only when the caller's context has no deadline: a caller that
// sets one (the verifier's facilitatorTimeout) decides alone.
func WithOpTimeout(op string, d time.Duration) ClientOption {
	return func(c *Client) {
		if _, ok := c.timeouts[op]; ok {
			c.timeouts[op] = d
			c.explicit[op] = true
		}
	}
}

// NewClient returns a client of the facilitator at baseURL (its /verify,
// /settle and /supported). The URL must be https unless its host is
// loopback (127.0.0.0/8, ::1, localhost).
func NewClient(baseURL string, opts ...ClientOption) (*Client, error) {
	u, err := url.Parse(strings.TrimSpace(baseURL))
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("invalid facilitator URL %q: want https://host[:port][/path]", baseURL)
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("facilitator URL %q uses plain http: payments must travel over https (http is allowed only for loopback hosts such as 127.0.0.1 or localhost)", baseURL)
	}
	if u.User != nil {
		return nil, fmt.Errorf("facilitator URL %q carries credentials: remove them from the URL", u.Redacted())
	}
	u.RawQuery, u.Fragment = "", ""
	c := &Client{base: u, hc: &http.Client{}, timeouts: map[string]time.Duration{
		OpVerify: DefaultVerifyTimeout, OpSettle: DefaultSettleTimeout, OpSupported: DefaultSupportedTimeout,
	}, explicit: map[string]bool{}}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// URL returns the facilitator's base URL.
func (c *Client) URL() string { return c.base.String() }

func (c *Client) endpoint(op string) string {
	u := *c.base
	u.Path = strings.TrimRight(u.Path, "/") + "/" + op
	return u.String()
}

// Verify asks the facilitator whether the payment is valid for the
// requirement. A payment problem is (resp with IsValid false, nil); a
// failure of the facilitator is a *Error.
func (c *Client) Verify(ctx context.Context, req x402.VerifyRequest) (*x402.VerifyResponse, error) {
	status, body, err := c.do(ctx, OpVerify, http.MethodPost, req)
	if err != nil {
		return nil, err
	}
	var resp x402.VerifyResponse
	var shape struct {
		IsValid        *bool  `json:"isValid"`
		InvalidReason  string `json:"invalidReason"`
		InvalidMessage string `json:"invalidMessage"`
		Error          any    `json:"error"`
		Message        string `json:"message"`
	}
	perr := json.Unmarshal(body, &shape)
	switch {
	case status == http.StatusOK:
		if perr != nil || shape.IsValid == nil {
			return nil, c.badAnswer(OpVerify, status, body, perr)
		}
		if err := json.Unmarshal(body, &resp); err != nil {
			return nil, c.badAnswer(OpVerify, status, body, err)
		}
		if !resp.IsValid && resp.InvalidReason == "" {
			resp.InvalidReason = x402.ReasonInvalidPayload
		}
		if resp.IsValid {
			resp.InvalidReason, resp.InvalidMessage = "", ""
		}
		return &resp, nil
	case paymentProblemStatus(status):
		if perr != nil {
			return nil, c.badAnswer(OpVerify, status, body, perr)
		}
		_ = json.Unmarshal(body, &resp)
		resp.IsValid = false
		if resp.InvalidReason == "" {
			resp.InvalidReason, resp.InvalidMessage = reasonFromError(shape.Error, shape.Message, status)
		}
		return &resp, nil
	default:
		return nil, c.statusError(OpVerify, status, body, shape.InvalidReason, shape.InvalidMessage, shape.Error, shape.Message)
	}
}

// Settle asks the facilitator to settle the payment. A payment problem is
// (resp with Success false, nil); a failure of the facilitator is a *Error.
// A successful answer always carries the transaction hash.
func (c *Client) Settle(ctx context.Context, req x402.SettleRequest) (*x402.SettleResponse, error) {
	status, body, err := c.do(ctx, OpSettle, http.MethodPost, req)
	if err != nil {
		return nil, err
	}
	var resp x402.SettleResponse
	var shape struct {
		Success      *bool  `json:"success"`
		ErrorReason  string `json:"errorReason"`
		ErrorMessage string `json:"errorMessage"`
		Error        any    `json:"error"`
		Message      string `json:"message"`
	}
	perr := json.Unmarshal(body, &shape)
	network := networkAsSent(req, "")
	switch {
	case status == http.StatusOK:
		if perr != nil || shape.Success == nil {
			return nil, c.badAnswer(OpSettle, status, body, perr)
		}
		if err := json.Unmarshal(body, &resp); err != nil {
			return nil, c.badAnswer(OpSettle, status, body, err)
		}
		if resp.Success && resp.Transaction == "" {
			return nil, &Error{Op: OpSettle, StatusCode: status, Message: "the facilitator reported success without a transaction hash"}
		}
		if !resp.Success {
			resp.Transaction = ""
			if resp.ErrorReason == "" {
				resp.ErrorReason = x402.ReasonUnexpectedSettleError
			}
		}
		if resp.Network == "" {
			resp.Network = network
		}
		return &resp, nil
	case paymentProblemStatus(status):
		if perr != nil {
			return nil, c.badAnswer(OpSettle, status, body, perr)
		}
		_ = json.Unmarshal(body, &resp)
		resp.Success, resp.Transaction = false, ""
		if resp.ErrorReason == "" {
			resp.ErrorReason, resp.ErrorMessage = reasonFromError(shape.Error, shape.Message, status)
		}
		if resp.Network == "" {
			resp.Network = network
		}
		return &resp, nil
	default:
		return nil, c.statusError(OpSettle, status, body, shape.ErrorReason, shape.ErrorMessage, shape.Error, shape.Message)
	}
}

// Supported lists what the facilitator settles.
func (c *Client) Supported(ctx context.Context) (*x402.SupportedResponse, error) {
	status, body, err := c.do(ctx, OpSupported, http.MethodGet, nil)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		var shape struct {
			Error   any    `json:"error"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(body, &shape)
		return nil, c.statusError(OpSupported, status, body, "", "", shape.Error, shape.Message)
	}
	var resp x402.SupportedResponse
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, c.badAnswer(OpSupported, status, body, err)
	}
	return &resp, nil
}

func (c *Client) do(ctx context.Context, op, method string, payload any) (int, []byte, error) {
	timeout := c.timeouts[op]
	if dl, ok := ctx.Deadline(); ok && !c.explicit[op] {
		timeout = time.Until(dl)
	} else {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	var rd io.Reader
	if payload != nil {
		b, err := json.Marshal(payload)
		if err != nil {
			return 0, nil, &Error{Op: op, Message: "encode request", Err: err}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.endpoint(op), rd)
	if err != nil {
		return 0, nil, &Error{Op: op, Message: "build request", Err: err}
	}
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if k := x402.IdempotencyKey(ctx); k != "" && op == OpSettle {
		req.Header.Set(x402.HeaderIdempotencyKey, k)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, &Error{Op: op, Temporary: true, Message: transportMessage(ctx, timeout), Err: err}
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxResponseBytes+1))
	if err != nil {
		return 0, nil, &Error{Op: op, StatusCode: res.StatusCode, Temporary: true, Message: "reading the answer failed: " + transportMessage(ctx, timeout), Err: err}
	}
	if len(body) > maxResponseBytes {
		return 0, nil, &Error{Op: op, StatusCode: res.StatusCode, Message: fmt.Sprintf("answer larger than %d bytes", maxResponseBytes)}
	}
	return res.StatusCode, body, nil
}

func transportMessage(ctx context.Context, timeout time.Duration) string {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Sprintf("no answer within %s", timeout)
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return "canceled"
	}
	return "request failed"
}

func (c *Client) badAnswer(op string, status int, body []byte, err error) *Error {
	return &Error{Op: op, StatusCode: status, Message: "the facilitator's answer is not a valid x402 " + op + " response: " + snippet(body), Err: err}
}

func (c *Client) statusError(op string, status int, body []byte, reason, msg string, errField any, message string) *Error {
	e := &Error{Op: op, StatusCode: status, Reason: x402.CanonicalReason(reason), Message: msg,
		Temporary: status == http.StatusTooManyRequests || status == http.StatusBadGateway ||
			status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout}
	if e.Message == "" {
		e.Message = errorText(errField, message)
	}
	if e.Message == "" {
		e.Message = snippet(body)
	}
	return e
}

// paymentProblemStatus reports whether a 4xx status speaks about the
// payment. 401/403/404/405/407/408/429 speak about the facilitator or how
// it is reached (credentials, URL, load) and are errors.
func paymentProblemStatus(status int) bool {
	if status < 400 || status >= 500 {
		return false
	}
	switch status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusMethodNotAllowed,
		http.StatusProxyAuthRequired, http.StatusRequestTimeout, http.StatusTooManyRequests:
		return false
	}
	return true
}

// reasonCode matches the shape of x402 reason codes.
var reasonCode = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)+$`)

// reasonFromError turns a 4xx answer with only {"error": ...} into a
// reason and message: the message itself when it is a reason code, else
// invalid_payload with the message.
func reasonFromError(errField any, message string, status int) (reason, msg string) {
	text := errorText(errField, message)
	if reasonCode.MatchString(text) {
		return x402.CanonicalReason(text), message
	}
	if text == "" {
		text = fmt.Sprintf("the facilitator answered HTTP %d without a reason", status)
	}
	return x402.ReasonInvalidPayload, text
}

func errorText(errField any, message string) string {
	switch v := errField.(type) {
	case string:
		return strings.TrimSpace(v)
	case map[string]any:
		for _, k := range []string{"reason", "code", "message"} {
			if s, ok := v[k].(string); ok && s != "" {
				return s
			}
		}
	}
	return strings.TrimSpace(message)
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	if s == "" {
		return "(empty body)"
	}
	return fmt.Sprintf("%q", s)
}
