package facilitator

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/obolstack/obol/internal/x402"
)

func TestNewClientURLRules(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"https://x402.org/facilitator", "http://127.0.0.1:4021", "http://localhost:4021/", "http://[::1]:4021", "http://127.1.2.3"} {
		if _, err := NewClient(ok); err != nil {
			t.Errorf("NewClient(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"http://facilitator.example.com", "http://10.0.0.1:4021", "ftp://x", "127.0.0.1:4021", "", "https://user:pw@x.example"} {
		_, err := NewClient(bad)
		if err == nil {
			t.Errorf("NewClient(%q) accepted", bad)
			continue
		}
		if strings.HasPrefix(bad, "http://") && !strings.Contains(err.Error(), "https") {
			t.Errorf("NewClient(%q): %v does not say https is needed", bad, err)
		}
	}
	c, _ := NewClient("https://x.example/base/")
	if got := c.endpoint(OpVerify); got != "https://x.example/base/verify" {
		t.Errorf("endpoint %s", got)
	}
}

func fixed(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

func testRequest(t *testing.T) x402.VerifyRequest {
	return buildRequest(t, 2, vecRequirement(), vecRequirement(), vecPayload())
}

func TestClientFailureStyles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	type want struct {
		err       bool
		temporary bool
		status    int
		reason    string
		msg       string
		valid     bool
	}
	cases := []struct {
		name    string
		handler http.HandlerFunc
		verify  want
		settle  want
	}{
		{"200 valid / success",
			func(w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.URL.Path, "/settle") {
					fixed(200, `{"success":true,"payer":"0xabc","transaction":"0x01","network":"eip155:84532"}`)(w, r)
					return
				}
				fixed(200, `{"isValid":true,"payer":"0xabc"}`)(w, r)
			},
			want{valid: true}, want{valid: true}},
		{"style 1: 200 with isValid/success false",
			func(w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.URL.Path, "/settle") {
					fixed(200, `{"success":false,"errorReason":"insufficient_funds","errorMessage":"poor","transaction":"","network":"eip155:84532"}`)(w, r)
					return
				}
				fixed(200, `{"isValid":false,"invalidReason":"insufficient_funds","invalidMessage":"poor"}`)(w, r)
			},
			want{reason: "insufficient_funds", msg: "poor"}, want{reason: "insufficient_funds", msg: "poor"}},
		{"style 2: 400 with a reason body",
			func(w http.ResponseWriter, r *http.Request) {
				fixed(400, `{"isValid":false,"invalidReason":"invalid_payload","invalidMessage":"field nonce","success":false,"errorReason":"invalid_payload","errorMessage":"field nonce","transaction":"","network":"base-sepolia"}`)(w, r)
			},
			want{reason: "invalid_payload", msg: "field nonce"}, want{reason: "invalid_payload", msg: "field nonce"}},
		{"style 3: 400 with only error (a reason code)",
			fixed(400, `{"error":"invalid_exact_evm_payload_signature"}`),
			want{reason: "invalid_exact_evm_payload_signature"}, want{reason: "invalid_exact_evm_payload_signature"}},
		{"style 3: 422 with only error (prose)",
			fixed(422, `{"error":"Signature does not match"}`),
			want{reason: x402.ReasonInvalidPayload, msg: "Signature does not match"}, want{reason: x402.ReasonInvalidPayload, msg: "Signature does not match"}},
		{"5xx with a reason body",
			fixed(500, `{"isValid":false,"invalidReason":"unexpected_verify_error","invalidMessage":"rpc down","success":false,"errorReason":"unexpected_settle_error","errorMessage":"rpc down"}`),
			want{err: true, status: 500, reason: "unexpected_verify_error", msg: "rpc down"}, want{err: true, status: 500, reason: "unexpected_settle_error", msg: "rpc down"}},
		{"5xx with only error",
			fixed(503, `{"error":"overloaded"}`),
			want{err: true, temporary: true, status: 503, msg: "overloaded"}, want{err: true, temporary: true, status: 503, msg: "overloaded"}},
		{"502 from a proxy, HTML",
			fixed(502, `<html>bad gateway</html>`),
			want{err: true, temporary: true, status: 502, msg: "bad gateway"}, want{err: true, temporary: true, status: 502, msg: "bad gateway"}},
		{"200 that is not JSON",
			fixed(200, `ok`),
			want{err: true, status: 200}, want{err: true, status: 200}},
		{"200 JSON without isValid/success",
			fixed(200, `{"hello":"world"}`),
			want{err: true, status: 200}, want{err: true, status: 200}},
		{"400 that is not JSON",
			fixed(400, `bad request`),
			want{err: true, status: 400}, want{err: true, status: 400}},
		{"404 (wrong URL)",
			fixed(404, `{"error":"not found"}`),
			want{err: true, status: 404, msg: "not found"}, want{err: true, status: 404, msg: "not found"}},
		{"429 rate limited",
			fixed(429, `{"error":"slow down"}`),
			want{err: true, temporary: true, status: 429}, want{err: true, temporary: true, status: 429}},
		// Older spellings of a code read as the specification's, in every style.
		{"older codes, style 1",
			func(w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.URL.Path, "/settle") {
					fixed(200, `{"success":false,"errorReason":"invalid_exact_evm_transaction_failed","transaction":"","network":"eip155:84532"}`)(w, r)
					return
				}
				fixed(200, `{"isValid":false,"invalidReason":"invalid_exact_evm_payload_authorization_value"}`)(w, r)
			},
			want{reason: x402.ReasonValueMismatch}, want{reason: x402.ReasonInvalidTransactionState}},
		{"older code, style 3",
			fixed(400, `{"error":"invalid_exact_evm_payload_authorization_value"}`),
			want{reason: x402.ReasonValueMismatch}, want{reason: x402.ReasonValueMismatch}},
		{"older code, 5xx",
			fixed(500, `{"isValid":false,"invalidReason":"invalid_exact_evm_transaction_failed","success":false,"errorReason":"invalid_exact_evm_transaction_failed"}`),
			want{err: true, status: 500, reason: x402.ReasonInvalidTransactionState}, want{err: true, status: 500, reason: x402.ReasonInvalidTransactionState}},
		{"success without a transaction",
			func(w http.ResponseWriter, r *http.Request) {
				if strings.HasSuffix(r.URL.Path, "/settle") {
					fixed(200, `{"success":true,"transaction":"","network":"x"}`)(w, r)
					return
				}
				fixed(200, `{"isValid":true}`)(w, r)
			},
			want{valid: true}, want{err: true, status: 200, msg: "without a transaction"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hs := httptest.NewServer(c.handler)
			defer hs.Close()
			cl, err := NewClient(hs.URL)
			if err != nil {
				t.Fatal(err)
			}
			check := func(op string, w want, ok bool, reason, msg string, err error) {
				t.Helper()
				if w.err {
					var fe *Error
					if !errors.As(err, &fe) {
						t.Fatalf("%s: err %v, want *Error", op, err)
					}
					if fe.Op != op || fe.StatusCode != w.status || fe.Temporary != w.temporary || (w.reason != "" && fe.Reason != w.reason) || !strings.Contains(fe.Error(), w.msg) {
						t.Errorf("%s: %+v (%v), want status %d temporary %v reason %q msg %q", op, fe, fe, w.status, w.temporary, w.reason, w.msg)
					}
					return
				}
				if err != nil {
					t.Fatalf("%s: %v", op, err)
				}
				if ok != w.valid || reason != w.reason || !strings.Contains(msg, w.msg) {
					t.Errorf("%s: ok %v reason %q msg %q, want %v %q %q", op, ok, reason, msg, w.valid, w.reason, w.msg)
				}
			}
			v, err := cl.Verify(ctx, testRequest(t))
			if v != nil {
				check(OpVerify, c.verify, v.IsValid, v.InvalidReason, v.InvalidMessage, err)
			} else {
				check(OpVerify, c.verify, false, "", "", err)
			}
			s, err := cl.Settle(ctx, testRequest(t))
			if s != nil {
				check(OpSettle, c.settle, s.Success, s.ErrorReason, s.ErrorMessage, err)
				if s.Network == "" {
					t.Error("settle answer without network")
				}
				if !s.Success && s.Transaction != "" {
					t.Error("failed settle with a transaction")
				}
			} else {
				check(OpSettle, c.settle, false, "", "", err)
			}
		})
	}
}

