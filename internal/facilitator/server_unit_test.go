package facilitator

import (
	"context"
	"crypto/ecdsa"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/token"
	"github.com/obolstack/obol/internal/x402"
)

// The public x402 test vector (exact on base-sepolia).
const (
	vecFrom        = "0x857b06519E91e3A54538791bDbb0E22373e36b66"
	vecTo          = "0x209693Bc6afc0C5328bA36FaF03C514EF312287C"
	vecValue       = "10000"
	vecValidAfter  = "1740672089"
	vecValidBefore = "1740672154"
	vecNonce       = "0xf3746613c2d920b5fdabc0856f2aeb2d4f88ee6037b8cc5d04a71a4462f13480"
	vecSignature   = "0x2d6a7588d6acca505cbf0d9a4a227e0c52c6c34008c8e8986a1283259764173608a2ce6496642e377d6da8dbbf5836e9bd15092f9ecab05ded3d6293af148b571c"
	vecAsset       = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
)

var vecNow = time.Unix(1740672100, 0)

func vecRequirement() x402.Requirement {
	return x402.Requirement{
		Scheme: x402.SchemeExact, Network: "eip155:84532", NetworkV1: "base-sepolia",
		Amount: vecValue, Asset: vecAsset, PayTo: vecTo, MaxTimeoutSeconds: 60,
		Extra:    x402.Extra{Name: "USDC", Version: "2"},
		Resource: x402.ResourceInfo{URL: "https://api.example.com/weather", Description: "weather", MimeType: "application/json"},
	}
}

func vecPayload() x402.ExactEVMPayload {
	return x402.ExactEVMPayload{Signature: vecSignature, Authorization: x402.EIP3009Authorization{
		From: vecFrom, To: vecTo, Value: vecValue, ValidAfter: vecValidAfter, ValidBefore: vecValidBefore, Nonce: vecNonce,
	}}
}

// buildRequest makes a facilitator request; the payment answers payReq
// (what the buyer saw) and the request carries req (what the seller wants).
func buildRequest(t testing.TB, version int, payReq, req x402.Requirement, exact x402.ExactEVMPayload) x402.VerifyRequest {
	t.Helper()
	p, err := x402.NewExactPayment(version, payReq, exact)
	if err != nil {
		t.Fatal(err)
	}
	vr, err := x402.NewVerifyRequest(p, req)
	if err != nil {
		t.Fatal(err)
	}
	return vr
}

type unitEnv struct {
	srv  *Server
	url  string
	rpc  *fakeRPC
	reg  *prometheus.Registry
	now  *time.Time
	key  *ecdsa.PrivateKey
	hsrv *httptest.Server
}

