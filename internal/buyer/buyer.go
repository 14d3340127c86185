// Package buyer pays for x402-protected HTTP resources from a key on this
// machine: send the request, read the 402 challenge, pick a way to pay that
// the buyer's policy allows, sign an EIP-3009 authorization and retry once.
//
// The policy fails closed: a requirement on an unknown chain or asset, with an
// EIP-712 domain that disagrees with the registry, over the amount cap, or to a
// payee not on the allow-list is refused before anything is signed.
package buyer

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/x402"
)

// DefaultMaxAmount is the per-payment cap, in token units of the asset paid
// (for USDC: one cent), used when Payer.MaxAmount is empty.
const DefaultMaxAmount = "0.01"

// DefaultValidity is how long an authorization stays valid when the
// requirement's maxTimeoutSeconds is missing or zero.
const DefaultValidity = 60 * time.Second

// DefaultMaxValidity is the longest validity signed unless raised.
const DefaultMaxValidity = 10 * time.Minute

// DefaultMaxBodyBytes bounds the response bodies the payer reads.
const DefaultMaxBodyBytes = 64 << 20

// Payer pays for one request at a time. The zero value of every field but
// Key has a sensible default; a Payer is safe for concurrent use once built.
type Payer struct {
	// Key signs the authorizations. Preview works without one.
	Key *ecdsa.PrivateKey
	// Registry resolves chains and tokens (and their EIP-712 domains);
	// nil means evm.Default().
	Registry *evm.Registry
	// HTTPClient sends the requests; nil means a client with a 2 minute
	// timeout.
	HTTPClient *http.Client
	// MaxValidity caps how long a signed authorization stays valid (the
	// seller's maxTimeoutSeconds): a seller asking for more is refused,
	// since a longer-lived authorization can be spent later or twice by a
	// careless seller. 0 means DefaultMaxValidity.
	MaxValidity time.Duration
	// MaxAmount caps one payment, as an exact decimal in token units of the
	// asset paid ("0.05"); "" means DefaultMaxAmount. Digits beyond the
	// token's precision are dropped (the cap is rounded down).
	MaxAmount string
	// AllowPayTo, when not empty, is the only set of payees accepted.
	AllowPayTo []common.Address
	// Network, when set (a name or CAIP-2 id), is the only chain accepted.
	Network string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxBodyBytes bounds each response body read; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Headers says which request headers reach the seller: credentials
	// (Authorization, Cookie, Proxy-Authorization) only when allowed.
	Headers HeaderPolicy
	// MaxPendingWait bounds how long a seller's "settlement pending"
	// answer is waited out with the same payment (0: DefaultMaxPendingWait).
	MaxPendingWait time.Duration
	// OnPending, when set, hears of each wait for a pending settlement:
	// the number of the paid send that follows and the wait before it.
	OnPending func(attempt int, wait time.Duration)
}

// Quote is the way to pay the payer chose from a challenge.
type Quote struct {
	// Version is the server's x402 version; the payment is sent in it.
	Version     int
	Requirement x402.Requirement
	Chain       evm.Chain
	Token       evm.Token
	Amount      *big.Int
	PayTo       common.Address
	// Validity is how long the authorization will be valid.
	Validity time.Duration
}

// Display renders the amount with the token's symbol ("0.001 USDC").
func (q *Quote) Display() string {
	return evm.FormatAmount(q.Amount, q.Token.Decimals) + " " + q.Token.Symbol
}

// Signed describes the authorization that was signed and sent.
type Signed struct {
	Header      string `json:"header"`
	From        string `json:"from"`
	To          string `json:"to"`
	Value       string `json:"value"`
	ValidAfter  string `json:"validAfter"`
	ValidBefore string `json:"validBefore"`
	Nonce       string `json:"nonce"`
}

// Receipt is the seller's settlement answer (PAYMENT-RESPONSE or
// X-PAYMENT-RESPONSE).
type Receipt struct {
	Header       string `json:"header"`
	Success      bool   `json:"success"`
	Transaction  string `json:"transaction"`
	Network      string `json:"network"`
	Payer        string `json:"payer,omitempty"`
	ErrorReason  string `json:"errorReason,omitempty"`
	ErrorMessage string `json:"errorMessage,omitempty"`
}

