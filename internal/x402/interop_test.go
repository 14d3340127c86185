package x402

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// Conformance against published x402 messages: testdata/x402/interop (see
// its README for where each one comes from).

func interop(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "x402", "interop", name))
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	return b
}

func interopJSON(t *testing.T, name string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(interop(t, name), &v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

func headerJSON(t *testing.T, name string) any {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(string(interop(t, name)))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

func toAny(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// sameShape reports, as a list, every place where got lacks a key that
// want has or holds a different JSON type there. Arrays are compared by
// their first elements. Extra keys in got are allowed except where noted
// by forbid (paths that must be absent).
func sameShape(path string, want, got any) []string {
	var out []string
	kind := func(v any) string {
		switch v.(type) {
		case map[string]any:
			return "object"
		case []any:
			return "array"
		case string:
			return "string"
		case float64:
			return "number"
		case bool:
			return "bool"
		case nil:
			return "null"
		}
		return fmt.Sprintf("%T", v)
	}
	if kind(want) != kind(got) {
		return []string{fmt.Sprintf("%s: want %s, got %s", path, kind(want), kind(got))}
	}
	switch w := want.(type) {
	case map[string]any:
		g := got.(map[string]any)
		keys := make([]string, 0, len(w))
		for k := range w {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			gv, ok := g[k]
			if !ok {
				out = append(out, fmt.Sprintf("%s.%s: missing", path, k))
				continue
			}
			out = append(out, sameShape(path+"."+k, w[k], gv)...)
		}
	case []any:
		g := got.([]any)
		if len(w) > 0 && len(g) == 0 {
			return []string{path + ": empty array"}
		}
		if len(w) > 0 {
			out = append(out, sameShape(path+"[0]", w[0], g[0])...)
		}
	}
	return out
}

func TestInteropSpecPaymentHeadersDecode(t *testing.T) {
	for _, tc := range []struct {
		file, header string
		version      int
		network      string
	}{
		{"v2-payment-signature.header", HeaderPaymentSignature, Version2, "eip155:84532"},
		{"v1-x-payment.header", HeaderXPayment, Version1, "base-sepolia"},
	} {
		value := string(interop(t, tc.file))
		raw, _ := base64.StdEncoding.DecodeString(value)
		variants := map[string]string{
			"std":        value,
			"raw-std":    base64.RawStdEncoding.EncodeToString(raw),
			"url":        base64.URLEncoding.EncodeToString(raw),
			"raw-url":    base64.RawURLEncoding.EncodeToString(raw),
			"whitespace": " " + value + "\t",
		}
		for vname, v := range variants {
			for _, hname := range []string{tc.header, strings.ToLower(tc.header)} {
				h := http.Header{}
				h.Set(hname, v)
				p, err := PaymentFromHeader(h)
				if err != nil {
					t.Fatalf("%s %s %s: %v", tc.file, vname, hname, err)
				}
				if p.Version != tc.version || p.Scheme != SchemeExact || p.Network != tc.network || p.Exact == nil {
					t.Fatalf("%s %s: got version %d scheme %q network %q", tc.file, vname, p.Version, p.Scheme, p.Network)
				}
				if p.Exact.Authorization != sampleExact().Authorization || p.Exact.Signature != sampleExact().Signature {
					t.Fatalf("%s %s: authorization %+v", tc.file, vname, p.Exact)
				}
				if tc.version == Version2 {
					a := p.V2.Accepted
					if a.Amount != "10000" || a.MaxTimeoutSeconds != 60 || a.Extra == nil || a.Extra.Name != "USDC" || a.Extra.Version != "2" || p.V2.Resource == nil || p.V2.Resource.URL != "https://api.example.com/premium-data" {
						t.Fatalf("%s: accepted/resource %+v %+v", tc.file, a, p.V2.Resource)
					}
				}
			}
		}
		// Re-encoding a decoded payment sends the buyer's JSON unchanged.
		p, err := DecodePayment(tc.header, value)
		if err != nil {
			t.Fatal(err)
		}
		name, out, err := p.Encode()
		if err != nil || name != tc.header || out != value {
			t.Fatalf("%s: re-encoded as %s %q (%v)", tc.file, name, out, err)
		}
	}
}

func TestInteropSpecSettlementHeadersDecode(t *testing.T) {
	for _, tc := range []struct {
		file, header string
		success      bool
		network      string
		tx           string
		reason       string
	}{
		{"v2-payment-response-success.header", HeaderPaymentResponse, true, "eip155:84532", "0x1234567890abcdef1234567890abcdef1234567890abcdef1234567890abcdef", ""},
		{"v2-payment-response-failure.header", HeaderPaymentResponse, false, "eip155:84532", "", ReasonInsufficientFunds},
		{"v1-x-payment-response-success.header", HeaderXPaymentResponse, true, "base-sepolia", "0x1234567890abcdef1234567890abcdef1234567890abcdef1234567890abcdef", ""},
		{"v1-x-payment-response-failure.header", HeaderXPaymentResponse, false, "base-sepolia", "", ReasonInsufficientFunds},
	} {
		s, err := DecodeSettleResponse(tc.header, string(interop(t, tc.file)))
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if s.Success != tc.success || s.Network != tc.network || s.Transaction != tc.tx || s.ErrorReason != tc.reason {
			t.Fatalf("%s: %+v", tc.file, s)
		}
		// Our encoding of the same response carries every key the
		// published one has, with the same types.
		ours, err := EncodeSettleResponse(*s)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := base64.StdEncoding.DecodeString(ours)
		var got any
		_ = json.Unmarshal(raw, &got)
		if diff := sameShape("$", headerJSON(t, tc.file), got); len(diff) > 0 {
			t.Fatalf("%s: our encoding differs: %v", tc.file, diff)
		}
	}
}

func TestInteropSpecChallengesParse(t *testing.T) {
	// v2 header, as the spec sends it (body "{}"), and as x402-rs documents
	// it (lower-case header name, mimeType "").
	h := http.Header{}
	h.Set("payment-required", string(interop(t, "v2-payment-required.header")))
	c, err := ParseChallenge(h, []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Requirements[0]
	if c.Version != 2 || c.Error != "PAYMENT-SIGNATURE header is required" || len(c.Requirements) != 1 ||
		r.Network != "eip155:84532" || r.Amount != "10000" || r.Asset != "0x036CbD53842c5426634e7929541eC2318f3dCF7e" ||
		r.PayTo != "0x209693Bc6afc0C5328bA36FaF03C514EF312287C" || r.MaxTimeoutSeconds != 60 ||
		r.Extra.Name != "USDC" || r.Extra.Version != "2" || r.Resource.URL != "https://api.example.com/premium-data" ||
		r.Resource.MimeType != "application/json" {
		t.Fatalf("spec v2 challenge: %+v %+v", c, r)
	}
	h = http.Header{}
	h.Set("payment-required", string(interop(t, "x402rs-v2-payment-required.header")))
	c, err = ParseChallenge(h, nil)
	if err != nil || c.Requirements[0].Amount != "100000" || c.Requirements[0].MaxTimeoutSeconds != 300 || c.Resource.URL != "http://localhost:3000/protected-route" {
		t.Fatalf("x402-rs v2 challenge: %v %+v", err, c)
	}

	// v2 body of the core spec, with "extensions": {}.
	c, err = ParseChallenge(http.Header{}, interop(t, "v2-payment-required.json"))
	if err != nil || c.Version != 2 || c.Requirements[0].Amount != "10000" {
		t.Fatalf("spec v2 body: %v %+v", err, c)
	}

	// v1 bodies: the spec's ("outputSchema": null) and x402-rs's.
	c, err = ParseChallenge(http.Header{}, interop(t, "v1-payment-required.json"))
	if err != nil {
		t.Fatal(err)
	}
	r = c.Requirements[0]
	if c.Version != 1 || r.Network != "base-sepolia" || r.NetworkV1 != "base-sepolia" || r.Amount != "10000" ||
		r.Resource.URL != "https://api.example.com/premium-data" || r.Resource.Description != "Access to premium market data" ||
		r.OutputSchema != nil || r.Extra.Name != "USDC" {
		t.Fatalf("spec v1 body: %+v", r)
	}
	if b, _ := json.Marshal(r.V1()); bytes.Contains(b, []byte("outputSchema")) {
		t.Fatalf("a null outputSchema must not be written back: %s", b)
	}
	c, err = ParseChallenge(http.Header{}, interop(t, "x402rs-v1-payment-required.json"))
	if err != nil || c.Version != 1 || c.Requirements[0].Amount != "1000" || !bytes.Contains(c.Requirements[0].OutputSchema, []byte(`"discoverable"`)) {
		t.Fatalf("x402-rs v1 body: %v %+v", err, c)
	}
}

func TestInteropOurChallengeHasTheSpecShape(t *testing.T) {
	req := sampleRequirement()
	req.Resource = ResourceInfo{URL: "https://api.example.com/premium-data", Description: "Access to premium market data", MimeType: "application/json"}

	body, hv, err := PaymentRequired(Version2, "PAYMENT-SIGNATURE header is required", []Requirement{req})
	if err != nil {
		t.Fatal(err)
	}
	want := interopJSON(t, "v2-payment-required.json")
	delete(want.(map[string]any), "extensions") // optional
	var got any
	_ = json.Unmarshal(body, &got)
	if diff := sameShape("$", want, got); len(diff) > 0 {
		t.Fatalf("v2 body: %v\n%s", diff, body)
	}
	raw, err := base64.StdEncoding.DecodeString(hv)
	if err != nil || !bytes.Equal(raw, body) {
		t.Fatalf("PAYMENT-REQUIRED must be standard base64 of the body: %v", err)
	}
	// The published header decodes to JSON our encoder reproduces value
	// for value (key order aside).
	if got, want := toAny(t, json.RawMessage(body)), headerJSON(t, "v2-payment-required.header"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("v2 challenge differs from the spec's:\n got %v\nwant %v", got, want)
	}

	body, hv, err = PaymentRequired(Version1, "X-PAYMENT header is required", []Requirement{req})
	if err != nil || hv != "" {
		t.Fatalf("v1: %v %q", err, hv)
	}
	want = interopJSON(t, "v1-payment-required.json")
	delete(want.(map[string]any)["accepts"].([]any)[0].(map[string]any), "outputSchema") // optional; null in the example
	got = nil
	_ = json.Unmarshal(body, &got)
	if diff := sameShape("$", want, got); len(diff) > 0 {
		t.Fatalf("v1 body: %v\n%s", diff, body)
	}

	// v1 requires description and (by the reference client's schema)
	// mimeType as strings: empty ones are still written.
	bare := req
	bare.Resource.Description, bare.Resource.MimeType = "", ""
	body, _, _ = PaymentRequired(Version1, "", []Requirement{bare})
	for _, key := range []string{`"description":""`, `"mimeType":""`, `"error":""`} {
		if !bytes.Contains(body, []byte(key)) {
			t.Fatalf("v1 body lacks %s: %s", key, body)
		}
	}
}

func TestInteropOurPaymentHasTheSpecShape(t *testing.T) {
	req := sampleRequirement()
	req.Resource = ResourceInfo{URL: "https://api.example.com/premium-data", Description: "Access to premium market data", MimeType: "application/json"}
	for _, tc := range []struct {
		version int
		file    string
	}{{Version2, "v2-payment-signature.header"}, {Version1, "v1-x-payment.header"}} {
		p, err := NewExactPayment(tc.version, req, sampleExact())
		if err != nil {
			t.Fatal(err)
		}
		name, value, err := p.Encode()
		if err != nil || name != PaymentHeaderName(tc.version) {
			t.Fatalf("v%d: %s %v", tc.version, name, err)
		}
		raw, err := base64.StdEncoding.DecodeString(value)
		if err != nil {
			t.Fatalf("v%d: payment header is not standard base64: %v", tc.version, err)
		}
		got := toAny(t, json.RawMessage(raw))
		want := headerJSON(t, tc.file)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("v%d payment differs from the spec's:\n got %v\nwant %v", tc.version, got, want)
		}
	}
}

func TestInteropPaymentEchoesTheChallengeVerbatim(t *testing.T) {
	for _, file := range []string{"x402rs-v2-payment-required.header", "v2-payment-required.header"} {
		challenge, _ := base64.StdEncoding.DecodeString(string(interop(t, file)))
		h := http.Header{}
		h.Set(HeaderPaymentRequired, string(interop(t, file)))
		c, err := ParseChallenge(h, nil)
		if err != nil {
			t.Fatal(err)
		}
		p, err := NewExactPayment(Version2, c.Requirements[0], sampleExact())
		if err != nil {
			t.Fatal(err)
		}
		var sent, offered struct {
			Resource json.RawMessage   `json:"resource"`
			Accepted json.RawMessage   `json:"accepted"`
			Accepts  []json.RawMessage `json:"accepts"`
		}
		if err := json.Unmarshal(p.Raw, &sent); err != nil {
			t.Fatal(err)
		}
		_ = json.Unmarshal(challenge, &offered)
		if !bytes.Equal(sent.Accepted, offered.Accepts[0]) {
			t.Fatalf("%s: accepted is not the offered requirement verbatim:\n sent %s\noffer %s", file, sent.Accepted, offered.Accepts[0])
		}
		if !bytes.Equal(sent.Resource, offered.Resource) {
			t.Fatalf("%s: resource not echoed verbatim: %s vs %s", file, sent.Resource, offered.Resource)
		}
		back, err := ParsePaymentJSON(HeaderPaymentSignature, p.Raw)
		if err != nil || back.Exact.Authorization != sampleExact().Authorization {
			t.Fatalf("%s: our payment does not parse back: %v", file, err)
		}
	}

	// Extensions offered are echoed.
	body := []byte(`{"x402Version":2,"resource":{"url":"https://a.example/x"},"accepts":[{"scheme":"exact","network":"eip155:84532","amount":"5","asset":"0x036CbD53842c5426634e7929541eC2318f3dCF7e","payTo":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C","maxTimeoutSeconds":30,"extra":{}}],"extensions":{"bazaar":{"info":{"k":1},"schema":{}}}}`)
	c, err := ParseChallenge(http.Header{}, body)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewExactPayment(Version2, c.Requirements[0], sampleExact())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(p.Raw, []byte(`"extensions":{"bazaar":{"info":{"k":1},"schema":{}}}`)) || !bytes.Contains(p.Raw, []byte(`"extra":{}`)) {
		t.Fatalf("extensions or empty extra not echoed: %s", p.Raw)
	}
	if p.V2.Extensions["bazaar"] == nil {
		t.Fatalf("Payment.V2.Extensions not set: %+v", p.V2)
	}

	// A requirement changed after parsing is rendered from its fields,
	// never paired with the stale JSON.
	r := c.Requirements[0]
	r.Amount = "6"
	p, err = NewExactPayment(Version2, r, sampleExact())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(p.Raw, []byte(`"amount":"6"`)) || bytes.Contains(p.Raw, []byte(`"amount":"5"`)) {
		t.Fatalf("stale echo: %s", p.Raw)
	}
}

func TestInteropVerifyRequests(t *testing.T) {
	for _, tc := range []struct {
		file    string
		version int
		network string
	}{{"v2-verify-request.json", Version2, "eip155:84532"}, {"v1-verify-request.json", Version1, "base-sepolia"}} {
		var vr VerifyRequest
		if err := json.Unmarshal(interop(t, tc.file), &vr); err != nil {
			t.Fatal(err)
		}
		p, req, err := ParseVerifyRequest(vr)
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if p.Version != tc.version || req.Network != tc.network || req.Amount != "10000" || req.Extra.Name != "USDC" ||
			p.Exact.Authorization != sampleExact().Authorization {
			t.Fatalf("%s: %+v %+v", tc.file, p, req)
		}
	}

	// A top-level version that contradicts the payload is still refused.
	var vr VerifyRequest
	_ = json.Unmarshal(interop(t, "v2-verify-request.json"), &vr)
	vr.X402Version = Version1
	var de *DecodeError
	if _, _, err := ParseVerifyRequest(vr); !errors.As(err, &de) || de.Field != "x402Version" {
		t.Fatalf("want x402Version mismatch, got %v", err)
	}

	// What we send to a facilitator has the spec's request shape.
	for _, tc := range []struct {
		file    string
		version int
	}{{"v2-verify-request.json", Version2}, {"v1-verify-request.json", Version1}} {
		req := sampleRequirement()
		req.Resource = ResourceInfo{URL: "https://api.example.com/premium-data", Description: "Access to premium market data", MimeType: "application/json"}
		p, err := NewExactPayment(tc.version, req, sampleExact())
		if err != nil {
			t.Fatal(err)
		}
		out, err := NewVerifyRequest(p, req)
		if err != nil {
			t.Fatal(err)
		}
		got := toAny(t, out)
		if diff := sameShape("$", interopJSON(t, tc.file), got); len(diff) > 0 {
			t.Fatalf("%s: our request: %v", tc.file, diff)
		}
		if v, _ := got.(map[string]any)["x402Version"].(float64); int(v) != tc.version {
			t.Fatalf("%s: top-level x402Version %v", tc.file, v)
		}
	}
}

func TestInteropFacilitatorAnswersDecode(t *testing.T) {
	var v VerifyResponse
	if err := json.Unmarshal(interop(t, "verify-response-valid.json"), &v); err != nil || !v.IsValid || v.Payer != "0x857b06519E91e3A54538791bDbb0E22373e36b66" {
		t.Fatalf("valid: %v %+v", err, v)
	}
	v = VerifyResponse{}
	if err := json.Unmarshal(interop(t, "verify-response-invalid.json"), &v); err != nil || v.IsValid || v.InvalidReason != ReasonInsufficientFunds {
		t.Fatalf("invalid: %v %+v", err, v)
	}
	if diff := sameShape("$", interopJSON(t, "verify-response-invalid.json"), toAny(t, v)); len(diff) > 0 {
		t.Fatal(diff)
	}
	for _, f := range []string{"settle-response-success.json", "settle-response-failure.json"} {
		var s SettleResponse
		if err := json.Unmarshal(interop(t, f), &s); err != nil || s.Network != "eip155:84532" {
			t.Fatalf("%s: %v %+v", f, err, s)
		}
		if diff := sameShape("$", interopJSON(t, f), toAny(t, s)); len(diff) > 0 {
			t.Fatalf("%s: %v", f, diff)
		}
	}
	var sup SupportedResponse
	if err := json.Unmarshal(interop(t, "v2-supported.json"), &sup); err != nil || len(sup.Kinds) != 4 || sup.Signers["eip155:*"][0] != "0x1234567890abcdef1234567890abcdef12345678" {
		t.Fatalf("v2 supported: %v %+v", err, sup)
	}
	if diff := sameShape("$", interopJSON(t, "v2-supported.json"), toAny(t, sup)); len(diff) > 0 {
		t.Fatal(diff)
	}
	sup = SupportedResponse{}
	if err := json.Unmarshal(interop(t, "v1-supported.json"), &sup); err != nil || len(sup.Kinds) != 5 || sup.Kinds[4].Network != "iotex" {
		t.Fatalf("v1 supported: %v %+v", err, sup)
	}
	// Required arrays/objects are never null, even when empty.
	b, err := json.Marshal(SupportedResponse{})
	if err != nil || string(b) != `{"kinds":[],"extensions":[],"signers":{}}` {
		t.Fatalf("empty supported: %s %v", b, err)
	}
	b, _ = json.Marshal(&SupportedResponse{Kinds: []SupportedKind{{X402Version: 2, Scheme: "exact", Network: "eip155:1"}}})
	if !bytes.Contains(b, []byte(`"signers":{}`)) || !bytes.Contains(b, []byte(`"extensions":[]`)) {
		t.Fatalf("pointer marshal: %s", b)
	}
}

func TestInteropAuthorizationNumbers(t *testing.T) {
	mk := func(auth string) string {
		v, _ := EncodeHeader(map[string]any{"x402Version": 1, "scheme": "exact", "network": "base-sepolia",
			"payload": json.RawMessage(`{"signature":"0x00","authorization":` + auth + `}`)})
		return v
	}
	base := `"from":"0x857b06519E91e3A54538791bDbb0E22373e36b66","to":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C","nonce":"0xf3746613c2d920b5fdabc0856f2aeb2d4f88ee6037b8cc5d04a71a4462f13480"`

	// Unix times as JSON integers are read as their digits.
	p, err := DecodePayment(HeaderXPayment, mk(`{`+base+`,"value":"10000","validAfter":1740672089,"validBefore":1740672154}`))
	if err != nil {
		t.Fatal(err)
	}
	if p.Exact.Authorization.ValidAfter != "1740672089" || p.Exact.Authorization.ValidBefore != "1740672154" {
		t.Fatalf("numeric times: %+v", p.Exact.Authorization)
	}

	// The amount must be a string; times must be whole, unsigned numbers.
	for _, tc := range []struct{ auth, field string }{
		{`{` + base + `,"value":10000,"validAfter":"1","validBefore":"2"}`, "payload.authorization.value"},
		{`{` + base + `,"value":"10000","validAfter":1.5e9,"validBefore":"2"}`, "payload.authorization.validAfter"},
		{`{` + base + `,"value":"10000","validAfter":"1","validBefore":-2}`, "payload.authorization.validBefore"},
		{`{` + base + `,"value":"10000","validAfter":"1","validBefore":true}`, "payload.authorization.validBefore"},
	} {
		_, err := DecodePayment(HeaderXPayment, mk(tc.auth))
		var de *DecodeError
		if !errors.As(err, &de) || de.Field != tc.field {
			t.Fatalf("%s: want field %s, got %v", tc.auth, tc.field, err)
		}
	}
}

func TestInteropLenientWhereItIsSafe(t *testing.T) {
	// A PAYMENT-REQUIRED header without x402Version (seen in the wild; the
	// open-wallet-standard client defaults it to 2) is read as v2.
	noVersion := `{"resource":{"url":"https://a.example/x"},"accepts":[{"scheme":"exact","network":"eip155:84532","amount":"10000","asset":"0x036CbD53842c5426634e7929541eC2318f3dCF7e","payTo":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C","maxTimeoutSeconds":60,"extra":{"name":"USDC","version":"2"}}]}`
	h := http.Header{}
	h.Set(HeaderPaymentRequired, base64.StdEncoding.EncodeToString([]byte(noVersion)))
	c, err := ParseChallenge(h, nil)
	if err != nil || c.Version != Version2 || c.Requirements[0].Amount != "10000" {
		t.Fatalf("header without x402Version: %v %+v", err, c)
	}
	// ...but a body without it is not guessed.
	if _, err := ParseChallenge(http.Header{}, []byte(noVersion)); err == nil {
		t.Fatal("a body without x402Version was accepted")
	}
	// An explicit unknown version in the header is still refused.
	h.Set(HeaderPaymentRequired, base64.StdEncoding.EncodeToString([]byte(`{"x402Version":3,"accepts":[{"scheme":"exact"}]}`)))
	if _, err := ParseChallenge(h, nil); err == nil {
		t.Fatal("x402Version 3 accepted")
	}

	// x402.org's PAYMENT-RESPONSE carries an extra "requirements" object
	// (x402-foundation/x402 issue #836); unknown keys are ignored.
	sr := `{"success":true,"transaction":"0x367b2be69eca8086e1cae68f6fc0704e7bb6af5fa1ae876d05b450641c455e4f","network":"eip155:84532","payer":"0xf6b42050A71Ca13f842eDa53C7d31B7C1BD94F6E","requirements":{"scheme":"exact","network":"eip155:84532","amount":"10000","asset":"0x036CbD53842c5426634e7929541eC2318f3dCF7e","payTo":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C","maxTimeoutSeconds":300,"extra":{"name":"USDC","version":"2"}}}`
	s, err := DecodeSettleResponse(HeaderPaymentResponse, base64.StdEncoding.EncodeToString([]byte(sr)))
	if err != nil || !s.Success || s.Network != "eip155:84532" || !strings.HasPrefix(s.Transaction, "0x367b") {
		t.Fatalf("settlement with requirements: %v %+v", err, s)
	}

	// Facilitators that answer with nulls for optional strings.
	var v VerifyResponse
	if err := json.Unmarshal([]byte(`{"isValid":false,"invalidReason":"invalid_exact_evm_payload_signature","invalidMessage":null,"payer":null}`), &v); err != nil || v.InvalidReason != ReasonInvalidSignature {
		t.Fatalf("nulls: %v %+v", err, v)
	}
}

func TestInteropEchoedExtensionsStayWithinHeaderLimits(t *testing.T) {
	big := strings.Repeat("x", MaxHeaderBytes)
	body := []byte(`{"x402Version":2,"resource":{"url":"https://a.example/x"},"accepts":[{"scheme":"exact","network":"eip155:84532","amount":"5","asset":"0x036CbD53842c5426634e7929541eC2318f3dCF7e","payTo":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C","maxTimeoutSeconds":30}],"extensions":{"bazaar":{"info":{"doc":"` + big + `"},"schema":{}}}}`)
	c, err := ParseChallenge(http.Header{}, body)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewExactPayment(Version2, c.Requirements[0], sampleExact())
	if err != nil {
		t.Fatal(err)
	}
	name, value, err := p.Encode()
	if err != nil || len(value) > MaxHeaderBytes || bytes.Contains(p.Raw, []byte(`"extensions"`)) || p.V2.Extensions != nil {
		t.Fatalf("%s is %d bytes (limit %d), extensions kept: %v", name, len(value), MaxHeaderBytes, err)
	}
	if _, err := DecodePayment(name, value); err != nil {
		t.Fatalf("our own decoder refuses it: %v", err)
	}
}
