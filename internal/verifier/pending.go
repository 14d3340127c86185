package verifier

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/obolstack/obol/internal/x402"
)

// Pending settlements.
//
// When the facilitator cannot tell within the settle deadline whether a
// payment settled (it is down, the chain RPC is, or it is so slow that its
// answers come after the deadline), the answer is withheld: serving it
// could serve unpaid, and refusing it for good could leave the buyer
// charged and not served. The gate keeps the payment instead: the buffered
// answer, if there is one, and a goroutine that keeps asking the
// facilitator (same idempotency key, growing pauses) until the outcome is
// known. The buyer is answered 503 with reason settlement_pending and
// Retry-After, and gets, by sending the same request with the same payment
// header again:
//
//   - the paid answer with its payment response once the settlement is
//     confirmed (the stored answer; when none was kept, the request goes
//     upstream again, without a second settlement);
//   - the 402 of a refusal once it is known not to have settled (the money
//     did not move; the buyer signs a new authorization);
//   - 503 settlement_pending again while it is still unknown.
//
// Each pending payment is answered once. The record lives in this process
// only: a retry that reaches another replica, or a restart, loses it (the
// payment then shows as settlement_unknown in the metrics and logs).

// ReasonSettlementUnknown is the reason of an answer withheld because the
// settlement's outcome stayed unknown and could not be kept pending (the
// set is full): the buyer may have been charged.
const ReasonSettlementUnknown = x402.ReasonSettlementUnknown

// ReasonSettlementPending is the reason of a 503 whose payment's settlement
// outcome is not known yet: send the same request again after Retry-After.
const ReasonSettlementPending = x402.ReasonSettlementPending

// Pending settlement bounds.
const (
	// pendingRetryAfter is the Retry-After of a settlement_pending answer
	// when the next question to the facilitator is sooner.
	pendingRetryAfter = 2 * time.Second
	// pendingAskFirst and pendingAskMax bound the pause between two
	// questions about a pending payment.
	pendingAskFirst = time.Second
	pendingAskMax   = 30 * time.Second
	// pendingKeepKnown is how long a learned outcome waits for the buyer
	// to ask again (at least until validBefore plus a minute).
	pendingKeepKnown = 10 * time.Minute
	// pendingGiveUp stops asking this long after validBefore: the outcome
	// is final on chain by then, and only a facilitator that stayed
	// unreachable (or that refuses expired authorizations without looking
	// at the chain) leaves it unknown.
	pendingGiveUp = 10 * time.Minute
	// DefaultMaxPending bounds the payments kept pending; beyond it a
	// payment whose outcome is unknown is answered as before, with no
	// way to collect the answer later.
	DefaultMaxPending = 10_000
	// DefaultPendingAnswerBytes bounds the bytes of buffered answers kept
	// for pending payments; a payment over it is kept without its answer
	// (a retry once settled goes upstream again).
	DefaultPendingAnswerBytes = 64 << 20
)

type pendingState int

const (
	pendingUnknown pendingState = iota
	pendingSettled
	pendingRefused
)

// storedAnswer is a buffered upstream answer kept for a pending payment.
type storedAnswer struct {
	status int
	header http.Header
	body   []byte
}

// pendingPayment is one payment whose settlement outcome was not known
// when its answer was due.
type pendingPayment struct {
	pm     *payment
	method string
	uri    string // the request URI the payment was made for
	answer *storedAnswer

	// Guarded by pendingSet.mu.
	state   pendingState
	sr      *x402.SettleResponse // the known outcome
	nextAsk time.Time
	until   time.Time // the record is dropped after it
}

