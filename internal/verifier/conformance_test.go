package verifier

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/obolstack/obol/internal/x402"
)

// Conformance of the seller gate's answers against the x402
// specification's published messages (testdata/x402/interop; see its
// README): what another implementation's buyer reads from us must have the
// shape the specification shows.

func specFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "x402", "interop", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func specHeaderJSON(t *testing.T, name string) any {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(string(specFixture(t, name)))
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// shapeDiff lists the keys of want missing from got, or present with
// another JSON type (arrays compared by first element).
func shapeDiff(path string, want, got any) []string {
	kind := func(v any) string { return fmt.Sprintf("%T", v) }
	if kind(want) != kind(got) {
		return []string{fmt.Sprintf("%s: want %s, got %s", path, kind(want), kind(got))}
	}
	var out []string
	switch w := want.(type) {
	case map[string]any:
		g := got.(map[string]any)
		keys := make([]string, 0, len(w))
		for k := range w {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if _, ok := g[k]; !ok {
				out = append(out, path+"."+k+": missing")
				continue
			}
			out = append(out, shapeDiff(path+"."+k, w[k], g[k])...)
		}
	case []any:
		g := got.([]any)
		if len(w) > 0 && len(g) == 0 {
			return []string{path + ": empty"}
		}
		if len(w) > 0 {
			out = append(out, shapeDiff(path+"[0]", w[0], g[0])...)
		}
	}
	return out
}

func headerAny(t *testing.T, name, value string) any {
	t.Helper()
	raw, err := x402.DecodeHeaderJSON(name, value)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var v any
	_ = json.Unmarshal(raw, &v)
	return v
}

func exposes(h http.Header, name string) bool {
	for _, v := range h.Values("Access-Control-Expose-Headers") {
		for _, f := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), name) || strings.TrimSpace(f) == "*" {
				return true
			}
		}
	}
	return false
}

func TestConformance402HasTheSpecShape(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	g := newGate(t, proxyDoc(up.URL))
	srv := httptest.NewServer(g.h)
	defer srv.Close()

	res, err := http.Get(srv.URL + "/weather/today")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusPaymentRequired || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("unpaid: %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	hv := res.Header.Get(x402.HeaderPaymentRequired)
	if _, err := base64.StdEncoding.DecodeString(hv); err != nil {
		t.Fatalf("PAYMENT-REQUIRED is not standard padded base64: %v", err)
	}
	got := headerAny(t, x402.HeaderPaymentRequired, hv)
	if d := shapeDiff("$", specHeaderJSON(t, "v2-payment-required.header"), got); len(d) > 0 {
		t.Fatalf("PAYMENT-REQUIRED differs from the spec's shape: %v", d)
	}
	var bodyAny any
	if err := json.Unmarshal(body, &bodyAny); err != nil || fmt.Sprint(bodyAny) != fmt.Sprint(got) {
		t.Fatalf("the body must be the same JSON as the header: %s", body)
	}
	for _, h := range []string{x402.HeaderPaymentRequired, x402.HeaderPaymentResponse, x402.HeaderXPaymentResponse} {
		if !exposes(res.Header, h) {
			t.Errorf("Access-Control-Expose-Headers lacks %s: %q", h, res.Header.Values("Access-Control-Expose-Headers"))
		}
	}

	// A v1 answer (the buyer sent only X-PAYMENT) has the v1 spec body.
	g1 := newGate(t, proxyDoc(up.URL)+"challengeVersion: 1\n")
	w := g1.do(httptest.NewRequest(http.MethodGet, "/joke", nil))
	var v1 any
	_ = json.Unmarshal(w.Body.Bytes(), &v1)
	want := map[string]any{}
	_ = json.Unmarshal(specFixture(t, "v1-payment-required.json"), &want)
	delete(want["accepts"].([]any)[0].(map[string]any), "outputSchema") // optional
	if d := shapeDiff("$", want, v1); len(d) > 0 {
		t.Fatalf("v1 body differs from the spec's shape: %v\n%s", d, w.Body)
	}
}

// A buyer of another implementation: lower-case header names over a real
// connection, the spec's encodings; the facilitator gets the spec's
// request shape, the buyer the spec's settlement header.
func TestConformancePaidRoundTripOverHTTP(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	g := newGate(t, proxyDoc(up.URL))
	srv := httptest.NewServer(g.h)
	defer srv.Close()

	for _, tc := range []struct {
		version          int
		payHeader        string
		respHeader       string
		verifyFixture    string
		settleRespHeader string
	}{
		{x402.Version2, "payment-signature", x402.HeaderPaymentResponse, "v2-verify-request.json", "v2-payment-response-success.header"},
		{x402.Version1, "x-payment", x402.HeaderXPaymentResponse, "v1-verify-request.json", "v1-x-payment-response-success.header"},
	} {
		req := challenge(t, g.h, "/weather/today")
		_, value := newBuyer(t).pay(t, g.evm, tc.version, req)
		r, _ := http.NewRequest(http.MethodGet, srv.URL+"/weather/today", nil)
		r.Header[tc.payHeader] = []string{value} // sent as written, lower case
		res, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("sunny")) {
			t.Fatalf("v%d paid: %d %s", tc.version, res.StatusCode, body)
		}

		// What the facilitator was asked.
		g.fac.mu.Lock()
		vr := g.fac.lastVerify
		g.fac.mu.Unlock()
		sent, _ := json.Marshal(vr)
		var sentAny, wantAny any
		_ = json.Unmarshal(sent, &sentAny)
		_ = json.Unmarshal(specFixture(t, tc.verifyFixture), &wantAny)
		if d := shapeDiff("$", wantAny, sentAny); len(d) > 0 {
			t.Fatalf("v%d facilitator request differs from the spec's: %v\n%s", tc.version, d, sent)
		}
		raw, _ := base64.StdEncoding.DecodeString(value)
		if !bytes.Equal(vr.PaymentPayload, raw) {
			t.Fatalf("v%d: paymentPayload is not the buyer's JSON verbatim", tc.version)
		}

		// What the buyer got back.
		hv := res.Header.Get(tc.respHeader)
		if d := shapeDiff("$", specHeaderJSON(t, tc.settleRespHeader), headerAny(t, tc.respHeader, hv)); len(d) > 0 {
			t.Fatalf("v%d %s differs from the spec's: %v", tc.version, tc.respHeader, d)
		}
		if !exposes(res.Header, tc.respHeader) {
			t.Errorf("v%d: %s not exposed to browsers: %q", tc.version, tc.respHeader, res.Header.Values("Access-Control-Expose-Headers"))
		}
	}
}

