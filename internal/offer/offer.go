// Package offer is the one home of a ServiceOffer's rules: building an
// offer from a seller's request (`obol sell create`) and validating its
// payment terms, which the controller's payment gate and the verifier's
// route source both apply before anything is charged. Problems are typed
// by the field they are in, so each caller can name that field its own way
// (a flag, a spec path).
package offer

import (
	"fmt"
	"math/big"
	"strings"

	"github.com/ethereum/go-ethereum/common"

	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
)

// Field is the part of an offer a problem is in, named by its spec path.
type Field string

// Fields of an offer that can be wrong.
const (
	FieldName            Field = "name"
	FieldUpstream        Field = "upstream"
	FieldHealthPath      Field = "upstream.healthPath"
	FieldType            Field = "type"
	FieldModel           Field = "model"
	FieldPath            Field = "path"
	FieldScheme          Field = "scheme"
	FieldNetwork         Field = "network"
	FieldPayTo           Field = "payTo"
	FieldAsset           Field = "asset"
	FieldPrice           Field = "price"
	FieldPricePerRequest Field = "price.perRequest"
	FieldPricePerMTok    Field = "price.perMTok"
	FieldPricePerHour    Field = "price.perHour"
	FieldMaxTimeout      Field = "maxTimeoutSeconds"
	FieldSettle          Field = "settle"
)

// Problem is one thing wrong with an offer.
type Problem struct {
	Field Field
	Err   error
}

func (p *Problem) Error() string { return string(p.Field) + ": " + p.Err.Error() }

func (p *Problem) Unwrap() error { return p.Err }

