package controller

import (
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/ethereum/go-ethereum/common"

	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
)

// ValidatedPayment is an offer's payment after validation: the chain and
// token resolved from the registry and the prices in atomic units.
type ValidatedPayment struct {
	Chain      evm.Chain
	Asset      v1alpha1.OfferAsset
	PayTo      common.Address
	PerRequest *big.Int // nil when unset
	PerMTok    *big.Int
	PerHour    *big.Int
}

// ValidatePayment checks an offer's payment terms the way the verifier
// will use them: the chain is known, payTo is a valid (checksum-correct
// when mixed case) non-zero address, the asset is known or fully
// described, and every price parses exactly at the asset's decimals with
// at least one above zero. The error lists every problem found.
func ValidatePayment(reg *evm.Registry, p v1alpha1.OfferPayment) (*ValidatedPayment, error) {
	var errs []error
	out := &ValidatedPayment{}

	if p.Scheme != "" && p.Scheme != v1alpha1.SchemeExact {
		errs = append(errs, fmt.Errorf("scheme %q is not supported: use %q", p.Scheme, v1alpha1.SchemeExact))
	}

	chain, err := reg.Chain(p.Network)
	if err != nil {
		errs = append(errs, fmt.Errorf("network: %w", err))
	}
	out.Chain = chain

	addr, err := ParseAddress(p.PayTo)
	if err != nil {
		errs = append(errs, fmt.Errorf("payTo: %w", err))
	} else if addr == (common.Address{}) {
		errs = append(errs, errors.New("payTo: the zero address cannot receive payments"))
	}
	out.PayTo = addr

	var decimals int32 = -1
	if chain.CAIP2 != "" {
		asset, err := ResolveAsset(reg, chain.CAIP2, p.Asset)
		if err != nil {
			errs = append(errs, fmt.Errorf("asset: %w", err))
		} else {
			out.Asset = asset
			decimals = asset.Decimals
		}
	}

	if decimals >= 0 {
		anyPositive, anySet := false, false
		for _, pr := range []struct {
			name string
			v    string
			dst  **big.Int
		}{
			{"price.perRequest", p.Price.PerRequest, &out.PerRequest},
			{"price.perMTok", p.Price.PerMTok, &out.PerMTok},
			{"price.perHour", p.Price.PerHour, &out.PerHour},
		} {
			if pr.v == "" {
				continue
			}
			anySet = true
			n, err := evm.ParseAmount(pr.v, uint8(decimals))
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", pr.name, err))
				continue
			}
			if n.Sign() > 0 {
				anyPositive = true
			}
			*pr.dst = n
		}
		switch {
		case !anySet:
			errs = append(errs, errors.New("price: set at least one of perRequest, perMTok, perHour (e.g. --price 0.001)"))
		case !anyPositive && len(errs) == 0:
			errs = append(errs, errors.New("price: every price is zero; an offer must cost something"))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// ParseAddress accepts 0x + 40 hex digits. An all-lower or all-upper case
// address is accepted as is; a mixed-case one must carry the correct EIP-55
// checksum, which catches a mistyped character.
func ParseAddress(s string) (common.Address, error) {
	v := strings.TrimSpace(s)
	if v == "" {
		return common.Address{}, errors.New("no address given: use 0x followed by 40 hex digits")
	}
	if !common.IsHexAddress(v) || !strings.HasPrefix(strings.ToLower(v), "0x") {
		return common.Address{}, fmt.Errorf("%q is not an address: use 0x followed by 40 hex digits", s)
	}
	a := common.HexToAddress(v)
	hex := v[2:]
	if hex != strings.ToLower(hex) && hex != strings.ToUpper(hex) && a.Hex() != "0x"+hex {
		// Do not print the checksummed form: after a typo it is the checksum
		// of the wrong address, and copying it would send money there.
		return common.Address{}, fmt.Errorf("%q fails its EIP-55 checksum (mixed case): a character is probably mistyped; copy the address again from its source", s)
	}
	return a, nil
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
	addr, err := ParseAddress(a.Address)
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
