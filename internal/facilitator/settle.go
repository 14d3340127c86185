package facilitator

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"

	"github.com/obolstack/obol/internal/token"
	"github.com/obolstack/obol/internal/x402"
)

// authKey identifies one EIP-3009 authorization.
type authKey struct {
	token common.Address
	from  common.Address
	nonce [32]byte
}

type authState int

const (
	stateNone     authState = iota
	stateInFlight           // a settle of it is running
	stateDone               // settled, or sent with an unknown outcome: never send again
)

type ledgerEntry struct {
	state   authState
	expires time.Time // validBefore: after it the contract refuses the authorization anyway
}

// ledger is the in-memory record of authorizations being settled or
// settled by this process, so that the same authorization never leads to a
// second transaction — also when two settles of it race. The chain's
// authorizationState is the durable record; entries are dropped once the
// authorization has expired.
type ledger struct {
	mu        sync.Mutex
	m         map[authKey]ledgerEntry
	lastSweep time.Time
}

func newLedger() *ledger { return &ledger{m: map[authKey]ledgerEntry{}} }

func (l *ledger) state(k authKey) authState {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m[k].state
}

// claim marks k in flight unless it already is in flight or done; it
// returns the previous state.
func (l *ledger) claim(k authKey, expires, now time.Time) authState {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) > time.Minute {
		for key, e := range l.m {
			if e.state == stateDone && now.After(e.expires.Add(time.Minute)) {
				delete(l.m, key)
			}
		}
		l.lastSweep = now
	}
	if prev := l.m[k].state; prev != stateNone {
		return prev
	}
	l.m[k] = ledgerEntry{state: stateInFlight, expires: expires}
	return stateNone
}

// finish ends a claim: done keeps the authorization blocked, otherwise it
// may be settled again.
func (l *ledger) finish(k authKey, done bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if done {
		e := l.m[k]
		e.state = stateDone
		l.m[k] = e
		return
	}
	delete(l.m, k)
}

// sender serializes the fee payer's transactions: one at a time takes the
// next nonce and is sent; the next nonce is tracked locally and resynced
// from the node's pending nonce when unknown or rejected as too low.
type sender struct {
	mu      sync.Mutex
	node    *node
	key     *ecdsa.PrivateKey
	from    common.Address
	chainID *big.Int
	next    uint64
	known   bool
}

// sendError is a failed send. uncertain means the node may have received
// the transaction (the transport failed after the request went out).
type sendError struct {
	tx        *types.Transaction
	uncertain bool
	err       error
}

func (e *sendError) Error() string { return e.err.Error() }
func (e *sendError) Unwrap() error { return e.err }

// invalidate forgets the local nonce; the next send asks the node.
func (s *sender) invalidate() {
	s.mu.Lock()
	s.known = false
	s.mu.Unlock()
}

func nonceConflict(err error) bool {
	m := strings.ToLower(err.Error())
	return strings.Contains(m, "nonce too low") || strings.Contains(m, "replacement transaction underpriced") ||
		strings.Contains(m, "already imported")
}

// send signs a dynamic-fee transaction to `to` with data and sends it.
func (s *sender) send(ctx context.Context, to common.Address, data []byte, gas uint64, tip, feeCap *big.Int) (*types.Transaction, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	signer := types.LatestSignerForChainID(s.chainID)
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		if !s.known {
			n, err := s.node.pendingNonce(ctx, s.from)
			if err != nil {
				return nil, &sendError{err: fmt.Errorf("get the fee payer's nonce: %w", err)}
			}
			s.next, s.known = n, true
		}
		tx, err := types.SignNewTx(s.key, signer, &types.DynamicFeeTx{
			ChainID: s.chainID, Nonce: s.next, GasTipCap: tip, GasFeeCap: feeCap, Gas: gas, To: &to, Data: data,
		})
		if err != nil {
			return nil, &sendError{err: fmt.Errorf("sign settlement transaction: %w", err)}
		}
		err = s.node.send(ctx, tx)
		if err == nil || strings.Contains(strings.ToLower(err.Error()), "already known") {
			s.next++
			return tx, nil
		}
		var re *rpcError
		if errors.As(err, &re) {
			// Transport failure: the node may have the transaction.
			s.known = false
			return nil, &sendError{tx: tx, uncertain: true, err: err}
		}
		if nonceConflict(err) {
			s.known = false
			lastErr = err
			continue
		}
		return nil, &sendError{tx: tx, err: err}
	}
	return nil, &sendError{err: fmt.Errorf("fee payer nonce kept conflicting: %w", lastErr)}
}

func expiry(validBefore *big.Int, now time.Time) time.Time {
	if validBefore == nil || !validBefore.IsInt64() || validBefore.Int64() > now.AddDate(1, 0, 0).Unix() {
		return now.AddDate(1, 0, 0)
	}
	return time.Unix(validBefore.Int64(), 0)
}

// settle answers POST /settle: verify again, claim the authorization, send
// transferWithAuthorization from the fee payer, wait for the receipt.
func (s *Server) settle(ctx context.Context, vr x402.VerifyRequest) *outcome {
	network := networkAsSent(vr, s.chain.CAIP2)
	o := s.settleChecked(ctx, vr)
	o.network = network
	return o
}