// Result is the outcome of Do or Preview.
type Result struct {
	// Status, Header and Body are of the final response: the first one when
	// it was not a 402 (or in a preview), else the paid retry's.
	Status int
	Header http.Header
	Body   []byte
	// Challenge is the parsed 402 answer, nil when none came.
	Challenge *x402.Challenge
	// Quote is the chosen way to pay, nil when none was needed.
	Quote *Quote
	// Signed is set once an authorization was signed and sent.
	Signed *Signed
	// Receipt is the seller's settlement header, when it sent one.
	Receipt *Receipt
	// ReceiptErr says why a settlement header present was unreadable.
	ReceiptErr error
	// PendingRetries counts the times the paid request was sent again with
	// the same payment because the seller answered "settlement pending".
	PendingRetries int
}

// Paid reports whether a payment was sent and the seller settled it.
func (r *Result) Paid() bool {
	return r.Signed != nil && r.Receipt != nil && r.Receipt.Success && r.Status < 400
}

// Errors, distinguishable with errors.Is.
var (
	// ErrRefused: no requirement of the challenge passes the policy;
	// nothing was signed.
	ErrRefused = errors.New("refusing to pay")
	// ErrPaymentRejected: the server answered 402 again after the payment.
	ErrPaymentRejected = errors.New("payment rejected by the server")
	// ErrBadChallenge: the 402 answer could not be read; nothing was signed.
	ErrBadChallenge = errors.New("unreadable 402 challenge")
)

// Rejection says why one requirement of a challenge was not acceptable.
type Rejection struct {
	Index       int
	Requirement x402.Requirement
	Reason      string
}

// RefusalError lists why every requirement was refused. It matches
// ErrRefused.
type RefusalError struct {
	Rejections []Rejection
}

func (e *RefusalError) Error() string {
	if len(e.Rejections) == 1 {
		return fmt.Sprintf("%s: %s; nothing was signed", ErrRefused, e.Rejections[0].Reason)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: none of the %d ways to pay is acceptable; nothing was signed", ErrRefused, len(e.Rejections))
	for _, r := range e.Rejections {
		fmt.Fprintf(&b, "\n  option %d (%s on %s): %s", r.Index+1, r.Requirement.Scheme, r.Requirement.Network, r.Reason)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrRefused) true.
func (e *RefusalError) Is(target error) bool { return target == ErrRefused }

func (p *Payer) registry() *evm.Registry {
	if p.Registry != nil {
		return p.Registry
	}
	return evm.Default()
}

func (p *Payer) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func (p *Payer) client() *http.Client {
	if p.HTTPClient != nil {
		return p.HTTPClient
	}
	return &http.Client{Timeout: 2 * time.Minute}
}

func (p *Payer) maxBody() int64 {
	if p.MaxBodyBytes > 0 {
		return p.MaxBodyBytes
	}
	return DefaultMaxBodyBytes
}

// Address returns the payer's account, or the zero address without a key.
func (p *Payer) Address() common.Address {
	if p.Key == nil {
		return common.Address{}
	}
	return crypto.PubkeyToAddress(p.Key.PublicKey)
}

// ValidateMaxAmount checks a cap given as a decimal number of token units.
func ValidateMaxAmount(s string) error {
	if s == "" {
		return nil
	}
	_, err := capAtomic(s, 0)
	return err
}

// capAtomic converts a decimal cap into atomic units of a token with the
// given decimals, dropping digits beyond its precision (rounding down).
func capAtomic(s string, decimals uint8) (*big.Int, error) {
	v := strings.TrimSpace(s)
	whole, frac, _ := strings.Cut(v, ".")
	if len(frac) > int(decimals) {
		frac = frac[:decimals]
	}
	for _, part := range []string{whole, frac} {
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return nil, fmt.Errorf("invalid max amount %q: want a decimal number of token units such as 0.05", s)
			}
		}
	}
	if whole == "" && frac == "" {
		return nil, fmt.Errorf("invalid max amount %q: want a decimal number of token units such as 0.05", s)
	}
	if whole == "" {
		whole = "0"
	}
	num := whole
	if frac != "" {
		num += "." + frac
	}
	n, err := evm.ParseAmount(num, decimals)
	if err != nil {
		return nil, fmt.Errorf("invalid max amount %q: %w", s, err)
	}
	return n, nil
}

