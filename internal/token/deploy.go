package token

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
)

// Transactor is what Deploy and Transact need from a node. It is a subset
// of go-ethereum's bind.ContractBackend, so *ethclient.Client and the
// simulated backend's client both satisfy it.
type Transactor interface {
	PendingNonceAt(ctx context.Context, account common.Address) (uint64, error)
	SuggestGasTipCap(ctx context.Context) (*big.Int, error)
	HeaderByNumber(ctx context.Context, number *big.Int) (*types.Header, error)
	EstimateGas(ctx context.Context, call ethereum.CallMsg) (uint64, error)
	SendTransaction(ctx context.Context, tx *types.Transaction) error
}

// ReceiptReader is what WaitMined needs; *ethclient.Client satisfies it.
type ReceiptReader interface {
	TransactionReceipt(ctx context.Context, txHash common.Hash) (*types.Receipt, error)
}

// Deploy sends the transaction that creates an ObolUSD with the given
// ERC-20 name (also the EIP-712 domain name), symbol, EIP-712 version and
// decimals, owned (allowed to mint) by key's address. It returns the
// contract's future address and the transaction; wait for it with WaitMined.
// Deploy takes the account's pending nonce: do not send from the same key
// concurrently.
func Deploy(ctx context.Context, b Transactor, key *ecdsa.PrivateKey, chainID *big.Int, name, symbol, version string, decimals uint8) (common.Address, *types.Transaction, error) {
	args, err := ABI().Pack("", name, symbol, version, decimals)
	if err != nil {
		return common.Address{}, nil, fmt.Errorf("pack ObolUSD constructor: %w", err)
	}
	data := append(Bytecode(), args...)
	tx, err := Transact(ctx, b, key, chainID, nil, data)
	if err != nil {
		return common.Address{}, nil, fmt.Errorf("deploy ObolUSD: %w", err)
	}
	from := crypto.PubkeyToAddress(key.PublicKey)
	return crypto.CreateAddress(from, tx.Nonce()), tx, nil
}

// Transact signs and sends an EIP-1559 transaction from key's address to to
// (nil creates a contract) with data, no value, the account's pending nonce,
// a gas limit estimated with 25% headroom, the node's suggested tip and a
// fee cap of twice the latest base fee plus the tip. A reverting call fails
// at estimation; RevertReason extracts why. Not for concurrent use from one
// key: nonces come from the node, not from a local counter.
func Transact(ctx context.Context, b Transactor, key *ecdsa.PrivateKey, chainID *big.Int, to *common.Address, data []byte) (*types.Transaction, error) {
	if key == nil {
		return nil, errors.New("no signing key")
	}
	if chainID == nil || chainID.Sign() <= 0 {
		return nil, fmt.Errorf("invalid chain id %v", chainID)
	}
	from := crypto.PubkeyToAddress(key.PublicKey)
	nonce, err := b.PendingNonceAt(ctx, from)
	if err != nil {
		return nil, fmt.Errorf("get nonce of %s: %w", from, err)
	}
	tip, err := b.SuggestGasTipCap(ctx)
	if err != nil {
		return nil, fmt.Errorf("suggest gas tip: %w", err)
	}
	head, err := b.HeaderByNumber(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("get latest header: %w", err)
	}
	feeCap := new(big.Int).Set(tip)
	if head.BaseFee != nil {
		feeCap.Add(feeCap, new(big.Int).Mul(head.BaseFee, big.NewInt(2)))
	}
	gas, err := b.EstimateGas(ctx, ethereum.CallMsg{From: from, To: to, GasFeeCap: feeCap, GasTipCap: tip, Data: data})
	if err != nil {
		return nil, fmt.Errorf("estimate gas: %w", err)
	}
	gas += gas / 4
	tx, err := types.SignNewTx(key, types.LatestSignerForChainID(chainID), &types.DynamicFeeTx{
		ChainID:   chainID,
		Nonce:     nonce,
		GasTipCap: tip,
		GasFeeCap: feeCap,
		Gas:       gas,
		To:        to,
		Data:      data,
	})
	if err != nil {
		return nil, fmt.Errorf("sign transaction: %w", err)
	}
	if err := b.SendTransaction(ctx, tx); err != nil {
		return nil, fmt.Errorf("send transaction %s: %w", tx.Hash(), err)
	}
	return tx, nil
}

// WaitMined polls for the receipt of hash every poll interval (50 ms if
// zero) until it exists or ctx ends. Any error from the node counts as "not
// yet" (a node may briefly answer "transaction indexing is in progress"); on
// timeout the last error is included. It does not check the receipt's status.
func WaitMined(ctx context.Context, b ReceiptReader, hash common.Hash, poll time.Duration) (*types.Receipt, error) {
	if poll <= 0 {
		poll = 50 * time.Millisecond
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		r, err := b.TransactionReceipt(ctx, hash)
		if err == nil && r != nil {
			return r, nil
		}
		select {
		case <-ctx.Done():
			if err != nil && !errors.Is(err, ethereum.NotFound) {
				return nil, fmt.Errorf("wait for receipt of %s: %w (last error: %v)", hash, ctx.Err(), err)
			}
			return nil, fmt.Errorf("wait for receipt of %s: %w", hash, ctx.Err())
		case <-t.C:
		}
	}
}