// Error lists every problem found in an offer, one a line.
type Error struct {
	Problems []*Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// problems collects Problems; err is nil when there are none.
type problems []*Problem

func (ps *problems) add(f Field, err error) { *ps = append(*ps, &Problem{Field: f, Err: err}) }

func (ps *problems) addf(f Field, format string, a ...any) { ps.add(f, fmt.Errorf(format, a...)) }

func (ps problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return &Error{Problems: ps}
}

// Payment is an offer's payment terms after validation: the chain and
// token resolved from the registry and the prices in atomic units.
type Payment struct {
	Chain      evm.Chain
	Asset      v1alpha1.OfferAsset
	PayTo      common.Address
	PerRequest *big.Int // nil when unset
	PerMTok    *big.Int
	PerHour    *big.Int
}

// ValidatePayment checks an offer's payment terms the way the verifier
// charges them: the scheme is exact, the chain is known, payTo is a valid
// (checksum-correct when mixed case) non-zero address, the asset is known
// or fully described, every price parses exactly at the asset's decimals,
// and the price per request — the one the verifier charges — is set and
// above zero. The error is an *Error listing every problem.
func ValidatePayment(reg *evm.Registry, p v1alpha1.OfferPayment) (*Payment, error) {
	var errs problems
	out := &Payment{}

	if p.Scheme != "" && p.Scheme != v1alpha1.SchemeExact {
		errs.addf(FieldScheme, "%q is not supported: use %q", p.Scheme, v1alpha1.SchemeExact)
	}

	chain, err := reg.Chain(p.Network)
	if err != nil {
		errs.add(FieldNetwork, err)
	}
	out.Chain = chain

	addr, err := evm.ParsePayTo(p.PayTo)
	if err != nil {
		errs.add(FieldPayTo, err)
	}
	out.PayTo = addr

	if chain.CAIP2 == "" {
		return nil, errs.err()
	}
	asset, err := ResolveAsset(reg, chain.CAIP2, p.Asset)
	if err != nil {
		errs.add(FieldAsset, err)
		return nil, errs.err()
	}
	out.Asset = asset

	anySet := false
	for _, pr := range []struct {
		field Field
		v     string
		dst   **big.Int
	}{
		{FieldPricePerRequest, p.Price.PerRequest, &out.PerRequest},
		{FieldPricePerMTok, p.Price.PerMTok, &out.PerMTok},
		{FieldPricePerHour, p.Price.PerHour, &out.PerHour},
	} {
		if pr.v == "" {
			continue
		}
		anySet = true
		n, err := evm.ParseAmount(pr.v, uint8(asset.Decimals))
		if err != nil {
			errs.add(pr.field, err)
			continue
		}
		*pr.dst = n
	}
	switch {
	case !anySet:
		errs.addf(FieldPrice, "set at least one of perRequest, perMTok, perHour (e.g. --price 0.001)")
	case p.Price.PerRequest == "":
		// Without it the controller would publish a route the verifier
		// refuses to serve.
		errs.addf(FieldPricePerRequest, "not set: the verifier charges per request, so an offer needs a price per request")
	case out.PerRequest != nil && out.PerRequest.Sign() == 0 && len(errs) == 0:
		errs.addf(FieldPrice, "the price per request is zero; an offer must cost something")
	}
	if len(errs) > 0 {
		return nil, errs.err()
	}
	return out, nil
}

// ResolveAsset returns the asset an offer charges in on chain (a CAIP-2
// id): the registry's token when unset, otherwise the given asset, which
// must agree with the registry when the registry knows its address.
func ResolveAsset(reg *evm.Registry, chain string, a *v1alpha1.OfferAsset) (v1alpha1.OfferAsset, error) {
	if a == nil || a.Address == "" {
		sym := ""
		if a != nil {
			sym = a.Symbol
		}
		t, err := reg.Token(chain, sym)
		if err != nil {
			return v1alpha1.OfferAsset{}, err
		}
		return AssetFromToken(t), nil
	}
	addr, err := evm.ParsePayTo(a.Address)
	if err != nil {
		return v1alpha1.OfferAsset{}, fmt.Errorf("address: %w", err)
	}
	if t, err := reg.Token(chain, addr.Hex()); err == nil {
		if a.Decimals != int32(t.Decimals) {
			return v1alpha1.OfferAsset{}, fmt.Errorf("%s has %d decimals, not %d", t.Symbol, t.Decimals, a.Decimals)
		}
		out := *a
		out.Address = t.Address.Hex()
		if out.Symbol == "" {
			out.Symbol = t.Symbol
		}
		if out.EIP712Name == "" {
			out.EIP712Name = t.EIP712Name
		}
		if out.EIP712Version == "" {
			out.EIP712Version = t.EIP712Version
		}
		if out.TransferMethod == "" {
			out.TransferMethod = v1alpha1.TransferMethod(t.TransferMethod)
		}
		return out, nil
	}
	// A token the registry does not know: the offer must describe it fully,
	// or buyers cannot sign for it.
	if a.EIP712Name == "" || a.EIP712Version == "" {
		return v1alpha1.OfferAsset{}, fmt.Errorf("token %s is not in the registry for %s: set eip712Name and eip712Version", addr.Hex(), chain)
	}
	if a.Decimals < 0 || a.Decimals > 36 {
		return v1alpha1.OfferAsset{}, fmt.Errorf("decimals %d out of range 0-36", a.Decimals)
	}
	out := *a
	out.Address = addr.Hex()
	if out.TransferMethod == "" {
		out.TransferMethod = v1alpha1.TransferEIP3009
	}
	return out, nil
}

// AssetFromToken converts a registry token to the CRD's asset form.
func AssetFromToken(t evm.Token) v1alpha1.OfferAsset {
	tm := v1alpha1.TransferMethod(t.TransferMethod)
	if tm == "" {
		tm = v1alpha1.TransferEIP3009
	}
	return v1alpha1.OfferAsset{
		Address:        t.Address.Hex(),
		Symbol:         t.Symbol,
		Decimals:       int32(t.Decimals),
		TransferMethod: tm,
		EIP712Name:     t.EIP712Name,
		EIP712Version:  t.EIP712Version,
	}
}