// Choose picks the first requirement of the challenge (in the server's order
// of preference) that the policy accepts. When none is acceptable it returns
// a *RefusalError naming the reason for each.
func (p *Payer) Choose(ch *x402.Challenge) (*Quote, error) {
	if ch == nil || len(ch.Requirements) == 0 {
		return nil, fmt.Errorf("%w: the server offers no way to pay", ErrRefused)
	}
	maxAmount := p.MaxAmount
	if maxAmount == "" {
		maxAmount = DefaultMaxAmount
	}
	var want string
	if p.Network != "" {
		c, err := p.registry().Chain(p.Network)
		if err != nil {
			return nil, fmt.Errorf("network filter: %w", err)
		}
		want = c.CAIP2
	}
	refusal := &RefusalError{}
	for i, req := range ch.Requirements {
		q, reason := p.check(ch.Version, req, maxAmount, want)
		if reason != "" {
			refusal.Rejections = append(refusal.Rejections, Rejection{Index: i, Requirement: req, Reason: reason})
			continue
		}
		return q, nil
	}
	return nil, refusal
}

func (p *Payer) check(version int, req x402.Requirement, maxAmount, wantChain string) (*Quote, string) {
	if req.Scheme != x402.SchemeExact {
		return nil, fmt.Sprintf("scheme %q is not supported (only %q)", req.Scheme, x402.SchemeExact)
	}
	if m := req.Extra.AssetTransferMethod; m != "" && !strings.EqualFold(m, x402.TransferMethodEIP3009) {
		return nil, fmt.Sprintf("asset transfer method %q is not supported (only %s)", m, x402.TransferMethodEIP3009)
	}
	reg := p.registry()
	chain, err := reg.Chain(req.Network)
	if err != nil {
		return nil, fmt.Sprintf("unknown network %q", req.Network)
	}
	if wantChain != "" && chain.CAIP2 != wantChain {
		return nil, fmt.Sprintf("network %s is not the one allowed by --chain (%s)", chain.Name, wantChain)
	}
	if !common.IsHexAddress(req.Asset) || !strings.HasPrefix(strings.ToLower(req.Asset), "0x") {
		return nil, fmt.Sprintf("asset %q is not a token contract address", req.Asset)
	}
	token, err := reg.Token(chain.CAIP2, req.Asset)
	if err != nil || token.Address != common.HexToAddress(req.Asset) {
		hint := ""
		if chain.Dev {
			hint = " (for a running `obol dev`, its stack file registers the token; or pass --asset/--eip712-name/--eip712-version/--asset-decimals)"
		}
		return nil, fmt.Sprintf("unknown asset %s on %s: its EIP-712 domain is not in the registry, and obol never guesses one%s", req.Asset, chain.Name, hint)
	}
	if token.TransferMethod != "" && !strings.EqualFold(token.TransferMethod, x402.TransferMethodEIP3009) {
		return nil, fmt.Sprintf("token %s on %s is transferred with %s, which is not supported", token.Symbol, chain.Name, token.TransferMethod)
	}
	if n := req.Extra.Name; n != "" && n != token.EIP712Name {
		return nil, fmt.Sprintf("the server says the EIP-712 domain name of %s on %s is %q, the registry says %q: refusing to sign with a domain that may be wrong", token.Symbol, chain.Name, n, token.EIP712Name)
	}
	if v := req.Extra.Version; v != "" && v != token.EIP712Version {
		return nil, fmt.Sprintf("the server says the EIP-712 domain version of %s on %s is %q, the registry says %q: refusing to sign with a domain that may be wrong", token.Symbol, chain.Name, v, token.EIP712Version)
	}
	amount, err := evm.ParseAtomic(req.Amount)
	if err != nil {
		return nil, fmt.Sprintf("amount %q is not a whole number of atomic units", req.Amount)
	}
	if amount.Sign() == 0 {
		return nil, "amount is zero"
	}
	limit, err := capAtomic(maxAmount, token.Decimals)
	if err != nil {
		return nil, err.Error()
	}
	if amount.Cmp(limit) > 0 {
		return nil, fmt.Sprintf("price %s %s is over the cap of %s %s (raise --max-amount to pay it)",
			evm.FormatAmount(amount, token.Decimals), token.Symbol, evm.FormatAmount(limit, token.Decimals), token.Symbol)
	}
	if !common.IsHexAddress(req.PayTo) {
		return nil, fmt.Sprintf("payTo %q is not an address", req.PayTo)
	}
	payTo := common.HexToAddress(req.PayTo)
	if payTo == (common.Address{}) {
		return nil, "payTo is the zero address"
	}
	if len(p.AllowPayTo) > 0 {
		ok := false
		for _, a := range p.AllowPayTo {
			if a == payTo {
				ok = true
				break
			}
		}
		if !ok {
			return nil, fmt.Sprintf("payTo %s is not in --allow-pay-to", payTo.Hex())
		}
	}
	validity := time.Duration(req.MaxTimeoutSeconds) * time.Second
	if validity <= 0 {
		validity = DefaultValidity
	}
	maxValidity := p.MaxValidity
	if maxValidity <= 0 {
		maxValidity = DefaultMaxValidity
	}
	if validity > maxValidity {
		return nil, fmt.Sprintf("the seller asks for an authorization valid for %s (maxTimeoutSeconds %d), over the cap of %s (raise --max-validity to sign it)",
			validity, req.MaxTimeoutSeconds, maxValidity)
	}
	return &Quote{Version: version, Requirement: req, Chain: chain, Token: token, Amount: amount, PayTo: payTo, Validity: validity}, ""
}