func TestConformanceSettleFailureHeader(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	g := newGate(t, proxyDoc(up.URL))
	g.fac.settle = func(x402.SettleRequest) (*x402.SettleResponse, error) {
		return &x402.SettleResponse{Success: false, ErrorReason: x402.ReasonInsufficientFunds, Network: "eip155:84532"}, nil
	}
	for _, tc := range []struct {
		version int
		header  string
		fixture string
	}{
		{x402.Version2, x402.HeaderPaymentResponse, "v2-payment-response-failure.header"},
		{x402.Version1, x402.HeaderXPaymentResponse, "v1-x-payment-response-failure.header"},
	} {
		name, value := newBuyer(t).pay(t, g.evm, tc.version, challenge(t, g.h, "/joke"))
		r := httptest.NewRequest(http.MethodGet, "/joke", nil)
		r.Header.Set(name, value)
		w := g.do(r)
		if w.Code != http.StatusPaymentRequired || bytes.Contains(w.Body.Bytes(), []byte("sunny")) {
			t.Fatalf("v%d settle failure: %d %s", tc.version, w.Code, w.Body)
		}
		hv := w.Header().Get(tc.header)
		got := headerAny(t, tc.header, hv)
		if d := shapeDiff("$", specHeaderJSON(t, tc.fixture), got); len(d) > 0 {
			t.Fatalf("v%d failure header: %v", tc.version, d)
		}
		if m := got.(map[string]any); m["success"] != false || m["transaction"] != "" {
			t.Fatalf("v%d failure header: %v (want success false, transaction \"\")", tc.version, m)
		}
		if _, err := x402.ParseChallenge(w.Header(), w.Body.Bytes()); err != nil {
			t.Fatalf("v%d: the failure 402 is not a challenge a buyer can read: %v", tc.version, err)
		}
	}
}

func TestConformanceMalformedPaymentIs400(t *testing.T) {
	t.Parallel()
	g := newGate(t, proxyDoc(newUpstream(t).URL))
	for _, v := range []string{"%%%not-base64", base64.StdEncoding.EncodeToString([]byte(`{"x402Version":2}`)), base64.StdEncoding.EncodeToString([]byte(`[1,2]`))} {
		r := httptest.NewRequest(http.MethodGet, "/joke", nil)
		r.Header.Set("payment-signature", v)
		if w := g.do(r); w.Code != http.StatusBadRequest {
			t.Fatalf("%q: status %d, want 400: %s", v, w.Code, w.Body)
		}
	}
}

// A facilitator that leaves network and payer out of its settle answer:
// the buyer's header still carries both, the network named as its version
// names it.
func TestConformanceSettleHeaderFillsNetworkAndPayer(t *testing.T) {
	t.Parallel()
	g := newGate(t, proxyDoc(newUpstream(t).URL))
	g.fac.settle = func(x402.SettleRequest) (*x402.SettleResponse, error) {
		return &x402.SettleResponse{Success: true, Transaction: "0x" + strings.Repeat("cd", 32)}, nil
	}
	for _, tc := range []struct {
		version int
		header  string
		network string
	}{{x402.Version2, x402.HeaderPaymentResponse, "eip155:84532"}, {x402.Version1, x402.HeaderXPaymentResponse, "base-sepolia"}} {
		b := newBuyer(t)
		name, value := b.pay(t, g.evm, tc.version, challenge(t, g.h, "/joke"))
		r := httptest.NewRequest(http.MethodGet, "/joke", nil)
		r.Header.Set(name, value)
		w := g.do(r)
		sr, err := x402.DecodeSettleResponse(tc.header, w.Header().Get(tc.header))
		if w.Code != http.StatusOK || err != nil || sr.Network != tc.network || !strings.EqualFold(sr.Payer, b.address()) {
			t.Fatalf("v%d: %d %+v %v (payer want %s)", tc.version, w.Code, sr, err, b.address())
		}
	}
}

func (b *buyer) address() string { return crypto.PubkeyToAddress(b.key.PublicKey).Hex() }