func newUnitEnv(t *testing.T, f *fakeRPC) *unitEnv {
	t.Helper()
	if f == nil {
		f = &fakeRPC{}
	}
	if f.chainID == "" {
		f.chainID = "0x14a34" // 84532
	}
	if f.code == "" {
		f.code = "0x6080"
	}
	rpcSrv := f.serve(t)
	key, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	now := vecNow
	env := &unitEnv{rpc: f, reg: prometheus.NewRegistry(), now: &now, key: key}
	srv, err := NewServer(context.Background(), Config{
		RPCURL: rpcSrv.URL, Chain: "base-sepolia", Registry: evm.NewRegistry(), Key: key,
		Registerer: env.reg, Now: func() time.Time { return *env.now }, RPCTimeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	env.srv = srv
	env.hsrv = httptest.NewServer(srv.Handler())
	t.Cleanup(env.hsrv.Close)
	env.url = env.hsrv.URL
	return env
}

func decodeVerify(t *testing.T, b []byte) x402.VerifyResponse {
	t.Helper()
	var v x402.VerifyResponse
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("verify answer %s: %v", b, err)
	}
	return v
}

func TestVerifyPublicVectorBothVersions(t *testing.T) {
	t.Parallel()
	env := newUnitEnv(t, nil)
	for _, version := range []int{x402.Version1, x402.Version2} {
		vr := buildRequest(t, version, vecRequirement(), vecRequirement(), vecPayload())
		status, body := postJSON(t, env.url+"/verify", vr)
		v := decodeVerify(t, body)
		if status != 200 || !v.IsValid || v.Payer != vecFrom {
			t.Errorf("v%d: status %d answer %s, want 200 valid payer %s", version, status, body, vecFrom)
		}
	}
	calls := env.rpc.calls()
	if len(calls) < 3 || calls[0] != "eth_chainId" || calls[1] != "eth_getCode" || calls[2] != "eth_call" {
		t.Errorf("RPC calls %v, want eth_chainId, eth_getCode, eth_call, ...", calls)
	}
	if got := testutil.ToFloat64(env.srv.metrics.Verify.WithLabelValues(ResultValid, "")); got != 2 {
		t.Errorf("verify_total{valid} = %v, want 2", got)
	}
}

func TestVerifyReasonsInOrder(t *testing.T) {
	t.Parallel()
	env := newUnitEnv(t, nil)
	type mut struct {
		name    string
		version int
		now     time.Time
		payReq  func(*x402.Requirement)
		req     func(*x402.Requirement)
		exact   func(*x402.ExactEVMPayload)
		status  int
		reason  string
		msg     string // substring of the message
	}
	cases := []mut{
		{name: "scheme", payReq: func(r *x402.Requirement) { r.Scheme = "upto" }, req: func(r *x402.Requirement) { r.Scheme = "upto" }, reason: x402.ReasonInvalidScheme},
		{name: "requirement scheme", req: func(r *x402.Requirement) { r.Scheme = "upto" }, reason: x402.ReasonInvalidScheme},
		{name: "network differs", req: func(r *x402.Requirement) { r.Network, r.NetworkV1 = "eip155:8453", "base" }, reason: x402.ReasonInvalidNetwork, msg: "requirement is for"},
		{name: "network unknown", payReq: func(r *x402.Requirement) { r.Network, r.NetworkV1 = "eip155:999999", "nowhere" }, reason: x402.ReasonInvalidNetwork},
		{name: "v1 name and v2 id agree", version: x402.Version1, payReq: func(r *x402.Requirement) { r.NetworkV1 = "eip155:84532" }, reason: ""},
		{name: "not this facilitator's chain", payReq: func(r *x402.Requirement) { r.Network, r.NetworkV1 = "eip155:8453", "base" },
			req: func(r *x402.Requirement) { r.Network, r.NetworkV1 = "eip155:8453", "base" }, reason: x402.ReasonInvalidNetwork, msg: "settles on base-sepolia"},
		{name: "recipient", req: func(r *x402.Requirement) { r.PayTo = "0x0000000000000000000000000000000000000001" }, reason: x402.ReasonRecipientMismatch},
		{name: "recipient case-insensitive", req: func(r *x402.Requirement) { r.PayTo = strings.ToLower(vecTo) }, reason: ""},
		{name: "value more", req: func(r *x402.Requirement) { r.Amount = "10001" }, reason: x402.ReasonValueMismatch},
		{name: "value less", req: func(r *x402.Requirement) { r.Amount = "9999" }, reason: x402.ReasonValueMismatch},
		{name: "not yet valid", now: time.Unix(1740672088, 0), reason: x402.ReasonValidAfter},
		{name: "expires within 6s", now: time.Unix(1740672149, 0), reason: x402.ReasonValidBefore},
		{name: "expired", now: time.Unix(1740672154, 0), reason: x402.ReasonValidBefore},
		{name: "last valid second", now: time.Unix(1740672148, 0), reason: ""},
		{name: "no domain", req: func(r *x402.Requirement) { r.Extra = x402.Extra{} }, reason: x402.ReasonMissingEIP712Domain},
		{name: "no domain version", req: func(r *x402.Requirement) { r.Extra.Version = "" }, reason: x402.ReasonMissingEIP712Domain},
		{name: "permit2", req: func(r *x402.Requirement) { r.Extra.AssetTransferMethod = "permit2" }, reason: x402.ReasonInvalidPaymentRequirements},
		{name: "wrong domain name", req: func(r *x402.Requirement) { r.Extra.Name = "USD Coin" }, reason: x402.ReasonInvalidSignature, msg: "not authorization.from"},
		{name: "asset not the accepted one", version: x402.Version2, payReq: func(r *x402.Requirement) { r.Asset = "0x0000000000000000000000000000000000000002" }, reason: x402.ReasonInvalidPayload, msg: "accepted.asset"},
		{name: "asset unknown", payReq: func(r *x402.Requirement) { r.Asset = "0x0000000000000000000000000000000000000002" },
			req: func(r *x402.Requirement) { r.Asset = "0x0000000000000000000000000000000000000002" }, reason: x402.ReasonInvalidPaymentRequirements, msg: "not a token"},
		{name: "smart wallet signature", exact: func(e *x402.ExactEVMPayload) { e.Signature += strings.Repeat("00", 32) }, reason: x402.ReasonUnsupportedSignatureScheme, msg: "EIP-1271"},
		{name: "short signature", exact: func(e *x402.ExactEVMPayload) { e.Signature = e.Signature[:len(e.Signature)-2] }, reason: x402.ReasonInvalidSignature, msg: "65 bytes"},
		{name: "malleable high-s twin", exact: func(e *x402.ExactEVMPayload) { e.Signature = highSTwin(t, e.Signature) }, reason: x402.ReasonInvalidSignature, msg: "upper half"},
		{name: "tampered value", exact: func(e *x402.ExactEVMPayload) { e.Authorization.Value = "10001" }, req: func(r *x402.Requirement) { r.Amount = "10001" }, reason: x402.ReasonInvalidSignature},
		// Malformed bodies: 400 naming the field.
		{name: "bad nonce", exact: func(e *x402.ExactEVMPayload) { e.Authorization.Nonce = "0x1234" }, status: 400, reason: x402.ReasonInvalidPayload, msg: "nonce"},
		{name: "bad from", exact: func(e *x402.ExactEVMPayload) { e.Authorization.From = "alice" }, status: 400, reason: x402.ReasonInvalidPayload, msg: "from"},
		{name: "bad value", exact: func(e *x402.ExactEVMPayload) { e.Authorization.Value = "1e4" }, status: 400, reason: x402.ReasonInvalidPayload, msg: "value"},
		{name: "no signature", exact: func(e *x402.ExactEVMPayload) { e.Signature = "" }, status: 400, reason: x402.ReasonInvalidPayload, msg: "signature"},
		{name: "signature not hex", exact: func(e *x402.ExactEVMPayload) { e.Signature = "0xzz" }, status: 400, reason: x402.ReasonInvalidPayload, msg: "signature"},
		{name: "bad payTo", req: func(r *x402.Requirement) { r.PayTo = "bob" }, status: 400, reason: x402.ReasonInvalidPaymentRequirements, msg: "payTo"},
		{name: "bad amount v1", version: x402.Version1, req: func(r *x402.Requirement) { r.Amount = "0.01" }, status: 400, reason: x402.ReasonInvalidPaymentRequirements, msg: "maxAmountRequired"},
		{name: "bad amount v2", version: x402.Version2, req: func(r *x402.Requirement) { r.Amount = "-1" }, status: 400, reason: x402.ReasonInvalidPaymentRequirements, msg: "amount"},
		{name: "bad asset", req: func(r *x402.Requirement) { r.Asset = "USDC" }, status: 400, reason: x402.ReasonInvalidPaymentRequirements, msg: "asset"},
	}
	for _, c := range cases {
		versions := []int{x402.Version1, x402.Version2}
		if c.version != 0 {
			versions = []int{c.version}
		}
		for _, version := range versions {
			t.Run(fmt.Sprintf("%s/v%d", c.name, version), func(t *testing.T) {
				payReq, req, exact := vecRequirement(), vecRequirement(), vecPayload()
				if c.payReq != nil {
					c.payReq(&payReq) // what the buyer answered; the seller's requirement stays unless c.req
				}
				if c.req != nil {
					c.req(&req)
				}
				if c.exact != nil {
					c.exact(&exact)
				}
				*env.now = vecNow
				if !c.now.IsZero() {
					*env.now = c.now
				}
				vr := buildRequest(t, version, payReq, req, exact)
				status, body := postJSON(t, env.url+"/verify", vr)
				v := decodeVerify(t, body)
				wantStatus := c.status
				if wantStatus == 0 {
					wantStatus = 200
				}
				if status != wantStatus || v.InvalidReason != c.reason || v.IsValid != (c.reason == "") {
					t.Fatalf("status %d answer %s; want %d reason %q", status, body, wantStatus, c.reason)
				}
				if c.msg != "" && !strings.Contains(v.InvalidMessage, c.msg) {
					t.Errorf("message %q does not mention %q", v.InvalidMessage, c.msg)
				}
				if c.reason != "" && v.InvalidMessage == "" {
					t.Error("no invalidMessage")
				}
				if status == 200 && v.Payer != vecFrom {
					t.Errorf("payer %q, want %s", v.Payer, vecFrom)
				}
			})
		}
	}
}

func TestMalformedBodies(t *testing.T) {
	t.Parallel()
	env := newUnitEnv(t, nil)
	good := buildRequest(t, 2, vecRequirement(), vecRequirement(), vecPayload())
	cases := []struct {
		name, body, reason, msg string
	}{
		{"not JSON", "{", x402.ReasonInvalidPayload, "malformed request body"},
		{"empty", "", x402.ReasonInvalidPayload, "malformed request body"},
		{"version string", `{"x402Version":"2"}`, x402.ReasonInvalidX402Version, "x402Version"},
		{"version 3", `{"x402Version":3,"paymentPayload":{},"paymentRequirements":{}}`, x402.ReasonInvalidX402Version, "x402Version"},
		{"no payload", `{"x402Version":2,"paymentRequirements":{}}`, x402.ReasonInvalidPayload, "paymentPayload"},
		{"no requirements", `{"x402Version":2,"paymentPayload":` + string(good.PaymentPayload) + `}`, x402.ReasonInvalidPaymentRequirements, "paymentRequirements"},
		{"requirements wrong type", `{"x402Version":2,"paymentPayload":` + string(good.PaymentPayload) + `,"paymentRequirements":{"amount":5}}`, x402.ReasonInvalidPaymentRequirements, "amount"},
		{"version disagrees", `{"x402Version":1,"paymentPayload":` + string(good.PaymentPayload) + `,"paymentRequirements":` + string(good.PaymentRequirements) + `}`, x402.ReasonInvalidPayload, "x402Version"},
		{"too large", `{"x402Version":2,"pad":"` + strings.Repeat("x", MaxBodyBytes) + `"}`, x402.ReasonInvalidPayload, "larger than"},
	}
	for _, c := range cases {
		for _, op := range []string{"verify", "settle"} {
			t.Run(c.name+"/"+op, func(t *testing.T) {
				status, body := postJSON(t, env.url+"/"+op, c.body)
				if status != 400 {
					t.Fatalf("status %d (%s), want 400", status, body)
				}
				var m map[string]any
				if err := json.Unmarshal(body, &m); err != nil {
					t.Fatal(err)
				}
				reasonKey, msgKey := "invalidReason", "invalidMessage"
				if op == "settle" {
					reasonKey, msgKey = "errorReason", "errorMessage"
					if m["success"] != false || m["transaction"] != "" || m["network"] == "" || m["network"] == nil {
						t.Errorf("settle answer %s: want success false, transaction \"\", a network", body)
					}
				}
				if m[reasonKey] != c.reason || !strings.Contains(fmt.Sprint(m[msgKey]), c.msg) {
					t.Errorf("answer %s: want reason %s and a message naming %q", body, c.reason, c.msg)
				}
			})
		}
	}
	if got := testutil.ToFloat64(env.srv.metrics.Verify.WithLabelValues(ResultInvalid, x402.ReasonInvalidPayload)); got < 1 {
		t.Errorf("verify_total{invalid,invalid_payload} = %v", got)
	}
	res, err := http.Get(env.url + "/verify")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /verify: %d, want 405", res.StatusCode)
	}
}