func TestClientTimeoutsAndNetworkErrors(t *testing.T) {
	checkGoroutines(t)
	ctx := context.Background()
	block := make(chan struct{})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer hs.Close()
	defer close(block)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	cl, err := NewClient(hs.URL, WithHTTPClient(&http.Client{Transport: tr}), WithOpTimeout(OpVerify, 150*time.Millisecond), WithOpTimeout(OpSettle, 300*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		op      string
		timeout time.Duration
	}{{OpVerify, 150 * time.Millisecond}, {OpSettle, 300 * time.Millisecond}} {
		start := time.Now()
		if c.op == OpVerify {
			_, err = cl.Verify(ctx, testRequest(t))
		} else {
			_, err = cl.Settle(ctx, testRequest(t))
		}
		took := time.Since(start)
		var fe *Error
		if !errors.As(err, &fe) || !fe.Temporary || fe.StatusCode != 0 || !strings.Contains(fe.Message, "no answer within "+c.timeout.String()) {
			t.Errorf("%s: %v, want a temporary *Error naming the timeout", c.op, err)
		}
		// Not before the timeout; not long after it (room for a loaded machine).
		if took < c.timeout || took > c.timeout+5*time.Second {
			t.Errorf("%s took %s with a %s timeout", c.op, took, c.timeout)
		}
	}
	// Connection refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cl2, _ := NewClient("http://"+addr, WithHTTPClient(&http.Client{Transport: tr}), WithTimeout(time.Second))
	_, err = cl2.Supported(ctx)
	var fe *Error
	if !errors.As(err, &fe) || !fe.Temporary || fe.Op != OpSupported {
		t.Errorf("refused: %v", err)
	}
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Errorf("refused: the network error is not wrapped: %v", err)
	}
}
