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

// ledgerEntry is what this process knows of one authorization.
type ledgerEntry struct {
	busy    chan struct{} // non-nil while a settle of it runs; closed when it ends
	key     string        // idempotency key of the request that settled it ("" none)
	tx      common.Hash   // the last settlement transaction sent for it (zero: none)
	expires time.Time     // validBefore: after it the contract refuses the authorization anyway
}

// ledger is the in-memory record of authorizations being settled or
// settled by this process, so that the same authorization never leads to
// two settlements answered as success to two different callers, and a
// caller that asks again (same idempotency key) learns the outcome of the
// transaction already sent instead of a refusal. The chain's
// authorizationState and AuthorizationUsed events are the durable record;
// entries are dropped once the authorization has expired.
type ledger struct {
	mu        sync.Mutex
	m         map[authKey]*ledgerEntry
	lastSweep time.Time
}

func newLedger() *ledger { return &ledger{m: map[authKey]*ledgerEntry{}} }

// sent reports the transaction sent for k, if any.
func (l *ledger) sent(k authKey) (common.Hash, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.m[k]
	if e == nil || e.tx == (common.Hash{}) {
		return common.Hash{}, false
	}
	return e.tx, true
}

// claimResult is what claim found.
type claimResult struct {
	wait    <-chan struct{} // another settle of it runs under the same key: wait, then claim again
	other   bool            // it is being, or was, settled under another key
	prevTx  common.Hash     // a transaction sent for it before (same key)
	claimed bool
}

// claim takes k for a settle under idempotency key. Requests under the
// same key (or both without one) are the same caller asking again.
func (l *ledger) claim(k authKey, key string, expires, now time.Time) claimResult {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) > time.Minute {
		for ak, e := range l.m {
			if e.busy == nil && now.After(e.expires.Add(time.Minute)) {
				delete(l.m, ak)
			}
		}
		l.lastSweep = now
	}
	e := l.m[k]
	if e == nil {
		l.m[k] = &ledgerEntry{busy: make(chan struct{}), key: key, expires: expires}
		return claimResult{claimed: true}
	}
	if e.key != key {
		return claimResult{other: true, prevTx: e.tx}
	}
	if e.busy != nil {
		return claimResult{wait: e.busy}
	}
	e.busy = make(chan struct{})
	return claimResult{claimed: true, prevTx: e.tx}
}

// finish ends a claim. tx is the transaction sent for the authorization
// (zero: none, and none before): with one the entry stays, so a repeat
// learns its outcome and no other caller is told it settled.
func (l *ledger) finish(k authKey, tx common.Hash) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.m[k]
	if e == nil {
		return
	}
	close(e.busy)
	e.busy = nil
	if tx != (common.Hash{}) {
		e.tx = tx
	}
	if e.tx == (common.Hash{}) {
		delete(l.m, k)
	}
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
// transferWithAuthorization from the fee payer, wait for the receipt. It is
// idempotent: asked again under the same idempotency key (or again without
// one), it answers the outcome of the transaction already sent — success
// with the same hash once mined — and never sends a second transfer.
func (s *Server) settle(ctx context.Context, vr x402.VerifyRequest, key string) *outcome {
	network := networkAsSent(vr, s.chain.CAIP2)
	o := s.settleChecked(ctx, vr, key)
	o.network = network
	return o
}

func (s *Server) settleChecked(ctx context.Context, vr x402.VerifyRequest, key string) *outcome {
	const unexpected = x402.ReasonUnexpectedSettleError
	c, o := s.inspectWith(vr, false)
	if o != nil {
		return o
	}
	if o := s.checkWindow(c); o != nil {
		o.payer = c.payer
		return s.settleOutsideWindow(ctx, c, o)
	}
	k := c.key()
	var cl claimResult
	for {
		cl = s.ledger.claim(k, key, expiry(c.auth.ValidBefore, s.now()), s.now())
		if cl.wait == nil {
			break
		}
		select {
		case <-cl.wait:
		case <-ctx.Done():
			return &outcome{status: http.StatusServiceUnavailable, reason: unexpected, payer: c.payer,
				message: "the facilitator stopped while another request settled this authorization; ask again"}
		}
	}
	if cl.other {
		if cl.prevTx != (common.Hash{}) {
			return &outcome{reason: x402.ReasonNonceAlreadyUsed, payer: c.payer,
				message: fmt.Sprintf("authorization 0x%x of %s was already settled by this facilitator for another request (transaction %s); no transaction sent", c.auth.Nonce, c.auth.From.Hex(), cl.prevTx.Hex())}
		}
		return &outcome{reason: x402.ReasonAuthorizationInFlight, payer: c.payer,
			message: fmt.Sprintf("authorization 0x%x of %s is being settled for another request; no second transaction sent", c.auth.Nonce, c.auth.From.Hex())}
	}
	sent := cl.prevTx
	defer func() { s.ledger.finish(k, sent) }()

	if sent != (common.Hash{}) {
		// Asked again: the transaction already sent decides.
		if o := s.outcomeOf(ctx, c, sent); o != nil {
			return o
		}
		// The node does not know it and the authorization is unused: it
		// was lost before reaching the chain. Settle anew (the token lets
		// at most one transfer use the authorization, whatever is sent).
	}

	// Verify again against the chain.
	if o := s.simulate(ctx, c, unexpected); o != nil {
		return s.settledBefore(ctx, c, o)
	}
	gas, err := s.node.estimateGas(ctx, ethereum.CallMsg{From: s.feePayer, To: &c.token.Address, Data: c.call})
	if err != nil {
		if isRevertErr(err) {
			return s.settledBefore(ctx, c, s.diagnose(ctx, c, token.RevertReason(err), unexpected, "gas estimation of transferWithAuthorization reverted"))
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
			sent = se.tx.Hash() // the node may have it: a repeat asks about it
			return &outcome{status: http.StatusInternalServerError, reason: unexpected, payer: c.payer,
				message: fmt.Sprintf("sending settlement transaction %s failed and it may or may not have reached the node: %v; ask again to learn its outcome", se.tx.Hash().Hex(), err)}
		}
		if reason := token.RevertReason(err); reason != "" || isRevertErr(err) {
			return s.settledBefore(ctx, c, s.diagnose(ctx, c, reason, unexpected, "settlement transaction rejected"))
		}
		return s.rpcFailure(c, unexpected, fmt.Errorf("send settlement transaction: %w", err))
	}
	sent = tx.Hash()
	s.log.Debug("settlement sent", "tx", sent.Hex(), "nonce", tx.Nonce(), "payer", c.payer)
	return s.awaitOutcome(ctx, c, sent)
}

