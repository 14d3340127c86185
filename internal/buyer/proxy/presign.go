package proxy

import (
	"crypto/ecdsa"
	"fmt"
	"math/big"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"

	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/x402"
)

// PreSign signs n EIP-3009 authorizations of price atomic units to payTo,
// valid from now-600s for validFor, each with a fresh random nonce.
func PreSign(key *ecdsa.PrivateKey, token evm.Token, chainID int64, payTo common.Address, price *big.Int, n int, now time.Time, validFor time.Duration) ([]x402.ExactEVMPayload, error) {
	if n < 0 {
		return nil, fmt.Errorf("cannot sign %d authorizations", n)
	}
	from := evm.Address(key)
	out := make([]x402.ExactEVMPayload, 0, n)
	for i := 0; i < n; i++ {
		auth, err := evm.NewAuthorization(from, payTo, price, now, validFor)
		if err != nil {
			return nil, err
		}
		sig, err := evm.Sign(key, token.Domain(chainID), auth)
		if err != nil {
			return nil, err
		}
		out = append(out, x402.ExactEVMPayload{Signature: hexutil.Encode(sig), Authorization: auth.Wire()})
	}
	return out, nil
}
