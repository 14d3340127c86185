package buyer

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"
)

// ErrUnconfirmed: the seller's receipt does not check out on chain.
var ErrUnconfirmed = errors.New("the seller's receipt does not check out on chain")

var (
	transferTopic         = crypto.Keccak256Hash([]byte("Transfer(address,address,uint256)"))
	authorizationUsedTopc = crypto.Keccak256Hash([]byte("AuthorizationUsed(address,bytes32)"))
)

// Confirmation is what the chain says about a paid request's transaction.
type Confirmation struct {
	Transaction string `json:"transaction"`
	Block       uint64 `json:"block"`
}

// Confirm checks the seller's receipt against the chain at rpcURL: the
// transaction exists (waiting up to wait for it to be mined), succeeded,
// and moved exactly the amount signed, from the buyer to the payee, in the
// token signed for, by spending the very authorization (nonce) sent. Any
// mismatch is an error matching ErrUnconfirmed that says what was wrong.
func Confirm(ctx context.Context, rpcURL string, res *Result, wait time.Duration) (*Confirmation, error) {
	if res == nil || res.Signed == nil || res.Quote == nil {
		return nil, errors.New("nothing was paid: no receipt to check")
	}
	if res.Receipt == nil || !res.Receipt.Success {
		return nil, fmt.Errorf("%w: the seller sent no successful settlement", ErrUnconfirmed)
	}
	txs := res.Receipt.Transaction
	if len(txs) != 66 || !strings.HasPrefix(txs, "0x") || !isHex(txs[2:]) {
		return nil, fmt.Errorf("%w: transaction %q is not a transaction hash", ErrUnconfirmed, txs)
	}
	q, s := res.Quote, res.Signed
	cl, err := ethclient.DialContext(ctx, rpcURL)
	if err != nil {
		return nil, fmt.Errorf("connect to %s to check the receipt: %w", rpcURL, err)
	}
	defer cl.Close()
	id, err := cl.ChainID(ctx)
	if err != nil {
		return nil, fmt.Errorf("ask %s for its chain id: %w", rpcURL, err)
	}
	if id.Int64() != q.Chain.ChainID {
		return nil, fmt.Errorf("--rpc-url %s serves chain id %s, but the payment was on %s (chain id %d): cannot check the receipt there", rpcURL, id, q.Chain.Name, q.Chain.ChainID)
	}
	hash := common.HexToHash(txs)
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var rc *types.Receipt
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		// A receipt poll may answer "not found" (not mined yet) or a
		// transient error (indexing in progress): ask again until wait.
		rc, err = cl.TransactionReceipt(ctx, hash)
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: transaction %s was not found on %s within %s (last answer: %v)", ErrUnconfirmed, txs, q.Chain.Name, wait, err)
		case <-tick.C:
		}
	}
	if rc.Status != types.ReceiptStatusSuccessful {
		return nil, fmt.Errorf("%w: transaction %s failed on chain (status 0)", ErrUnconfirmed, txs)
	}
	from := common.HexToAddress(s.From)
	value, _ := new(big.Int).SetString(s.Value, 10)
	nonce := common.HexToHash(s.Nonce)
	var transfers []string
	transferOK, nonceOK := false, false
	for _, l := range rc.Logs {
		if l.Address != q.Token.Address || len(l.Topics) == 0 {
			continue
		}
		switch {
		case l.Topics[0] == transferTopic && len(l.Topics) == 3:
			f, to := common.BytesToAddress(l.Topics[1].Bytes()), common.BytesToAddress(l.Topics[2].Bytes())
			v := new(big.Int).SetBytes(l.Data)
			if f == from && to == q.PayTo && v.Cmp(value) == 0 {
				transferOK = true
			}
			transfers = append(transfers, fmt.Sprintf("%s from %s to %s", v, f.Hex(), to.Hex()))
		case l.Topics[0] == authorizationUsedTopc && len(l.Topics) == 3:
			if common.BytesToAddress(l.Topics[1].Bytes()) == from && l.Topics[2] == nonce {
				nonceOK = true
			}
		}
	}
	if !transferOK {
		seen := "none"
		if len(transfers) > 0 {
			seen = strings.Join(transfers, "; ")
		}
		return nil, fmt.Errorf("%w: transaction %s has no transfer of %s %s from %s to %s (transfers of that token in it: %s)",
			ErrUnconfirmed, txs, value, q.Token.Symbol, from.Hex(), q.PayTo.Hex(), seen)
	}
	if !nonceOK {
		return nil, fmt.Errorf("%w: transaction %s did not spend the authorization sent (nonce %s): it is another payment", ErrUnconfirmed, txs, s.Nonce)
	}
	return &Confirmation{Transaction: txs, Block: rc.BlockNumber.Uint64()}, nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