// settleOutsideWindow answers a settle of an authorization outside its
// validity window (o says how). Nothing is sent; but a payment that this
// facilitator settled, or that is used on chain by a transfer of exactly
// this payment, is answered as settled, with its transaction: a gate that
// asks again after validBefore, having never received the answer, must
// learn that the buyer was charged, not that the payment is refused.
func (s *Server) settleOutsideWindow(ctx context.Context, c *checked, o *outcome) *outcome {
	if o.reason != x402.ReasonValidBefore {
		return o
	}
	if tx, ok := s.ledger.sent(c.key()); ok {
		if known := s.outcomeOf(ctx, c, tx); known != nil {
			return known
		}
	}
	used, err := s.authorizationUsed(ctx, c)
	if err != nil {
		return s.rpcFailure(c, x402.ReasonUnexpectedSettleError, err)
	}
	if used {
		return s.settledBefore(ctx, c, &outcome{reason: x402.ReasonNonceAlreadyUsed, payer: c.payer})
	}
	return o
}

// awaitOutcome waits for the receipt of a settlement transaction that was
// sent and answers its outcome.
func (s *Server) awaitOutcome(ctx context.Context, c *checked, hash common.Hash) *outcome {
	rcpt, err := s.waitReceipt(ctx, hash)
	if err != nil {
		s.sender.invalidate()
		return &outcome{status: http.StatusInternalServerError, reason: x402.ReasonUnexpectedSettleError, payer: c.payer,
			message: fmt.Sprintf("settlement transaction %s was sent but %v; it may still be mined: ask again to learn its outcome", hash.Hex(), err)}
	}
	if rcpt.Status != types.ReceiptStatusSuccessful {
		return s.settledBefore(ctx, c, s.diagnose(ctx, c, "", x402.ReasonUnexpectedSettleError,
			fmt.Sprintf("settlement transaction %s reverted (receipt status 0)", hash.Hex())))
	}
	return &outcome{payer: c.payer, tx: hash.Hex()}
}

// outcomeOf answers for a settlement transaction sent earlier: its outcome
// once mined (waiting for it while the node has it pending), or nil when
// the node does not know it and the authorization is still unused.
func (s *Server) outcomeOf(ctx context.Context, c *checked, hash common.Hash) *outcome {
	const unexpected = x402.ReasonUnexpectedSettleError
	rcpt, err := s.node.receipt(ctx, hash)
	if err == nil && rcpt != nil {
		if rcpt.Status == types.ReceiptStatusSuccessful {
			if !movedPayment(rcpt, c) {
				// The same nonce in another authorization of the payer.
				return usedElsewhere(c, hash)
			}
			return &outcome{payer: c.payer, tx: hash.Hex()}
		}
		return s.settledBefore(ctx, c, s.diagnose(ctx, c, "", unexpected, fmt.Sprintf("settlement transaction %s reverted (receipt status 0)", hash.Hex())))
	}
	if err != nil && !errors.Is(err, ethereum.NotFound) {
		return s.rpcFailure(c, unexpected, err)
	}
	known, err := s.node.pending(ctx, hash)
	if err != nil {
		return s.rpcFailure(c, unexpected, err)
	}
	if known {
		return s.awaitOutcome(ctx, c, hash)
	}
	used, err := s.authorizationUsed(ctx, c)
	if err != nil {
		return s.rpcFailure(c, unexpected, err)
	}
	if used {
		return s.settledBefore(ctx, c, &outcome{reason: x402.ReasonNonceAlreadyUsed, payer: c.payer})
	}
	return nil
}

