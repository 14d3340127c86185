// Package purchase is the buyer's side of a PurchaseRequest: probe a seller's
// price, sign authorizations within the request's caps, and turn the request
// into the buyer proxy's upstream configuration. The CLI (obol buy create,
// refill) and the controller share it.
package purchase

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/obolstack/obol/internal/buyer/proxy"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
	"github.com/obolstack/obol/internal/x402"
)

// TotalSignedAnnotation counts the authorizations ever signed for a
// request. The signer (obol buy create/refill) writes it; the controller
// mirrors it into status.totalSigned; autoRefill.maxTotal caps it.
const TotalSignedAnnotation = "obol.org/total-signed"

// Condition types and reasons of a PurchaseRequest.
const (
	// ConditionPricingMismatch is True when the seller's probed price
	// differs from the price the authorizations were signed for.
	ConditionPricingMismatch = "PricingMismatch"
	// ConditionBuyerConfigured is True when the buyer proxy has the
	// request's upstream configuration.
	ConditionBuyerConfigured = "BuyerConfigured"
)

// Terms are a seller's price as its 402 states it, resolved against the
// chain registry.
type Terms struct {
	Version     int
	Requirement x402.Requirement
	Chain       evm.Chain
	Token       evm.Token
	Price       *big.Int
}

// ErrNotPaid means the endpoint answered without asking for payment.
var ErrNotPaid = errors.New("the endpoint did not answer 402 Payment Required")