func (s *Server) settleChecked(ctx context.Context, vr x402.VerifyRequest) *outcome {
	const unexpected = x402.ReasonUnexpectedSettleError
	c, o := s.inspect(vr)
	if o != nil {
		return o
	}
	k := c.key()
	switch s.ledger.claim(k, expiry(c.auth.ValidBefore, s.now()), s.now()) {
	case stateDone:
		return &outcome{reason: x402.ReasonNonceAlreadyUsed, payer: c.payer,
			message: fmt.Sprintf("authorization 0x%x of %s was already settled by this facilitator; no transaction sent", c.auth.Nonce, c.auth.From.Hex())}
	case stateInFlight:
		return &outcome{reason: x402.ReasonAuthorizationInFlight, payer: c.payer,
			message: fmt.Sprintf("authorization 0x%x of %s is being settled by another request; no second transaction sent", c.auth.Nonce, c.auth.From.Hex())}
	}
	done := false
	defer func() { s.ledger.finish(k, done) }()

	// Verify again against the chain.
	if o := s.simulate(ctx, c, unexpected); o != nil {
		done = o.reason == x402.ReasonNonceAlreadyUsed
		return o
	}
	gas, err := s.node.estimateGas(ctx, ethereum.CallMsg{From: s.feePayer, To: &c.token.Address, Data: c.call})
	if err != nil {
		if isRevertErr(err) {
			o := s.diagnose(ctx, c, token.RevertReason(err), unexpected, "gas estimation of transferWithAuthorization reverted")
			done = o.reason == x402.ReasonNonceAlreadyUsed
			return o
		}
		return s.rpcFailure(c, unexpected, err)
	}
	gas += gas / 4
	tip, err := s.node.suggestTip(ctx)
	if err != nil {
		return s.rpcFailure(c, unexpected, err)
	}
	head, err := s.node.latestHeader(ctx)
	if err != nil {
		return s.rpcFailure(c, unexpected, err)
	}
	feeCap := new(big.Int).Set(tip)
	if head.BaseFee != nil {
		feeCap.Add(feeCap, new(big.Int).Mul(head.BaseFee, big.NewInt(2)))
	}

	tx, err := s.sender.send(ctx, c.token.Address, c.call, gas, tip, feeCap)
	if err != nil {
		var se *sendError
		if errors.As(err, &se) && se.uncertain {
			done = true // the node may have it: never send this authorization again
			return &outcome{status: http.StatusInternalServerError, reason: unexpected, payer: c.payer,
				message: fmt.Sprintf("sending settlement transaction %s failed and it may or may not have reached the node: %v; check the chain before asking again", se.tx.Hash().Hex(), err)}
		}
		if reason := token.RevertReason(err); reason != "" || isRevertErr(err) {
			o := s.diagnose(ctx, c, reason, unexpected, "settlement transaction rejected")
			done = o.reason == x402.ReasonNonceAlreadyUsed
			return o
		}
		return s.rpcFailure(c, unexpected, fmt.Errorf("send settlement transaction: %w", err))
	}
	// From here the transaction is out: the authorization is never sent again.
	done = true
	hash := tx.Hash()
	s.log.Debug("settlement sent", "tx", hash.Hex(), "nonce", tx.Nonce(), "payer", c.payer)

	rcpt, err := s.waitReceipt(ctx, hash)
	if err != nil {
		s.sender.invalidate()
		return &outcome{status: http.StatusInternalServerError, reason: unexpected, payer: c.payer,
			message: fmt.Sprintf("settlement transaction %s was sent but %v; it may still be mined: check it before asking again", hash.Hex(), err)}
	}
	if rcpt.Status != types.ReceiptStatusSuccessful {
		o := s.diagnose(ctx, c, "", unexpected, fmt.Sprintf("settlement transaction %s reverted (receipt status 0)", hash.Hex()))
		if o.status == 0 && o.reason != x402.ReasonNonceAlreadyUsed {
			done = false // the authorization is still unused on chain
		}
		return o
	}
	return &outcome{payer: c.payer, tx: hash.Hex()}
}

// waitReceipt polls for the receipt until ReceiptTimeout. Any error counts
// as "not yet" (nodes briefly answer "transaction indexing is in progress").
// The polls back off from a few milliseconds to ReceiptPoll, so a chain
// that seals at once (a dev chain, an L2 sequencer) is seen at once, and a
// slow one is not hammered.
func (s *Server) waitReceipt(ctx context.Context, hash common.Hash) (*types.Receipt, error) {
	wctx, cancel := context.WithTimeout(ctx, s.cfg.ReceiptTimeout)
	defer cancel()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	var lastErr error
	for attempt := 0; ; attempt++ {
		r, err := s.node.receipt(wctx, hash)
		if err == nil && r != nil {
			return r, nil
		}
		if err != nil && !errors.Is(err, ethereum.NotFound) {
			lastErr = err
		}
		t.Reset(receiptBackoff(attempt, s.cfg.ReceiptPoll))
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return nil, fmt.Errorf("the facilitator stopped while waiting for its receipt")
			}
			if lastErr != nil {
				return nil, fmt.Errorf("no receipt within %s (last error: %v)", s.cfg.ReceiptTimeout, lastErr)
			}
			return nil, fmt.Errorf("no receipt within %s", s.cfg.ReceiptTimeout)
		case <-t.C:
		}
	}
}

// firstReceiptPoll is the wait after the first receipt poll that found
// nothing; each further wait doubles, up to ReceiptPoll.
const firstReceiptPoll = 5 * time.Millisecond

// receiptBackoff is the wait after the given (0-based) unsuccessful poll.
func receiptBackoff(attempt int, max time.Duration) time.Duration {
	d := firstReceiptPoll
	for i := 0; i < attempt && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	return d
}