// Do sends req; when the server answers 402 it chooses a way to pay, signs
// an EIP-3009 authorization and retries once with the payment header of the
// server's version, replaying the request body. A non-402 first answer is
// returned as is. A 402 after paying returns the result and an error
// matching ErrPaymentRejected. A "settlement pending" answer to the paid
// request is waited out by resending it with the same payment (see
// Engine); when that gives up the result is the last 503 and the error
// matches ErrSettlementPending.
func (p *Payer) Do(ctx context.Context, req *http.Request) (*Result, error) {
	if p.Key == nil {
		return nil, errors.New("no signing key: load one with --key-file")
	}
	return p.do(ctx, req, true)
}

// Preview sends req once and, on a 402, chooses the way to pay without
// signing anything. Result.Quote says what Do would pay.
func (p *Payer) Preview(ctx context.Context, req *http.Request) (*Result, error) {
	return p.do(ctx, req, false)
}

func (p *Payer) do(ctx context.Context, req *http.Request, pay bool) (*Result, error) {
	if err := ValidateMaxAmount(p.MaxAmount); err != nil {
		return nil, err
	}
	if err := replayable(req, p.maxBody()); err != nil {
		return nil, err
	}
	var quote *Quote
	var signed *Signed
	ex, err := p.engine().Do(ctx, req, func(_ context.Context, ch *x402.Challenge, _ *url.URL) (string, string, error) {
		q, err := p.Choose(ch)
		if err != nil {
			return "", "", err
		}
		quote = q
		if !pay {
			return "", "", nil
		}
		payment, s, err := p.sign(q)
		if err != nil {
			return "", "", err
		}
		name, value, err := payment.Encode()
		if err != nil {
			return "", "", fmt.Errorf("encode payment: %w", err)
		}
		s.Header = name
		signed = s
		return name, value, nil
	})
	if ex == nil {
		return nil, err
	}
	if errors.Is(err, ErrSendPaid) {
		// The authorization left this machine; the seller may still settle it.
		return &Result{Challenge: ex.Challenge, Quote: quote, Signed: signed}, fmt.Errorf("send the paid request (authorization %s was sent and may still be settled): %w", signed.Nonce, err)
	}
	res, rerr := p.read(ex.Response, req)
	if rerr != nil {
		if err == nil {
			err = rerr
		}
		if res == nil {
			res = &Result{}
		}
	}
	res.Challenge, res.Quote, res.Signed = ex.Challenge, quote, signed
	res.Receipt, res.ReceiptErr = ex.Receipt, ex.ReceiptErr
	res.PendingRetries = ex.PendingRetries
	if errors.Is(err, ErrSettlementPending) && signed != nil {
		err = fmt.Errorf("authorization %s: %w", signed.Nonce, err)
	}
	if err != nil {
		return res, err
	}
	if ex.Paid && res.Status == http.StatusPaymentRequired {
		return res, rejection(res)
	}
	return res, nil
}

