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
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/obolstack/obol/internal/buyer/buyertest"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/x402"
)

var sellerAddr = common.HexToAddress("0x209693Bc6afc0C5328bA36FaF03C514EF312287C")

func usdcReq(amount string) x402.Requirement { return buyertest.USDCBaseSepolia(amount, sellerAddr) }

func newSeller(t *testing.T, version int, reqs ...x402.Requirement) (*buyertest.Seller, *httptest.Server) {
	return buyertest.New(t, version, reqs...)
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
			s.WantBody = `{"city":"Lisbon"}`
			p := newPayer(t)
			res, err := p.Do(context.Background(), post(t, srv.URL+"/weather", s.WantBody))
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
			if got := len(s.Payments()); got != 1 {
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
	tenYears := usdcReq("1000")
	tenYears.MaxTimeoutSeconds = 10 * 365 * 24 * 3600
	hour := usdcReq("1000")
	hour.MaxTimeoutSeconds = 3600

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
		{"network filter", usdcReq("1000"), func(p *Payer) { p.Network = "base" }, "is not the one allowed by --chain"},
		{"default cap", usdcReq("20000"), func(p *Payer) { p.MaxAmount = "" }, "over the cap of 0.01 USDC"},
		{"validity over the default cap", tenYears, nil, "valid for 87600h0m0s (maxTimeoutSeconds 315360000), over the cap of 10m0s (raise --max-validity"},
		{"validity over a raised cap", hour, func(p *Payer) { p.MaxValidity = 30 * time.Minute }, "over the cap of 30m0s"},
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
				if len(s.Payments()) != 0 || s.Requests() != 1 {
					t.Fatalf("v%d: seller saw %d requests, %d payments; want 1, 0", version, s.Requests(), len(s.Payments()))
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
		s.Reject = true
		res, err := newPayer(t).Do(context.Background(), post(t, srv.URL, "x"))
		if !errors.Is(err, ErrPaymentRejected) || !strings.Contains(err.Error(), "insufficient_funds") {
			t.Fatalf("v%d: err = %v", version, err)
		}
		if res.Status != 402 || res.Receipt == nil || res.Receipt.Success || res.Paid() {
			t.Fatalf("v%d: result %+v", version, res)
		}
		if s.Requests() != 2 || len(s.Payments()) != 1 {
			t.Fatalf("v%d: %d requests %d payments, want exactly one retry", version, s.Requests(), len(s.Payments()))
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
	if len(s.Payments()) != 0 {
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