func revertError(t *testing.T, reason string) map[string]any {
	t.Helper()
	str, _ := abi.NewType("string", "", nil)
	enc, err := abi.Arguments{{Type: str}}.Pack(reason)
	if err != nil {
		t.Fatal(err)
	}
	data := append(crypto.Keccak256([]byte("Error(string)"))[:4], enc...)
	return map[string]any{"code": 3, "message": "execution reverted: " + reason, "data": "0x" + hex.EncodeToString(data)}
}

// selector returns the 4-byte selector of an eth_call's data.
func selector(params json.RawMessage) string {
	var list []json.RawMessage
	var arg struct {
		Input string `json:"input"`
		Data  string `json:"data"`
	}
	if json.Unmarshal(params, &list) != nil || len(list) == 0 || json.Unmarshal(list[0], &arg) != nil {
		return ""
	}
	d := arg.Input
	if d == "" {
		d = arg.Data
	}
	if len(d) < 10 {
		return ""
	}
	return d[2:10]
}

func word(b byte) string { return "0x" + strings.Repeat("00", 31) + fmt.Sprintf("%02x", b) }

func TestSimulationDiagnosis(t *testing.T) {
	t.Parallel()
	twa := hex.EncodeToString(token.ABI().Methods["transferWithAuthorization"].ID)
	state := hex.EncodeToString(token.ABI().Methods["authorizationState"].ID)
	bal := hex.EncodeToString(token.ABI().Methods["balanceOf"].ID)
	cases := []struct {
		name    string
		revert  string
		used    bool
		balance byte
		status  int
		reason  string
	}{
		{"nonce used", "ObolUSD: authorization is used or canceled", true, 0xff, 200, x402.ReasonNonceAlreadyUsed},
		{"short balance", "ERC20: transfer amount exceeds balance", false, 1, 200, x402.ReasonInsufficientFunds},
		{"other revert", "ObolUSD: paused", false, 0xff, 200, x402.ReasonInvalidTransactionState},
		{"revert string only", "FiatToken: transfer amount exceeds balance", false, 0xff, 200, x402.ReasonInsufficientFunds},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeRPC{call: func(params json.RawMessage) (any, map[string]any) {
				switch selector(params) {
				case twa:
					return nil, revertError(t, c.revert)
				case state:
					if c.used {
						return word(1), nil
					}
					return word(0), nil
				case bal:
					return "0x" + strings.Repeat("00", 30) + fmt.Sprintf("%02x", c.balance) + "00", nil // balance*256
				}
				return nil, map[string]any{"code": -32000, "message": "unexpected call"}
			}}
			env := newUnitEnv(t, f)
			vr := buildRequest(t, 2, vecRequirement(), vecRequirement(), vecPayload())
			status, body := postJSON(t, env.url+"/verify", vr)
			v := decodeVerify(t, body)
			if status != c.status || v.InvalidReason != c.reason || v.Payer != vecFrom {
				t.Fatalf("status %d answer %s; want %d %s", status, body, c.status, c.reason)
			}
			if c.reason == x402.ReasonInvalidTransactionState && !strings.Contains(v.InvalidMessage, c.revert) {
				t.Errorf("message %q lacks the revert reason", v.InvalidMessage)
			}
		})
	}
}