// authorizationUsed reads the token's authorizationState.
func (s *Server) authorizationUsed(ctx context.Context, c *checked) (bool, error) {
	data, err := token.PackAuthorizationState(c.auth.From, c.auth.Nonce)
	if err != nil {
		return false, err
	}
	out, err := s.node.call(ctx, s.feePayer, c.token.Address, data)
	if err != nil {
		return false, fmt.Errorf("authorizationState: %w", err)
	}
	used, err := token.UnpackBool(out)
	if err != nil {
		return false, fmt.Errorf("authorizationState of %s: %w", c.token.Address.Hex(), err)
	}
	return used, nil
}

// settledBefore refines an outcome that says the authorization is used on
// chain: when the transaction that used it moved exactly this payment
// (value from the payer to payTo), the payment is settled and the answer is
// success with that transaction — whoever sent it, and also after this
// process restarted. When something else used the nonce (another transfer,
// a cancellation), the refusal says so.
func (s *Server) settledBefore(ctx context.Context, c *checked, o *outcome) *outcome {
	if o == nil || o.reason != x402.ReasonNonceAlreadyUsed {
		return o
	}
	hash, ours, err := s.usedBy(ctx, c)
	switch {
	case err != nil:
		return s.rpcFailure(c, x402.ReasonUnexpectedSettleError, fmt.Errorf("find the transaction that used the authorization: %w", err))
	case ours:
		s.log.Info("authorization already settled on chain; answering that settlement", "tx", hash.Hex(), "payer", c.payer)
		return &outcome{payer: c.payer, tx: hash.Hex()}
	case hash != (common.Hash{}):
		return usedElsewhere(c, hash)
	}
	o.message = fmt.Sprintf("authorization nonce 0x%x of %s is already used or canceled on chain, by no transaction in the last %d blocks; nothing was sent", c.auth.Nonce, c.auth.From.Hex(), s.cfg.LogLookback)
	return o
}

// usedBy finds the transaction that used the authorization's nonce (its
// AuthorizationUsed or AuthorizationCanceled event) within LogLookback
// blocks, and whether that transaction transferred exactly this payment.
func (s *Server) usedBy(ctx context.Context, c *checked) (common.Hash, bool, error) {
	head, err := s.node.latestHeader(ctx)
	if err != nil {
		return common.Hash{}, false, err
	}
	from := new(big.Int).Sub(head.Number, big.NewInt(int64(s.cfg.LogLookback)))
	if from.Sign() < 0 {
		from.SetInt64(0)
	}
	ev := token.ABI().Events
	logs, err := s.node.logs(ctx, ethereum.FilterQuery{
		FromBlock: from, ToBlock: head.Number, Addresses: []common.Address{c.token.Address},
		Topics: [][]common.Hash{
			{ev["AuthorizationUsed"].ID, ev["AuthorizationCanceled"].ID},
			{common.BytesToHash(c.auth.From.Bytes())},
			{common.Hash(c.auth.Nonce)},
		},
	})
	if err != nil {
		return common.Hash{}, false, err
	}
	if len(logs) == 0 {
		return common.Hash{}, false, nil
	}
	l := logs[0]
	if l.Topics[0] != ev["AuthorizationUsed"].ID {
		return l.TxHash, false, nil
	}
	rcpt, err := s.node.receipt(ctx, l.TxHash)
	if err != nil {
		return common.Hash{}, false, err
	}
	return l.TxHash, movedPayment(rcpt, c), nil
}

// movedPayment reports whether a mined transaction used the payment's
// authorization and transferred exactly its value from the payer to payTo.
func movedPayment(rcpt *types.Receipt, c *checked) bool {
	ev := token.ABI().Events
	used, transferred := false, false
	for _, l := range rcpt.Logs {
		if l.Address != c.token.Address || len(l.Topics) != 3 {
			continue
		}
		switch l.Topics[0] {
		case ev["AuthorizationUsed"].ID:
			used = used || l.Topics[1] == common.BytesToHash(c.auth.From.Bytes()) && l.Topics[2] == common.Hash(c.auth.Nonce)
		case ev["Transfer"].ID:
			transferred = transferred || l.Topics[1] == common.BytesToHash(c.auth.From.Bytes()) &&
				l.Topics[2] == common.BytesToHash(c.auth.To.Bytes()) && new(big.Int).SetBytes(l.Data).Cmp(c.auth.Value) == 0
		}
	}
	return used && transferred
}

func usedElsewhere(c *checked, hash common.Hash) *outcome {
	return &outcome{reason: x402.ReasonNonceAlreadyUsed, payer: c.payer,
		message: fmt.Sprintf("authorization nonce 0x%x of %s was used on chain by transaction %s, which is not this payment (another transfer or a cancellation); nothing was sent", c.auth.Nonce, c.auth.From.Hex(), hash.Hex())}
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
