package facilitator

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/obolstack/obol/internal/x402"
)

// Conformance of the facilitator API against the x402 specification's
// published requests and answers (testdata/x402/interop; see its README).

func interopFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "x402", "interop", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// keysOf returns the sorted top-level keys of a JSON object.
func keysOf(t *testing.T, b []byte) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func hasKeys(t *testing.T, what string, got []byte, want []byte) {
	t.Helper()
	have := map[string]bool{}
	for _, k := range keysOf(t, got) {
		have[k] = true
	}
	for _, k := range keysOf(t, want) {
		if !have[k] {
			t.Errorf("%s lacks %q (spec has %v): %s", what, k, keysOf(t, want), got)
		}
	}
}

func TestConformanceSpecVerifyBodiesAccepted(t *testing.T) {
	t.Parallel()
	env := newUnitEnv(t, nil)
	// Posted byte for byte as the specification prints them; the v2 body
	// has no top-level x402Version.
	for _, f := range []string{"v2-verify-request.json", "v1-verify-request.json"} {
		status, body := postJSON(t, env.url+"/verify", string(interopFixture(t, f)))
		v := decodeVerify(t, body)
		if status != http.StatusOK || !v.IsValid || v.Payer != vecFrom {
			t.Errorf("%s: status %d answer %s, want 200 valid payer %s", f, status, body, vecFrom)
		}
		hasKeys(t, f+" answer", body, interopFixture(t, "verify-response-valid.json"))
	}

	// An invalid payment: 200, isValid false, a reason and the payer, as
	// in the spec's error example.
	var vr map[string]any
	_ = json.Unmarshal(interopFixture(t, "v2-verify-request.json"), &vr)
	vr["paymentRequirements"].(map[string]any)["amount"] = "20000"
	status, body := postJSON(t, env.url+"/verify", vr)
	v := decodeVerify(t, body)
	if status != http.StatusOK || v.IsValid || v.InvalidReason != x402.ReasonValueMismatch || v.Payer != vecFrom {
		t.Errorf("value mismatch: status %d answer %s", status, body)
	}
	hasKeys(t, "invalid answer", body, interopFixture(t, "verify-response-invalid.json"))
}

func TestConformanceSupportedShape(t *testing.T) {
	t.Parallel()
	env := newUnitEnv(t, nil)
	res, err := http.Get(env.url + "/supported")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var raw json.RawMessage
	if err := json.NewDecoder(res.Body).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	hasKeys(t, "/supported", raw, interopFixture(t, "v2-supported.json"))
	var s struct {
		Kinds      []map[string]any    `json:"kinds"`
		Extensions []string            `json:"extensions"`
		Signers    map[string][]string `json:"signers"`
	}
	if err := json.Unmarshal(raw, &s); err != nil || s.Extensions == nil || len(s.Signers["eip155:*"]) != 1 {
		t.Fatalf("/supported: %s (%v)", raw, err)
	}
	seen := map[string]bool{}
	for _, k := range s.Kinds {
		v, _ := k["x402Version"].(float64)
		seen[k["scheme"].(string)+"/"+k["network"].(string)+"/"+string(rune('0'+int(v)))] = true
	}
	if !seen["exact/eip155:84532/2"] || !seen["exact/base-sepolia/1"] {
		t.Fatalf("kinds %v: want exact on eip155:84532 (v2) and base-sepolia (v1)", s.Kinds)
	}
}

func TestConformanceClientReadsSpecAnswers(t *testing.T) {
	t.Parallel()
	answers := map[string]string{
		"/verify":    "verify-response-invalid.json",
		"/settle":    "settle-response-failure.json",
		"/supported": "v2-supported.json",
	}
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		f := answers[r.URL.Path]
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(interopFixture(t, f))
	}))
	defer srv.Close()
	c, err := NewClient(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	var vr x402.VerifyRequest
	_ = json.Unmarshal(interopFixture(t, "v2-verify-request.json"), &vr)
	ctx := context.Background()

	v, err := c.Verify(ctx, vr)
	if err != nil || v.IsValid || v.InvalidReason != x402.ReasonInsufficientFunds || v.Payer != vecFrom {
		t.Fatalf("verify: %+v %v", v, err)
	}
	s, err := c.Settle(ctx, vr)
	if err != nil || s.Success || s.ErrorReason != x402.ReasonInsufficientFunds || s.Transaction != "" || s.Network != "eip155:84532" {
		t.Fatalf("settle failure: %+v %v", s, err)
	}
	sup, err := c.Supported(ctx)
	if err != nil || len(sup.Kinds) != 4 || len(sup.Signers["solana:*"]) != 1 {
		t.Fatalf("supported: %+v %v", sup, err)
	}

	mu.Lock()
	answers["/verify"], answers["/settle"] = "verify-response-valid.json", "settle-response-success.json"
	mu.Unlock()
	v, err = c.Verify(ctx, vr)
	if err != nil || !v.IsValid || v.Payer != vecFrom {
		t.Fatalf("verify valid: %+v %v", v, err)
	}
	s, err = c.Settle(ctx, vr)
	if err != nil || !s.Success || !strings.HasPrefix(s.Transaction, "0x1234") || s.Network != "eip155:84532" {
		t.Fatalf("settle success: %+v %v", s, err)
	}
}
