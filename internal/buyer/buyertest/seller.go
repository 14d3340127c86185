// Package buyertest provides an x402 seller for tests of buyers: an
// http.Handler that speaks exactly one protocol version, answers 402 with
// its requirements and checks each payment the way a facilitator would
// (version and header, network, recipient, value, validity window, EIP-712
// signature recovered with the registry's domain, unused nonce) — without a
// chain. Settlement is simulated with a made-up transaction hash.
package buyertest

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/x402"
)

// Seller is the test server's state.
type Seller struct {
	Version      int
	Requirements []x402.Requirement
	// Registry gives the domain the signature must recover with
	// (default evm.NewRegistry()).
	Registry *evm.Registry
	// WantBody, when set, must be the body of the paid request.
	WantBody string
	// Reject answers 402 even to a good payment (insufficient_funds).
	Reject bool
	// Content is served to a paid request (default {"forecast":"sunny"}).
	Content string
	// NoSettlementHeader serves an accepted payment without the
	// payment-response header, as a seller that settles out of band (or
	// is misconfigured) does.
	NoSettlementHeader bool

	mu       sync.Mutex
	requests int
	payments []Payment
	nonces   map[[32]byte]bool
}

// Payment is one payment the seller received.
type Payment struct {
	From   common.Address
	Value  string
	Nonce  [32]byte
	Reason string // "" when accepted
}

// New starts a seller on a loopback httptest server closed at test end.
func New(t testing.TB, version int, reqs ...x402.Requirement) (*Seller, *httptest.Server) {
	s := &Seller{Version: version, Requirements: reqs}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

// USDCBaseSepolia is a requirement for amount atomic units of USDC on Base
// Sepolia to payTo, as a real seller would state it.
func USDCBaseSepolia(amount string, payTo common.Address) x402.Requirement {
	return x402.Requirement{
		Scheme: x402.SchemeExact, Network: "eip155:84532", NetworkV1: "base-sepolia", Amount: amount,
		Asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e", PayTo: payTo.Hex(), MaxTimeoutSeconds: 60,
		Extra:    x402.Extra{Name: "USDC", Version: "2"},
		Resource: x402.ResourceInfo{URL: "http://example.test/weather", Description: "weather", MimeType: "application/json"},
	}
}

// Requests counts every request served.
func (s *Seller) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Payments lists the payment headers received, in order.
func (s *Seller) Payments() []Payment {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Payment(nil), s.payments...)
}

func (s *Seller) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.requests++
	if s.nonces == nil {
		s.nonces = map[[32]byte]bool{}
	}
	s.mu.Unlock()

	header := x402.PaymentHeaderName(s.Version)
	other := x402.PaymentHeaderName(3 - s.Version)
	if r.Header.Get(other) != "" {
		http.Error(w, "this server speaks x402 v"+string(rune('0'+s.Version))+"; got "+other, http.StatusBadRequest)
		return
	}
	v := r.Header.Get(header)
	if v == "" {
		s.challenge(w, "payment required")
		return
	}
	p, err := x402.DecodePayment(header, v)
	if err != nil || p.Version != s.Version || p.Exact == nil {
		http.Error(w, "bad payment header", http.StatusBadRequest)
		return
	}
	req := s.Requirements[len(s.Requirements)-1]
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
	reg := s.Registry
	if reg == nil {
		reg = evm.NewRegistry()
	}
	fail := ""
	chain, cerr := reg.Chain(req.Network)
	token, terr := reg.Token(req.Network, req.Asset)
	if cerr != nil || terr != nil {
		fail = x402.ReasonInvalidNetwork
	} else if signer, err := evm.Recover(token.Domain(chain.ChainID), auth, sig); err != nil || signer != auth.From {
		fail = x402.ReasonInvalidSignature
	}
	switch {
	case fail != "":
	case auth.To != common.HexToAddress(req.PayTo):
		fail = x402.ReasonRecipientMismatch
	case auth.Value.String() != req.Amount:
		fail = x402.ReasonValueMismatch
	case evm.CheckWindow(auth, time.Now(), 6*time.Second) != nil:
		fail = x402.ReasonValidBefore
	case s.Version == x402.Version1 && (p.V1.Network != req.V1().Network || p.V1.Scheme != x402.SchemeExact):
		fail = x402.ReasonInvalidNetwork
	case s.Version == x402.Version2 && (p.V2.Accepted.Network != req.Network || p.V2.Accepted.Amount != req.Amount || p.V2.Accepted.PayTo != req.PayTo):
		fail = x402.ReasonInvalidPaymentRequirements
	}
	s.mu.Lock()
	if fail == "" && s.nonces[auth.Nonce] {
		fail = x402.ReasonNonceAlreadyUsed
	}
	s.nonces[auth.Nonce] = true
	if fail == "" && s.Reject {
		fail = x402.ReasonInsufficientFunds
	}
	s.payments = append(s.payments, Payment{From: auth.From, Value: auth.Value.String(), Nonce: auth.Nonce, Reason: fail})
	s.mu.Unlock()
	if s.WantBody != "" && string(body) != s.WantBody {
		http.Error(w, "request body was not replayed: got "+string(body), http.StatusBadRequest)
		return
	}
	if fail != "" {
		settle, _ := x402.EncodeSettleResponse(x402.SettleResponse{Success: false, ErrorReason: fail, Network: req.Network})
		w.Header().Set(x402.ResponseHeaderName(s.Version), settle)
		s.challenge(w, fail)
		return
	}
	h := sha256.Sum256(auth.Nonce[:])
	settle, _ := x402.EncodeSettleResponse(x402.SettleResponse{Success: true, Payer: auth.From.Hex(),
		Transaction: "0x" + hex.EncodeToString(h[:]), Network: req.Network})
	if !s.NoSettlementHeader {
		w.Header().Set(x402.ResponseHeaderName(s.Version), settle)
	}
	w.Header().Set("Content-Type", "application/json")
	content := s.Content
	if content == "" {
		content = `{"forecast":"sunny"}`
	}
	_, _ = io.WriteString(w, content)
}

func (s *Seller) challenge(w http.ResponseWriter, msg string) {
	body, header, err := x402.PaymentRequired(s.Version, msg, s.Requirements)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if header != "" {
		w.Header().Set(x402.HeaderPaymentRequired, header)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusPaymentRequired)
	_, _ = w.Write(body)
}
