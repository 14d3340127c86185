package evm

import (
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/ethereum/go-ethereum/common"

	"github.com/obolstack/obol/internal/x402"
)

// DomainOverride replaces parts of the EIP-712 domain the registry would
// give; empty fields keep the registry's value.
type DomainOverride struct {
	Name    string
	Version string
	ChainID int64
	Asset   string
}

// SignerCheck is the outcome of recovering an exact/EIP-3009 payment's signer.
type SignerCheck struct {
	Chain       string         `json:"chain"` // CAIP-2
	Domain      DomainJSON     `json:"domain"`
	DomainFrom  string         `json:"domainFrom"` // "registry", "payment", "flags" or a mix
	From        common.Address `json:"from"`
	Recovered   common.Address `json:"recovered"`
	Matches     bool           `json:"matches"`
	Digest      common.Hash    `json:"digest"`
	Amount      string         `json:"amount,omitempty"` // in token units when the token is known
	TokenSymbol string         `json:"tokenSymbol,omitempty"`
}

// DomainJSON is the printable form of a Domain.
type DomainJSON struct {
	Name              string `json:"name"`
	Version           string `json:"version"`
	ChainID           int64  `json:"chainId"`
	VerifyingContract string `json:"verifyingContract"`
}

// CheckPaymentSigner recovers the signer of an exact EVM payment. The domain
// comes from the registry (chain from the payment's network, token from its
// asset), filled from the payment's own extra where the registry has no
// token, and overridden by o.
func CheckPaymentSigner(reg *Registry, p *x402.Payment, o DomainOverride) (*SignerCheck, error) {
	if p == nil || p.Exact == nil {
		return nil, errors.New("not an exact/EIP-3009 payment")
	}
	auth, err := AuthorizationFromWire(p.Exact.Authorization)
	if err != nil {
		return nil, err
	}
	sig, err := DecodeSignature(p.Exact.Signature)
	if err != nil {
		return nil, err
	}
	var d Domain
	var sources []string
	chainID := o.ChainID
	caip := ""
	if c, cerr := reg.Chain(p.Network); cerr == nil {
		caip = c.CAIP2
		if chainID == 0 {
			chainID = c.ChainID
		}
	} else if chainID == 0 {
		return nil, fmt.Errorf("payment network %q: %w; pass --chain-id", p.Network, cerr)
	}
	if caip == "" {
		caip = fmt.Sprintf("eip155:%d", chainID)
	}
	asset := o.Asset
	var extra x402.Extra
	if p.V2 != nil {
		if asset == "" {
			asset = p.V2.Accepted.Asset
		}
		if p.V2.Accepted.Extra != nil {
			extra = *p.V2.Accepted.Extra
		}
	}
	check := &SignerCheck{Chain: caip, From: auth.From}
	if tok, terr := reg.Token(caip, asset); terr == nil {
		d = tok.Domain(chainID)
		if asset == "" {
			sources = append(sources, "registry, the chain's "+tok.Symbol)
		} else {
			sources = append(sources, "registry")
		}
		check.Amount = FormatAmount(auth.Value, tok.Decimals)
		check.TokenSymbol = tok.Symbol
	} else {
		if asset == "" {
			return nil, errors.New("the payment does not name its asset and the chain has no known token: pass --asset")
		}
		if !common.IsHexAddress(asset) {
			return nil, fmt.Errorf("asset %q is not an address", asset)
		}
		d = Domain{Name: extra.Name, Version: extra.Version, ChainID: big.NewInt(chainID), VerifyingContract: common.HexToAddress(asset)}
		sources = append(sources, "payment")
	}
	if o.Name != "" || o.Version != "" || o.ChainID != 0 {
		sources = append(sources, "flags")
	}
	if o.Name != "" {
		d.Name = o.Name
	}
	if o.Version != "" {
		d.Version = o.Version
	}
	if d.Name == "" || d.Version == "" {
		return nil, errors.New("unknown EIP-712 domain name/version for this token: pass --eip712-name and --eip712-version")
	}
	rec, err := Recover(d, auth, sig)
	if err != nil {
		return nil, err
	}
	check.Domain = DomainJSON{Name: d.Name, Version: d.Version, ChainID: d.ChainID.Int64(), VerifyingContract: d.VerifyingContract.Hex()}
	check.DomainFrom = strings.Join(sources, "+")
	check.Recovered = rec
	check.Matches = rec == auth.From
	check.Digest = Digest(d, auth)
	return check, nil
}