// Probe asks endpoint for its price with an unpaid GET and returns the first
// exact requirement on a known chain and token (optionally only on network).
func Probe(ctx context.Context, client *http.Client, reg *evm.Registry, endpoint, network string) (*Terms, error) {
	if client == nil {
		client = &http.Client{Timeout: 15 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return nil, fmt.Errorf("probe %s: %w", endpoint, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("probe %s: %w", endpoint, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusPaymentRequired {
		return nil, fmt.Errorf("probe %s: %w (got %s)", endpoint, ErrNotPaid, resp.Status)
	}
	ch, err := x402.ParseChallenge(resp.Header, body)
	if err != nil {
		return nil, fmt.Errorf("probe %s: %w", endpoint, err)
	}
	want := ""
	if network != "" {
		if want, err = reg.Normalize(network); err != nil {
			return nil, err
		}
	}
	var why []string
	for _, r := range ch.Requirements {
		t, reason := resolve(reg, ch.Version, r)
		if reason == "" && want != "" && t.Chain.CAIP2 != want {
			reason = "on " + t.Chain.CAIP2 + ", not " + want
		}
		if reason != "" {
			why = append(why, reason)
			continue
		}
		return t, nil
	}
	return nil, fmt.Errorf("probe %s: no payable option (%s)", endpoint, strings.Join(why, "; "))
}

func resolve(reg *evm.Registry, version int, r x402.Requirement) (*Terms, string) {
	if r.Scheme != x402.SchemeExact {
		return nil, fmt.Sprintf("scheme %q is not supported", r.Scheme)
	}
	chain, err := reg.Chain(r.Network)
	if err != nil {
		return nil, fmt.Sprintf("unknown network %q", r.Network)
	}
	tok, err := reg.Token(chain.CAIP2, r.Asset)
	if err != nil {
		return nil, fmt.Sprintf("unknown asset %s on %s", r.Asset, chain.Name)
	}
	if (r.Extra.Name != "" && r.Extra.Name != tok.EIP712Name) || (r.Extra.Version != "" && r.Extra.Version != tok.EIP712Version) {
		return nil, fmt.Sprintf("EIP-712 domain %q/%q differs from the registry's %q/%q for %s", r.Extra.Name, r.Extra.Version, tok.EIP712Name, tok.EIP712Version, tok.Address.Hex())
	}
	price, err := evm.ParseAtomic(r.Amount)
	if err != nil || price.Sign() == 0 {
		return nil, fmt.Sprintf("amount %q is not a positive integer", r.Amount)
	}
	if !common.IsHexAddress(r.PayTo) {
		return nil, fmt.Sprintf("payTo %q is not an address", r.PayTo)
	}
	return &Terms{Version: version, Requirement: r, Chain: chain, Token: tok, Price: price}, ""
}

// Payment renders terms as the request's spec.payment.
func (t *Terms) Payment() v1alpha1.PurchasePayment {
	return v1alpha1.PurchasePayment{
		Network: t.Chain.CAIP2, PayTo: common.HexToAddress(t.Requirement.PayTo).Hex(), Price: t.Price.String(),
		Asset: t.Token.Address.Hex(), AssetSymbol: t.Token.Symbol, AssetDecimals: int32(t.Token.Decimals),
		EIP712Name: t.Token.EIP712Name, EIP712Version: t.Token.EIP712Version,
	}
}

// TotalSigned reads the signed-so-far count (the annotation, else the
// number of authorizations in the spec).
func TotalSigned(pr *v1alpha1.PurchaseRequest) int {
	if v, ok := pr.Annotations[TotalSignedAnnotation]; ok {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			return n
		}
	}
	return len(pr.Spec.PreSignedAuths)
}

// Allowance is how many of want authorizations may be signed now without
// passing maxTotal (0 = no cap) given totalSigned so far, and why fewer.
func Allowance(totalSigned, want, maxTotal int) (int, string) {
	if maxTotal <= 0 || totalSigned+want <= maxTotal {
		return want, ""
	}
	left := maxTotal - totalSigned
	if left < 0 {
		left = 0
	}
	return left, fmt.Sprintf("autoRefill.maxTotal is %d and %d were signed already", maxTotal, totalSigned)
}

// Sign signs n authorizations for the request's payment terms with key,
// each valid for validFor, spread over cover (proxy.Spread: windows back
// to back, so a pool lasts longer than the seller's maxTimeoutSeconds;
// cover ≤ validFor signs them all valid now).
func Sign(key *ecdsa.PrivateKey, pay v1alpha1.PurchasePayment, reg *evm.Registry, n int, now time.Time, validFor, cover time.Duration) ([]v1alpha1.PreSignedAuth, error) {
	chain, err := reg.Chain(pay.Network)
	if err != nil {
		return nil, err
	}
	tok := evm.Token{Chain: chain.CAIP2, Address: common.HexToAddress(pay.Asset), Symbol: pay.AssetSymbol,
		Decimals: uint8(pay.AssetDecimals), EIP712Name: pay.EIP712Name, EIP712Version: pay.EIP712Version}
	if tok.EIP712Name == "" || tok.EIP712Version == "" {
		known, err := reg.Token(chain.CAIP2, pay.Asset)
		if err != nil {
			return nil, fmt.Errorf("spec.payment has no EIP-712 domain and the registry does not know %s: %w", pay.Asset, err)
		}
		tok = known
	}
	price, err := evm.ParseAtomic(pay.Price)
	if err != nil {
		return nil, fmt.Errorf("spec.payment.price: %w", err)
	}
	signed, err := proxy.PreSignSpread(key, tok, chain.ChainID, common.HexToAddress(pay.PayTo), price, n, now, validFor, cover)
	if err != nil {
		return nil, err
	}
	out := make([]v1alpha1.PreSignedAuth, 0, len(signed))
	for _, s := range signed {
		a := s.Authorization
		out = append(out, v1alpha1.PreSignedAuth{Signature: s.Signature, From: a.From, To: a.To, Value: a.Value,
			ValidAfter: a.ValidAfter, ValidBefore: a.ValidBefore, Nonce: a.Nonce})
	}
	return out, nil
}

// PruneExpired drops authorizations that can no longer be used.
func PruneExpired(auths []v1alpha1.PreSignedAuth, now time.Time) []v1alpha1.PreSignedAuth {
	out := auths[:0:0]
	limit := big.NewInt(now.Unix() + 6)
	for _, a := range auths {
		exact, err := exactOf(a)
		if err != nil {
			continue
		}
		vb, ok := new(big.Int).SetString(exact.Authorization.ValidBefore, 10)
		if ok && vb.Cmp(limit) >= 0 {
			out = append(out, a)
		}
	}
	return out
}

// exactOf returns an authorization in its x402 form, from the fields or
// from a whole payment payload.
func exactOf(a v1alpha1.PreSignedAuth) (x402.ExactEVMPayload, error) {
	if a.Payload != "" {
		p, err := x402.DecodePayment("preSignedAuths.payload", a.Payload)
		if err != nil {
			return x402.ExactEVMPayload{}, err
		}
		if p.Exact == nil {
			return x402.ExactEVMPayload{}, errors.New("preSignedAuths.payload is not an exact payment")
		}
		return *p.Exact, nil
	}
	return x402.ExactEVMPayload{Signature: a.Signature, Authorization: x402.EIP3009Authorization{
		From: a.From, To: a.To, Value: a.Value, ValidAfter: a.ValidAfter, ValidBefore: a.ValidBefore, Nonce: a.Nonce}}, nil
}

// Validity is when a request's unspent authorizations expire.
type Validity struct {
	// Last is the latest validBefore: after it nothing can be paid.
	Last time.Time
	// Next is the earliest validBefore still ahead of now.
	Next time.Time
	// Unexpired counts authorizations whose validBefore is ahead of now.
	Unexpired int
}

// ValidityOf reads the expiry of pr's authorizations at now (zero times
// when it holds none).
func ValidityOf(pr *v1alpha1.PurchaseRequest, now time.Time) Validity {
	var v Validity
	for _, a := range pr.Spec.PreSignedAuths {
		e, err := exactOf(a)
		if err != nil {
			continue
		}
		vb, err := strconv.ParseInt(e.Authorization.ValidBefore, 10, 64)
		if err != nil {
			continue
		}
		t := time.Unix(vb, 0)
		if t.After(v.Last) {
			v.Last = t
		}
		if t.After(now) {
			v.Unexpired++
			if v.Next.IsZero() || t.Before(v.Next) {
				v.Next = t
			}
		}
	}
	return v
}

// Signer returns the payer address of the request's authorizations ("" if none).
func Signer(pr *v1alpha1.PurchaseRequest) string {
	for _, a := range pr.Spec.PreSignedAuths {
		if e, err := exactOf(a); err == nil && common.IsHexAddress(e.Authorization.From) {
			return common.HexToAddress(e.Authorization.From).Hex()
		}
	}
	return ""
}

// Upstream turns a request into the buyer proxy's upstream file.
func Upstream(pr *v1alpha1.PurchaseRequest) (*proxy.UpstreamConfig, error) {
	u := &proxy.UpstreamConfig{
		Name: pr.Name, Endpoint: pr.Spec.Endpoint, RemoteModel: pr.Spec.Model,
		Network: pr.Spec.Payment.Network, PayTo: pr.Spec.Payment.PayTo, Asset: pr.Spec.Payment.Asset,
		Price: pr.Spec.Payment.Price, EIP712Name: pr.Spec.Payment.EIP712Name, EIP712Version: pr.Spec.Payment.EIP712Version,
	}
	if ar := pr.Spec.AutoRefill; ar != nil {
		u.MaxSpendPerDay = ar.MaxSpendPerDay
	}
	for i, a := range pr.Spec.PreSignedAuths {
		e, err := exactOf(a)
		if err != nil {
			return nil, fmt.Errorf("spec.preSignedAuths[%d]: %w", i, err)
		}
		u.PreSignedAuths = append(u.PreSignedAuths, e)
	}
	return u, nil
}