func (p *Payer) engine() *Engine {
	limit := int64(DefaultChallengeBytes)
	if p.maxBody() < limit {
		limit = p.maxBody()
	}
	return &Engine{Client: p.client(), Headers: p.Headers, MaxChallengeBytes: limit, MaxPendingWait: p.MaxPendingWait, OnPending: p.OnPending}
}

// read reads the final response, bounded.
func (p *Payer) read(resp *http.Response, req *http.Request) (*Result, error) {
	defer resp.Body.Close()
	limit := p.maxBody()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read response of %s %s: %w", req.Method, req.URL.Redacted(), err)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("response of %s %s is larger than %d bytes", req.Method, req.URL.Redacted(), limit)
	}
	return &Result{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

func (p *Payer) sign(q *Quote) (*x402.Payment, *Signed, error) {
	from := crypto.PubkeyToAddress(p.Key.PublicKey)
	auth, err := evm.NewAuthorization(from, q.PayTo, q.Amount, p.now(), q.Validity)
	if err != nil {
		return nil, nil, err
	}
	sig, err := evm.Sign(p.Key, q.Token.Domain(q.Chain.ChainID), auth)
	if err != nil {
		return nil, nil, err
	}
	w := auth.Wire()
	payment, err := x402.NewExactPayment(q.Version, q.Requirement, x402.ExactEVMPayload{Signature: hexutil.Encode(sig), Authorization: w})
	if err != nil {
		return nil, nil, fmt.Errorf("build payment: %w", err)
	}
	return payment, &Signed{From: w.From, To: w.To, Value: w.Value, ValidAfter: w.ValidAfter, ValidBefore: w.ValidBefore, Nonce: w.Nonce}, nil
}

// replayable makes sure the request body can be sent twice.
func replayable(req *http.Request, limit int64) error {
	if req.Body == nil || req.Body == http.NoBody || req.GetBody != nil {
		return nil
	}
	b, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	_ = req.Body.Close()
	if err != nil {
		return fmt.Errorf("read request body: %w", err)
	}
	if int64(len(b)) > limit {
		return fmt.Errorf("request body larger than %d bytes", limit)
	}
	req.Body = io.NopCloser(bytes.NewReader(b))
	req.ContentLength = int64(len(b))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	return nil
}

// readReceipt reads the settlement header of the version, falling back to
// the other version's name (servers mid-migration).
func readReceipt(h http.Header, version int) (*Receipt, error) {
	names := []string{x402.ResponseHeaderName(version), x402.HeaderPaymentResponse, x402.HeaderXPaymentResponse}
	for _, name := range names {
		v := h.Get(name)
		if v == "" {
			continue
		}
		s, err := x402.DecodeSettleResponse(name, v)
		if err != nil {
			return nil, err
		}
		return &Receipt{Header: name, Success: s.Success, Transaction: s.Transaction, Network: s.Network,
			Payer: s.Payer, ErrorReason: s.ErrorReason, ErrorMessage: s.ErrorMessage}, nil
	}
	return nil, nil
}

func rejection(res *Result) error {
	var parts []string
	if res.Receipt != nil {
		if res.Receipt.ErrorReason != "" {
			parts = append(parts, res.Receipt.ErrorReason)
		}
		if res.Receipt.ErrorMessage != "" {
			parts = append(parts, res.Receipt.ErrorMessage)
		}
	}
	if ch, err := x402.ParseChallenge(res.Header, res.Body); err == nil && ch.Error != "" {
		parts = append(parts, ch.Error)
	}
	why := "the server gave no reason"
	if len(parts) > 0 {
		why = strings.Join(dedupe(parts), ": ")
	}
	return fmt.Errorf("%w: it answered 402 again after the payment (%s); not retrying", ErrPaymentRejected, why)
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	out := in[:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