func TestRPCErrorIsUnexpected(t *testing.T) {
	t.Parallel()
	f := &fakeRPC{call: func(json.RawMessage) (any, map[string]any) {
		return nil, map[string]any{"code": -32000, "message": "header not found"}
	}}
	env := newUnitEnv(t, f)
	vr := buildRequest(t, 2, vecRequirement(), vecRequirement(), vecPayload())
	status, body := postJSON(t, env.url+"/verify", vr)
	v := decodeVerify(t, body)
	if status != 500 || v.InvalidReason != x402.ReasonUnexpectedVerifyError || !strings.Contains(v.InvalidMessage, "header not found") || v.Payer != vecFrom {
		t.Fatalf("status %d answer %s; want 500 unexpected_verify_error", status, body)
	}
	if got := testutil.ToFloat64(env.srv.metrics.Verify.WithLabelValues(ResultError, x402.ReasonUnexpectedVerifyError)); got != 1 {
		t.Errorf("verify_total{error} = %v", got)
	}
	// The client turns the 500 into a typed error.
	cl, err := NewClient(env.url)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cl.Verify(context.Background(), vr)
	fe, ok := err.(*Error)
	if !ok || fe.StatusCode != 500 || fe.Reason != x402.ReasonUnexpectedVerifyError {
		t.Fatalf("client error %#v", err)
	}
}