// pendingSet holds the pending payments of a server.
type pendingSet struct {
	mu       sync.Mutex
	m        map[authKey]*pendingPayment
	bytes    int
	max      int
	maxBytes int

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newPendingSet(max, maxBytes int) *pendingSet {
	if max <= 0 {
		max = DefaultMaxPending
	}
	if maxBytes <= 0 {
		maxBytes = DefaultPendingAnswerBytes
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &pendingSet{m: map[authKey]*pendingPayment{}, max: max, maxBytes: maxBytes, ctx: ctx, cancel: cancel}
}

// close stops asking about pending payments and waits for the goroutines.
func (ps *pendingSet) close() int {
	ps.cancel()
	ps.wg.Wait()
	return ps.unknown()
}

// unknown is the number of pending payments whose outcome is not known.
func (ps *pendingSet) unknown() int {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	n := 0
	for _, p := range ps.m {
		if p.state == pendingUnknown {
			n++
		}
	}
	return n
}

// add keeps pm pending and starts asking about it. It reports false when
// the set is full (or closed): the payment is then lost to the buyer.
func (ps *pendingSet) add(pm *payment, r *http.Request, uri string, answer *storedAnswer) (*pendingPayment, bool) {
	now := pm.s.now()
	p := &pendingPayment{pm: pm, method: buyerMethod(r, pm.st.cfg), uri: uri, state: pendingUnknown,
		nextAsk: now.Add(pendingAskFirst), until: pm.expires.Add(pendingGiveUp)}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.ctx.Err() != nil || len(ps.m) >= ps.max {
		return nil, false
	}
	if _, dup := ps.m[pm.key]; dup {
		return nil, false // unreachable: the replay guard holds the key
	}
	if answer != nil && ps.bytes+len(answer.body) <= ps.maxBytes {
		p.answer = answer
		ps.bytes += len(answer.body)
	}
	ps.m[pm.key] = p
	ps.wg.Add(1)
	go ps.reconcile(p)
	return p, true
}

// dropLocked forgets p (its answer was delivered, or the record expired);
// the caller holds ps.mu.
func (ps *pendingSet) dropLocked(p *pendingPayment) {
	if ps.m[p.pm.key] != p {
		return
	}
	delete(ps.m, p.pm.key)
	if p.answer != nil {
		ps.bytes -= len(p.answer.body)
	}
}

// reconcile asks the facilitator about p until the outcome is known, the
// record expires or the set is closed; once known, it keeps the record
// until the buyer collects it or it expires.
func (ps *pendingSet) reconcile(p *pendingPayment) {
	defer ps.wg.Done()
	pm := p.pm
	s := pm.s
	pause := pendingAskFirst
	t := time.NewTimer(pause)
	defer t.Stop()
	for attempt := 1; ; attempt++ {
		select {
		case <-ps.ctx.Done():
			return
		case <-t.C:
		}
		now := s.now()
		ps.mu.Lock()
		if ps.m[pm.key] != p {
			ps.mu.Unlock()
			return
		}
		if now.After(p.until) {
			ps.dropLocked(p)
			ps.mu.Unlock()
			s.log.Error("settlement outcome never learned; pending payment dropped", "offer", pm.route.Offer.Name,
				"payer", pm.payer, "nonce", pm.key.nonce, "attempts", attempt-1)
			return
		}
		ps.mu.Unlock()

		sr, err := pm.askOnce(ps.ctx, true)
		if err != nil {
			if ps.ctx.Err() != nil {
				return
			}
			pause = min(2*pause, pendingAskMax)
			ps.mu.Lock()
			p.nextAsk = s.now().Add(pause)
			ps.mu.Unlock()
			s.log.Warn("settlement outcome still unknown; answer kept pending", "offer", pm.route.Offer.Name,
				"payer", pm.payer, "attempt", attempt, "next", pause, "err", err)
			t.Reset(pause)
			continue
		}
		pm.complete(sr)
		if sr.Success {
			pm.record(sr, SettleResultSettledLate)
		} else {
			pm.record(sr, SettleResultRefused)
		}
		ps.mu.Lock()
		p.sr = sr
		p.state = pendingSettled
		if !sr.Success {
			p.state = pendingRefused
		}
		keep := s.now().Add(pendingKeepKnown)
		if e := pm.expires; e.After(keep) {
			keep = e
		}
		p.until = keep
		ps.mu.Unlock()
		// Keep the learned outcome until it is collected or expires.
		t.Reset(time.Until(keep))
		select {
		case <-ps.ctx.Done():
			return
		case <-t.C:
		}
		ps.mu.Lock()
		if ps.m[pm.key] == p {
			ps.dropLocked(p)
			ps.mu.Unlock()
			s.log.Warn("settled answer never collected by the buyer; dropped", "offer", pm.route.Offer.Name,
				"payer", pm.payer, "nonce", pm.key.nonce, "settled", sr.Success)
			return
		}
		ps.mu.Unlock()
		return
	}
}

// claim is a buyer asking again for pending payment k with method and uri.
// found says a pending payment has the key. When it is known, the record
// is taken (each pending payment is answered once) and returned with its
// outcome; while unknown, retryAfter says when to ask again.
func (ps *pendingSet) claim(k authKey, method, uri string, now time.Time) (p *pendingPayment, found, sameRequest bool, retryAfter time.Duration) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	p = ps.m[k]
	if p == nil {
		return nil, false, false, 0
	}
	if p.method != method || p.uri != uri {
		return p, true, false, 0
	}
	if p.state == pendingUnknown {
		return p, true, true, max(p.nextAsk.Sub(now), pendingRetryAfter)
	}
	ps.dropLocked(p)
	return p, true, true, 0
}

// pendingAnswer is the 503 of a payment whose outcome is not known yet.
func pendingAnswer(r *http.Request, retryAfter time.Duration) *answer {
	secs := int((retryAfter + time.Second - 1) / time.Second)
	a := jsonAnswer(r, http.StatusServiceUnavailable, errorBody{Reason: ReasonSettlementPending,
		Error: fmt.Sprintf("the payment facilitator has not confirmed whether this payment settled: the answer is kept, and you are charged at most once; "+
			"send this same request with the same payment header again in %d s to receive it once the settlement is confirmed "+
			"(or a 402 if it did not settle, in which case nothing was charged)", secs)})
	a.header.Set("Retry-After", strconv.Itoa(secs))
	return a
}
