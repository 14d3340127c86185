package buyer

import (
	"bytes"
	"encoding/json"

	"github.com/obolstack/obol/internal/evm"
)

// PaymentView is the structured (-o json/yaml) form of a payment: what was
// asked and, once signed, what was signed. Every command that pays prints
// it in this shape.
type PaymentView struct {
	Version      int    `json:"x402Version"`
	Scheme       string `json:"scheme"`
	Network      string `json:"network"` // CAIP-2
	Chain        string `json:"chain"`   // registry name
	Asset        string `json:"asset"`
	Symbol       string `json:"symbol"`
	Decimals     uint8  `json:"decimals"`
	Amount       string `json:"amount"` // token units, e.g. "0.001"
	AmountAtomic string `json:"amountAtomic"`
	PayTo        string `json:"payTo"`
	Signed       bool   `json:"signed"`
	Header       string `json:"header,omitempty"`
	From         string `json:"from,omitempty"`
	Nonce        string `json:"nonce,omitempty"`
	ValidAfter   string `json:"validAfter,omitempty"`
	ValidBefore  string `json:"validBefore,omitempty"`
}

// View returns the payment's structured form, nil when no payment was
// asked for.
func (r *Result) View() *PaymentView {
	q := r.Quote
	if q == nil {
		return nil
	}
	p := &PaymentView{
		Version: q.Version, Scheme: q.Requirement.Scheme, Network: q.Chain.CAIP2, Chain: q.Chain.Name,
		Asset: q.Token.Address.Hex(), Symbol: q.Token.Symbol, Decimals: q.Token.Decimals,
		Amount: evm.FormatAmount(q.Amount, q.Token.Decimals), AmountAtomic: q.Amount.String(), PayTo: q.PayTo.Hex(),
	}
	if s := r.Signed; s != nil {
		p.Signed, p.Header, p.From, p.Nonce, p.ValidAfter, p.ValidBefore = true, s.Header, s.From, s.Nonce, s.ValidAfter, s.ValidBefore
	}
	return p
}

// BodyValue is a response body for structured output: a JSON body is
// embedded as JSON, anything else as a string.
func BodyValue(b []byte) any {
	t := bytes.TrimSpace(b)
	if len(t) > 0 && json.Valid(t) {
		return json.RawMessage(t)
	}
	return string(b)
}
