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
	return PreSignSpread(key, token, chainID, payTo, price, n, now, validFor, 0)
}

// Window is a slot of a spread pool: N authorizations valid before
// ValidBefore (and after ValidAfter).
type Window struct {
	ValidAfter, ValidBefore time.Time
	N                       int
}

// SpreadLead is how long before its window starts an authorization of a
// spread pool becomes valid (validAfter): a seller accepts one whose
// validBefore is at most its maxTimeoutSeconds + 30 s ahead, so a window
// signed for the seller's maxTimeoutSeconds is acceptable 30 s before it
// starts; starting 25 s early overlaps the previous window by 19 s (the
// proxy stops 6 s before validBefore) and leaves 5 s for clock skew.
const SpreadLead = 25 * time.Second

// Spread lays n authorizations, each valid for validFor, over cover: a
// seller refuses an authorization whose validBefore lies more than its
// maxTimeoutSeconds (+30 s) ahead, so a pool meant to last longer than
// that holds windows back to back — window j ends at now+(j+1)·validFor
// and is valid from SpreadLead before window j-1 ends (validAfter, which
// the proxy, the facilitator and the token all honour; window 0 from now −
// 600 s as usual). Each window gets n/windows authorizations (the first
// ones one more): that many calls can be paid in it; unused ones expire,
// unspent. cover ≤ validFor is one window, all valid now.
func Spread(n int, now time.Time, validFor, cover time.Duration) ([]Window, error) {
	if n < 1 {
		return nil, fmt.Errorf("cannot sign %d authorizations", n)
	}
	if validFor <= 0 {
		return nil, fmt.Errorf("validity %s: want a positive duration", validFor)
	}
	w := 1
	if cover > validFor {
		w = int((cover + validFor - 1) / validFor)
	}
	if n < w {
		return nil, fmt.Errorf("covering %s with authorizations valid for %s takes %d windows, at least one authorization each, but only %d are signed: sign at least %d, cover less, or ask the seller for a longer maxTimeoutSeconds",
			cover, validFor, w, n, w)
	}
	out := make([]Window, w)
	for j := range out {
		end := now.Add(time.Duration(j+1) * validFor)
		after := end.Add(-validFor - SpreadLead)
		if j == 0 {
			after = now.Add(-evm.ClockSkew)
		}
		out[j] = Window{ValidAfter: after, ValidBefore: end, N: n / w}
		if j < n%w {
			out[j].N++
		}
	}
	return out, nil
}

// PreSignSpread signs n authorizations laid out by Spread over cover.
func PreSignSpread(key *ecdsa.PrivateKey, token evm.Token, chainID int64, payTo common.Address, price *big.Int, n int, now time.Time, validFor, cover time.Duration) ([]x402.ExactEVMPayload, error) {
	if n == 0 {
		return []x402.ExactEVMPayload{}, nil
	}
	windows, err := Spread(n, now, validFor, cover)
	if err != nil {
		return nil, err
	}
	from := evm.Address(key)
	out := make([]x402.ExactEVMPayload, 0, n)
	for _, win := range windows {
		for i := 0; i < win.N; i++ {
			nonce, err := evm.NewNonce()
			if err != nil {
				return nil, err
			}
			auth := evm.Authorization{From: from, To: payTo, Value: new(big.Int).Set(price),
				ValidAfter: big.NewInt(win.ValidAfter.Unix()), ValidBefore: big.NewInt(win.ValidBefore.Unix()), Nonce: nonce}
			sig, err := evm.Sign(key, token.Domain(chainID), auth)
			if err != nil {
				return nil, err
			}
			out = append(out, x402.ExactEVMPayload{Signature: hexutil.Encode(sig), Authorization: auth.Wire()})
		}
	}
	return out, nil
}
