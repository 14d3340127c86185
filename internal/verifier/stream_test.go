package verifier

import (
	"bufio"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
	"github.com/obolstack/obol/internal/x402"
)

func streamDoc(upstreamURL, settle string) string {
	return `payTo: 0x209693Bc6afc0C5328bA36FaF03C514EF312287C
chain: base-sepolia
facilitatorURL: http://127.0.0.1:4021
upstream: ` + upstreamURL + `
routes:
  - pattern: /chat/*
    price: "0.001"
    offerName: chat
    settle: ` + settle + `
`
}

// sseUpstream sends one event, then waits until release is closed (or
// 10 s pass) before sending the last one; finished is set when it has.
type sseUpstream struct {
	*httptest.Server
	release  chan struct{}
	finished atomic.Bool
	status   int
}

func newSSEUpstream(t *testing.T, status int) *sseUpstream {
	u := &sseUpstream{release: make(chan struct{}), status: status}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(u.status)
		_, _ = io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-u.release:
		case <-time.After(10 * time.Second):
		case <-r.Context().Done():
			return
		}
		u.finished.Store(true)
		_, _ = io.WriteString(w, "data: last\n\n")
	}))
	t.Cleanup(u.Close)
	return u
}

// paidStreamRequest sends a paid request for /chat/completions to the gate
// behind a real HTTP server.
func paidStreamRequest(t *testing.T, g *testGate) *http.Response {
	t.Helper()
	front := httptest.NewServer(g.h)
	t.Cleanup(front.Close)
	name, value := newBuyer(t).pay(t, g.evm, 2, challenge(t, g.h, "/chat/completions"))
	req, _ := http.NewRequest(http.MethodPost, front.URL+"/chat/completions", strings.NewReader(`{"stream":true}`))
	req.Header.Set(name, value)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Body.Close() })
	return res
}

// With settle: on-headers the buyer reads the first event while the
// upstream is still running, the payment response header comes with the
// headers, and the payment is settled once.
func TestOnHeadersStreamsPaidAnswer(t *testing.T) {
	t.Parallel()
	up := newSSEUpstream(t, http.StatusOK)
	g := newGate(t, streamDoc(up.URL, SettleOnHeaders))
	res := paidStreamRequest(t, g)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	if res.Header.Get(x402.HeaderPaymentResponse) == "" {
		t.Fatalf("no %s header with the streamed answer: %v", x402.HeaderPaymentResponse, res.Header)
	}
	br := bufio.NewReader(res.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	if up.finished.Load() {
		t.Fatal("the first event reached the buyer only after the upstream finished: the answer was buffered")
	}
	close(up.release)
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), "data: last") {
		t.Fatalf("rest of the stream: %q", rest)
	}
	if _, settles := g.fac.calls(); settles != 1 {
		t.Fatalf("%d settlements, want exactly 1", settles)
	}
	if got := counter(t, g, "charged", "chat"); got != 1 {
		t.Fatalf("charged = %v", got)
	}
}

// An upstream that answers 500 is passed through and not charged.
func TestOnHeadersUpstreamErrorNotCharged(t *testing.T) {
	t.Parallel()
	up := newSSEUpstream(t, http.StatusInternalServerError)
	close(up.release)
	g := newGate(t, streamDoc(up.URL, SettleOnHeaders))
	res := paidStreamRequest(t, g)
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	if _, settles := g.fac.calls(); settles != 0 {
		t.Fatalf("%d settlements for an upstream error, want 0", settles)
	}
	if got := counter(t, g, "charged", "chat"); got != 0 {
		t.Fatalf("charged = %v", got)
	}
}

// A refused settlement answers 402 and sends nothing of the body.
func TestOnHeadersFailedSettlementSendsNoBody(t *testing.T) {
	t.Parallel()
	up := newSSEUpstream(t, http.StatusOK)
	close(up.release)
	g := newGate(t, streamDoc(up.URL, SettleOnHeaders))
	g.fac.settle = func(x402.SettleRequest) (*x402.SettleResponse, error) {
		return &x402.SettleResponse{Success: false, ErrorReason: x402.ReasonInsufficientFunds}, nil
	}
	res := paidStreamRequest(t, g)
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusPaymentRequired {
		t.Fatalf("status %d, want 402: %s", res.StatusCode, body)
	}
	if strings.Contains(string(body), "data:") {
		t.Fatalf("the upstream's body leaked into the 402: %q", body)
	}
}

func TestSettleModeIsValidated(t *testing.T) {
	t.Parallel()
	spec, err := ParseSpec("pricing.yaml", []byte(streamDoc("http://127.0.0.1:1", "on-body")))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Compile(spec, nil, Environment{})
	if err == nil || !strings.Contains(err.Error(), "routes[0].settle") {
		t.Fatalf("want an error naming routes[0].settle, got %v", err)
	}
}

// A ServiceOffer's settle mode reaches its route; inference offers default
// to on-headers, the others to after-response.
func TestOfferSettleMode(t *testing.T) {
	t.Parallel()
	reg := evm.NewRegistry()
	for _, tc := range []struct {
		typ    v1alpha1.OfferType
		settle v1alpha1.SettleMode
		want   string
	}{
		{"", "", SettleAfterResponse},
		{v1alpha1.OfferTypeHTTP, "", SettleAfterResponse},
		{v1alpha1.OfferTypeInference, "", SettleOnHeaders},
		{v1alpha1.OfferTypeInference, v1alpha1.SettleAfterResponse, SettleAfterResponse},
		{v1alpha1.OfferTypeHTTP, v1alpha1.SettleOnHeaders, SettleOnHeaders},
	} {
		o := &v1alpha1.ServiceOffer{
			ObjectMeta: metav1.ObjectMeta{Name: "chat", Namespace: "demo"},
			Spec: v1alpha1.ServiceOfferSpec{Type: tc.typ, Settle: tc.settle,
				Upstream: v1alpha1.OfferUpstream{Service: "llm", Port: 8080},
				Payment: v1alpha1.OfferPayment{Network: "base-sepolia", PayTo: testPayTo,
					Price: v1alpha1.OfferPrice{PerRequest: "0.001"}}},
		}
		rs, err := OfferRoute(reg, o)
		if err != nil {
			t.Fatal(err)
		}
		if rs.Settle != tc.want {
			t.Errorf("type %q settle %q: route settles %q, want %q", tc.typ, tc.settle, rs.Settle, tc.want)
		}
	}
}