func TestNoContractAtToken(t *testing.T) {
	t.Parallel()
	f := &fakeRPC{code: "0x"}
	env := newUnitEnv(t, f)
	vr := buildRequest(t, 2, vecRequirement(), vecRequirement(), vecPayload())
	status, body := postJSON(t, env.url+"/verify", vr)
	v := decodeVerify(t, body)
	if status != 500 || !strings.Contains(v.InvalidMessage, "no contract") {
		t.Fatalf("status %d answer %s; want 500 naming the missing contract", status, body)
	}
}

func TestSupportedHealthAndMetrics(t *testing.T) {
	t.Parallel()
	env := newUnitEnv(t, nil)
	cl, err := NewClient(env.url)
	if err != nil {
		t.Fatal(err)
	}
	sup, err := cl.Supported(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	fee := crypto.PubkeyToAddress(env.key.PublicKey).Hex()
	if len(sup.Kinds) != 2 || sup.Kinds[0].X402Version != 1 || sup.Kinds[0].Scheme != "exact" || sup.Kinds[0].Network != "base-sepolia" ||
		sup.Kinds[1].Network != "eip155:84532" || sup.Kinds[1].X402Version != 2 ||
		len(sup.Signers["eip155:*"]) != 1 || sup.Signers["eip155:*"][0] != fee || sup.Extensions == nil {
		t.Errorf("supported = %+v", sup)
	}
	res, err := http.Get(env.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Errorf("healthz %d", res.StatusCode)
	}
	vr := buildRequest(t, 2, vecRequirement(), vecRequirement(), vecPayload())
	postJSON(t, env.url+"/verify", vr)
	res, err = http.Get(env.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := res.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	text := sb.String()
	for _, want := range []string{
		`obol_facilitator_verify_total{reason="",result="valid"} 1`,
		`obol_facilitator_request_duration_seconds_count{op="verify"} 1`,
		`obol_facilitator_request_duration_seconds_count{op="supported"} 1`,
		`obol_facilitator_rpc_duration_seconds_count{method="eth_call"} 1`,
		`obol_facilitator_rpc_duration_seconds_count{method="eth_chainId"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestNewServerChecks(t *testing.T) {
	t.Parallel()
	f := &fakeRPC{chainID: "0x2105"} // 8453, base
	rpcSrv := f.serve(t)
	key, _ := crypto.GenerateKey()
	cases := []struct {
		name string
		cfg  Config
		msg  string
	}{
		{"no rpc", Config{Chain: "base", Key: key}, "no RPC URL"},
		{"no key", Config{RPCURL: rpcSrv.URL, Chain: "base"}, "no fee-payer key"},
		{"unknown chain", Config{RPCURL: rpcSrv.URL, Chain: "nowhere", Key: key}, "unknown chain"},
		{"chain mismatch", Config{RPCURL: rpcSrv.URL, Chain: "base-sepolia", Key: key}, "serves chain id 8453"},
		{"dev chain without token", Config{RPCURL: rpcSrv.URL, Chain: "dev", Key: key}, "no token"},
		{"bad scheme", Config{RPCURL: "ftp://x", Chain: "base", Key: key}, "scheme"},
	}
	for _, c := range cases {
		c.cfg.Registry = evm.NewRegistry()
		_, err := NewServer(context.Background(), c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: err %v, want it to mention %q", c.name, err, c.msg)
		}
	}
	reg := prometheus.NewRegistry()
	s, err := NewServer(context.Background(), Config{RPCURL: rpcSrv.URL + "/secret-api-key", Chain: "eip155:8453", Key: key, Registerer: reg, Registry: evm.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := NewServer(context.Background(), Config{RPCURL: rpcSrv.URL, Chain: "base", Key: key, Registerer: reg, Registry: evm.NewRegistry()}); err == nil || !strings.Contains(err.Error(), "register") {
		t.Errorf("second server on one registry: %v", err)
	}
	if strings.Contains(s.node.safeURL, "secret") {
		t.Errorf("safe URL %q leaks the path", s.node.safeURL)
	}
}

func BenchmarkVerifyInProcess(b *testing.B) {
	key, _ := crypto.GenerateKey()
	rpcSrv := benchRPC(b)
	s, err := NewServer(context.Background(), Config{RPCURL: rpcSrv.URL, Chain: "base-sepolia", Key: key, Registry: evm.NewRegistry(),
		Now: func() time.Time { return vecNow }})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	vr := buildRequest(b, 2, vecRequirement(), vecRequirement(), vecPayload())
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if o := s.verify(context.Background(), vr); o.reason != "" {
			b.Fatalf("%+v", o)
		}
	}
}

func benchRPC(b *testing.B) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		res := "0x"
		switch req.Method {
		case "eth_chainId":
			res = "0x14a34"
		case "eth_getCode":
			res = "0x6080"
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"jsonrpc": "2.0", "id": req.ID, "result": res})
	}))
	b.Cleanup(srv.Close)
	return srv
}

// highSTwin returns the other valid signature of the same message: s' = n - s
// with the recovery id flipped. It recovers to the same signer.
func highSTwin(t *testing.T, hexSig string) string {
	t.Helper()
	sig, err := evm.DecodeSignature(hexSig)
	if err != nil {
		t.Fatal(err)
	}
	n := crypto.S256().Params().N
	s := new(big.Int).Sub(n, new(big.Int).SetBytes(sig[32:64]))
	out := append([]byte{}, sig[:32]...)
	out = append(out, common.LeftPadBytes(s.Bytes(), 32)...)
	out = append(out, sig[64]^1)
	return hexutil.Encode(out)
}

// Malformed bodies are explained in the buyer's terms: the field path as
// written, the expected type in words, no Go type names.
func TestMalformedBodyInUserTerms(t *testing.T) {
	t.Parallel()
	env := newUnitEnv(t, &fakeRPC{chainID: "0x14a34"})
	req := `{"scheme":"exact","network":"eip155:84532","amount":"1000","asset":"0x036CbD53842c5426634e7929541eC2318f3dCF7e","payTo":"0x209693Bc6afc0C5328bA36FaF03C514EF312287C","maxTimeoutSeconds":60,"extra":{"name":5,"version":"2"}}`
	for _, c := range []struct{ body, want string }{
		{`"hello"`, "want a JSON object {x402Version, paymentPayload, paymentRequirements}, got a string"},
		{`{"x402Version":"2"}`, "field x402Version: want a whole number, got a string"},
		{`{"x402Version":2,"paymentPayload":{"x402Version":2,"accepted":` + req + `,"payload":{}},"paymentRequirements":` + req + `}`,
			"field accepted.extra.name: want a string, got a number"},
	} {
		for _, op := range []string{"/verify", "/settle"} {
			_, out := postJSON(t, env.url+op, c.body)
			msg := string(out)
			if !strings.Contains(msg, c.want) || strings.Contains(msg, "Go value") || strings.Contains(msg, "struct {") || strings.Contains(msg, "extra.extra") {
				t.Errorf("%s %s: %s, want %q", op, c.body[:min(20, len(c.body))], msg, c.want)
			}
		}
	}
}
