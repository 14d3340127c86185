package buyer

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/x402"
)

const usdcBaseSepolia = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"

var sellerAddr = common.HexToAddress("0x209693Bc6afc0C5328bA36FaF03C514EF312287C")

// seller is a test x402 server speaking exactly one protocol version. It
// checks each payment the way a facilitator would (recipient, value, window,
// EIP-712 signature recovered with the registry's domain, unused nonce) and
// records what it saw.
type seller struct {
	t        *testing.T
	version  int
	reqs     []x402.Requirement
	wantBody string
	reject   bool // answer 402 even to a good payment

	mu       sync.Mutex
	requests int
	payments []common.Address
	nonces   map[[32]byte]bool
	bodies   []string
}

func newSeller(t *testing.T, version int, reqs ...x402.Requirement) (*seller, *httptest.Server) {
	s := &seller{t: t, version: version, reqs: reqs, nonces: map[[32]byte]bool{}}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

func usdcReq(amount string) x402.Requirement {
	return x402.Requirement{
		Scheme: x402.SchemeExact, Network: "eip155:84532", NetworkV1: "base-sepolia", Amount: amount,
		Asset: usdcBaseSepolia, PayTo: sellerAddr.Hex(), MaxTimeoutSeconds: 60,
		Extra:    x402.Extra{Name: "USDC", Version: "2"},
		Resource: x402.ResourceInfo{URL: "http://example.test/weather", Description: "weather", MimeType: "application/json"},
	}
}

func (s *seller) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.requests++
	s.bodies = append(s.bodies, string(body))
	s.mu.Unlock()

	header := x402.PaymentHeaderName(s.version)
	other := x402.PaymentHeaderName(3 - s.version)
	if r.Header.Get(other) != "" {
		http.Error(w, "wrong payment header "+other, http.StatusBadRequest)
		return
	}
	v := r.Header.Get(header)
	if v == "" {
		s.challenge(w, "payment required")
		return
	}
	p, err := x402.DecodePayment(header, v)
	if err != nil || p.Version != s.version || p.Exact == nil {
		http.Error(w, "bad payment header", http.StatusBadRequest)
		return
	}
	req := s.reqs[len(s.reqs)-1]
	auth, err := evm.AuthorizationFromWire(p.Exact.Authorization)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	sig, err := evm.DecodeSignature(p.Exact.Signature)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	token, _ := evm.NewRegistry().Token(req.Network, req.Asset)
	signer, err := evm.Recover(token.Domain(84532), auth, sig)
	fail := ""
	switch {
	case err != nil || signer != auth.From:
		fail = x402.ReasonInvalidSignature
	case auth.To != common.HexToAddress(req.PayTo):
		fail = x402.ReasonRecipientMismatch
	case auth.Value.String() != req.Amount:
		fail = x402.ReasonValueMismatch
	case evm.CheckWindow(auth, time.Now(), 6*time.Second) != nil:
		fail = x402.ReasonValidBefore
	}
	if s.version == x402.Version1 && (p.V1.Network != "base-sepolia" || p.V1.Scheme != "exact") {
		fail = x402.ReasonInvalidNetwork
	}
	if s.version == x402.Version2 && (p.V2.Accepted.Network != "eip155:84532" || p.V2.Accepted.Amount != req.Amount) {
		fail = x402.ReasonInvalidPaymentRequirements
	}
	s.mu.Lock()
	if s.nonces[auth.Nonce] {
		fail = x402.ReasonNonceAlreadyUsed
	}
	s.nonces[auth.Nonce] = true
	s.payments = append(s.payments, auth.From)
	s.mu.Unlock()
	if s.wantBody != "" && string(body) != s.wantBody {
		http.Error(w, "body not replayed: "+string(body), http.StatusBadRequest)
		return
	}
	if s.reject {
		fail = x402.ReasonInsufficientFunds
	}
	if fail != "" {
		settle, _ := x402.EncodeSettleResponse(x402.SettleResponse{Success: false, ErrorReason: fail, Network: req.Network})
		w.Header().Set(x402.ResponseHeaderName(s.version), settle)
		s.challenge(w, fail)
		return
	}
	settle, _ := x402.EncodeSettleResponse(x402.SettleResponse{Success: true, Payer: auth.From.Hex(),
		Transaction: "0x" + strings.Repeat("ab", 32), Network: req.Network})
	w.Header().Set(x402.ResponseHeaderName(s.version), settle)
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"forecast":"sunny"}`)
}

func (s *seller) challenge(w http.ResponseWriter, msg string) {
	body, header, err := x402.PaymentRequired(s.version, msg, s.reqs)
	if err != nil {
		s.t.Errorf("build challenge: %v", err)
	}
	if header != "" {
		w.Header().Set(x402.HeaderPaymentRequired, header)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusPaymentRequired)
	_, _ = w.Write(body)
}

func (s *seller) paymentsSeen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.payments)
}

func testKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newPayer(t *testing.T) *Payer {
	return &Payer{Key: testKey(t), Registry: evm.NewRegistry(), MaxAmount: "0.01"}
}

func post(t *testing.T, url, body string) *http.Request {
	t.Helper()
	// A plain reader without GetBody: the payer must make it replayable.
	req, err := http.NewRequest(http.MethodPost, url, io.NopCloser(strings.NewReader(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return req
}

func TestPaysEachVersion(t *testing.T) {
	for _, version := range []int{x402.Version1, x402.Version2} {
		t.Run(map[int]string{1: "v1", 2: "v2"}[version], func(t *testing.T) {
			s, srv := newSeller(t, version, usdcReq("1000"))
			s.wantBody = `{"city":"Lisbon"}`
			p := newPayer(t)
			res, err := p.Do(context.Background(), post(t, srv.URL+"/weather", s.wantBody))
			if err != nil {
				t.Fatalf("Do: %v", err)
			}
			if res.Status != 200 || string(res.Body) != `{"forecast":"sunny"}` {
				t.Fatalf("got %d %q", res.Status, res.Body)
			}
			if !res.Paid() || res.Receipt.Transaction == "" || !strings.EqualFold(res.Receipt.Payer, p.Address().Hex()) {
				t.Fatalf("receipt %+v", res.Receipt)
			}
			if res.Receipt.Header != x402.ResponseHeaderName(version) || res.Signed.Header != x402.PaymentHeaderName(version) {
				t.Fatalf("headers: sent %s, receipt in %s", res.Signed.Header, res.Receipt.Header)
			}
			if res.Quote.Display() != "0.001 USDC" || res.Quote.Chain.Name != "base-sepolia" {
				t.Fatalf("quote %s on %s", res.Quote.Display(), res.Quote.Chain.Name)
			}
			if got := s.paymentsSeen(); got != 1 {
				t.Fatalf("seller saw %d payments, want 1", got)
			}
			// validAfter = now-600s, validBefore = now+maxTimeoutSeconds.
			now := time.Now().Unix()
			va, _ := new(big.Int).SetString(res.Signed.ValidAfter, 10)
			vb, _ := new(big.Int).SetString(res.Signed.ValidBefore, 10)
			if d := now - 600 - va.Int64(); d < -2 || d > 2 {
				t.Fatalf("validAfter %s, want about now-600 (%d)", va, now-600)
			}
			if d := now + 60 - vb.Int64(); d < -2 || d > 2 {
				t.Fatalf("validBefore %s, want about now+60 (%d)", vb, now+60)
			}
			if len(res.Signed.Nonce) != 66 {
				t.Fatalf("nonce %q", res.Signed.Nonce)
			}
		})
	}
}

func TestFreeURLPassesThrough(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(x402.HeaderXPayment) != "" || r.Header.Get(x402.HeaderPaymentSignature) != "" {
			t.Error("payment header on a free request")
		}
		_, _ = io.WriteString(w, "free lunch")
	}))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	res, err := newPayer(t).Do(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != 200 || string(res.Body) != "free lunch" || res.Quote != nil || res.Signed != nil {
		t.Fatalf("got %+v", res)
	}
}

func TestRefusesWithoutSigning(t *testing.T) {
	unknownAsset := usdcReq("1000")
	unknownAsset.Asset = "0x1111111111111111111111111111111111111111"
	wrongDomain := usdcReq("1000")
	wrongDomain.Extra.Name = "USD Coin" // Base mainnet's name on Base Sepolia: the known trap
	wrongVersion := usdcReq("1000")
	wrongVersion.Extra.Version = "1"
	unknownChain := usdcReq("1000")
	unknownChain.Network, unknownChain.NetworkV1 = "eip155:999999", "nowhere"
	permit2 := usdcReq("1000")
	permit2.Extra.AssetTransferMethod = "permit2"
	otherScheme := usdcReq("1000")
	otherScheme.Scheme = "upto"

	cases := []struct {
		name  string
		req   x402.Requirement
		setup func(p *Payer)
		want  string
	}{
		{"over the cap", usdcReq("10001"), nil, "price 0.010001 USDC is over the cap of 0.01 USDC"},
		{"unknown asset", unknownAsset, nil, "unknown asset 0x1111111111111111111111111111111111111111 on base-sepolia"},
		{"domain name disagrees", wrongDomain, nil, `EIP-712 domain name of USDC on base-sepolia is "USD Coin", the registry says "USDC"`},
		{"domain version disagrees", wrongVersion, nil, `domain version of USDC on base-sepolia is "1"`},
		{"unknown chain", unknownChain, nil, "unknown network"},
		{"permit2", permit2, nil, `transfer method "permit2" is not supported`},
		{"other scheme", otherScheme, nil, `scheme "upto" is not supported`},
		{"payTo not allowed", usdcReq("1000"), func(p *Payer) {
			p.AllowPayTo = []common.Address{common.HexToAddress("0x2222222222222222222222222222222222222222")}
		}, "payTo 0x209693Bc6afc0C5328bA36FaF03C514EF312287C is not in --allow-pay-to"},
		{"network filter", usdcReq("1000"), func(p *Payer) { p.Network = "base" }, "is not the one allowed by --network"},
		{"default cap", usdcReq("20000"), func(p *Payer) { p.MaxAmount = "" }, "over the cap of 0.01 USDC"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, version := range []int{1, 2} {
				s, srv := newSeller(t, version, tc.req)
				p := newPayer(t)
				if tc.setup != nil {
					tc.setup(p)
				}
				res, err := p.Do(context.Background(), post(t, srv.URL, "{}"))
				if !errors.Is(err, ErrRefused) {
					t.Fatalf("v%d: err = %v, want a refusal", version, err)
				}
				if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "nothing was signed") {
					t.Fatalf("v%d: message %q does not say %q", version, err, tc.want)
				}
				if res == nil || res.Signed != nil || res.Status != 402 {
					t.Fatalf("v%d: result %+v", version, res)
				}
				if s.paymentsSeen() != 0 || s.requests != 1 {
					t.Fatalf("v%d: seller saw %d requests, %d payments; want 1, 0", version, s.requests, s.paymentsSeen())
				}
			}
		})
	}
}

func TestChoosesFirstAcceptable(t *testing.T) {
	expensive := usdcReq("5000000")
	other := usdcReq("2000")
	_, srv := newSeller(t, 2, expensive, other)
	res, err := newPayer(t).Do(context.Background(), post(t, srv.URL, ""))
	if err != nil {
		t.Fatal(err)
	}
	if res.Quote.Amount.String() != "2000" || !res.Paid() {
		t.Fatalf("paid %v, want the affordable option", res.Quote.Amount)
	}
}

func TestRefusalListsEveryOption(t *testing.T) {
	a := usdcReq("5000000")
	b := usdcReq("1000")
	b.Scheme = "upto"
	ch := &x402.Challenge{Version: 2, Requirements: []x402.Requirement{a, b}}
	_, err := newPayer(t).Choose(ch)
	var re *RefusalError
	if !errors.As(err, &re) || len(re.Rejections) != 2 {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"none of the 2 ways to pay", "option 1 (exact on eip155:84532): price 5 USDC is over the cap", "option 2 (upto"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
}

func TestSecond402IsAnError(t *testing.T) {
	for _, version := range []int{1, 2} {
		s, srv := newSeller(t, version, usdcReq("1000"))
		s.reject = true
		res, err := newPayer(t).Do(context.Background(), post(t, srv.URL, "x"))
		if !errors.Is(err, ErrPaymentRejected) || !strings.Contains(err.Error(), "insufficient_funds") {
			t.Fatalf("v%d: err = %v", version, err)
		}
		if res.Status != 402 || res.Receipt == nil || res.Receipt.Success || res.Paid() {
			t.Fatalf("v%d: result %+v", version, res)
		}
		if s.requests != 2 || s.paymentsSeen() != 1 {
			t.Fatalf("v%d: %d requests %d payments, want exactly one retry", version, s.requests, s.paymentsSeen())
		}
	}
}

func TestPreviewSignsNothing(t *testing.T) {
	s, srv := newSeller(t, 2, usdcReq("1000"))
	p := &Payer{Registry: evm.NewRegistry()} // no key at all
	res, err := p.Preview(context.Background(), post(t, srv.URL, "{}"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Quote == nil || res.Quote.Display() != "0.001 USDC" || res.Signed != nil {
		t.Fatalf("result %+v", res)
	}
	if s.paymentsSeen() != 0 {
		t.Fatal("preview sent a payment")
	}
	if _, err := p.Do(context.Background(), post(t, srv.URL, "{}")); err == nil {
		t.Fatal("Do without a key must fail")
	}
}

func TestBadChallenge(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(402)
		_, _ = io.WriteString(w, "pay me")
	}))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	res, err := newPayer(t).Do(context.Background(), req)
	if !errors.Is(err, ErrBadChallenge) || res.Signed != nil {
		t.Fatalf("err = %v", err)
	}
}

func TestHeaderFirst(t *testing.T) {
	// The header offers an affordable price; a stale body offers another.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, h, _ := x402.PaymentRequired(2, "", []x402.Requirement{usdcReq("1000")})
		body, _, _ := x402.PaymentRequired(1, "", []x402.Requirement{usdcReq("999999")})
		w.Header().Set(x402.HeaderPaymentRequired, h)
		w.WriteHeader(402)
		_, _ = w.Write(body)
	}))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	res, err := newPayer(t).Preview(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if res.Quote.Version != 2 || res.Quote.Amount.String() != "1000" {
		t.Fatalf("quote %+v", res.Quote)
	}
}

func TestCapAtomic(t *testing.T) {
	for _, tc := range []struct {
		in   string
		dec  uint8
		want string
		err  bool
	}{
		{"0.01", 6, "10000", false},
		{"0.0000019", 6, "1", false}, // rounded down
		{"5", 6, "5000000", false},
		{".5", 2, "50", false},
		{"0.05", 0, "0", false},
		{"-1", 6, "", true},
		{"1e3", 6, "", true},
		{"abc", 6, "", true},
		{"", 6, "", true},
	} {
		got, err := capAtomic(tc.in, tc.dec)
		if tc.err {
			if err == nil {
				t.Errorf("capAtomic(%q) = %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("capAtomic(%q, %d) = %v, %v; want %s", tc.in, tc.dec, got, err, tc.want)
		}
	}
}

func TestResultJSONShape(t *testing.T) {
	b, _ := json.Marshal(Receipt{Header: "PAYMENT-RESPONSE", Success: true, Transaction: "0x1", Network: "eip155:1"})
	if !strings.Contains(string(b), `"transaction":"0x1"`) {
		t.Fatal(string(b))
	}
}
