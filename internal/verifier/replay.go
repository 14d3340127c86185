package verifier

import (
	"container/heap"
	"strings"
	"sync"
	"time"
)

// authKey identifies one EIP-3009 authorization: the token's nonce space is
// per (chain, token, payer), so the key carries all of them.
type authKey struct {
	chain string
	asset string // lower-case hex
	payer string // lower-case hex
	nonce string // lower-case hex
}

func newAuthKey(chain, asset, payer, nonce string) authKey {
	return authKey{chain: chain, asset: strings.ToLower(asset), payer: strings.ToLower(payer), nonce: strings.ToLower(nonce)}
}

// replayGuard stops the same authorization from being served twice: an
// in-flight set held between verify and settle, and a record of used
// (settled, or passed in verify-only mode) authorizations, each kept until
// its validBefore has passed (after which the token refuses it anyway).
// A record is never dropped before that: when max entries (in flight plus
// used) are live, a new payment is refused instead. Since admit refuses
// validBefore further than maxTimeoutSeconds (+ skew) ahead, entries live
// at most that long, and max must cover payments per second × that window.
type replayGuard struct {
	mu       sync.Mutex
	inFlight map[authKey]struct{}
	used     map[authKey]*usedEntry
	byExpiry expiryHeap
	max      int
}

type usedEntry struct {
	key     authKey
	expires time.Time
	index   int // in byExpiry
}

// expiryHeap orders used entries by expiry, soonest first.
type expiryHeap []*usedEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *expiryHeap) Push(x any) {
	e := x.(*usedEntry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}

// DefaultReplayCacheSize bounds the replay record: 100,000 live entries,
// about 25 MB, which covers about 660 payments per second with the default
// 60 s validity (an entry lives validBefore + 1 min: up to 150 s).
const DefaultReplayCacheSize = 100_000

func newReplayGuard(max int) *replayGuard {
	if max <= 0 {
		max = DefaultReplayCacheSize
	}
	return &replayGuard{inFlight: map[authKey]struct{}{}, used: map[authKey]*usedEntry{}, max: max}
}

// sweep drops the used entries that expired by now.
func (g *replayGuard) sweep(now time.Time) {
	for len(g.byExpiry) > 0 && !now.Before(g.byExpiry[0].expires) {
		e := heap.Pop(&g.byExpiry).(*usedEntry)
		delete(g.used, e.key)
	}
}

// acquire takes the in-flight lock. It reports used when the authorization
// was already used, full when the record has no room for another live
// entry (the payment must be refused, never a record dropped early), and
// ok otherwise; !ok && !used && !full means it is in flight.
func (g *replayGuard) acquire(k authKey, now time.Time) (ok, used, full bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sweep(now)
	if _, found := g.used[k]; found {
		return false, true, false
	}
	if _, busy := g.inFlight[k]; busy {
		return false, false, false
	}
	if len(g.inFlight)+len(g.used) >= g.max {
		return false, false, true
	}
	g.inFlight[k] = struct{}{}
	return true, false, false
}

// release drops the in-flight lock; markUsed, when true, remembers the
// authorization as spent until expires.
func (g *replayGuard) release(k authKey, markUsed bool, expires time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.inFlight, k)
	if !markUsed {
		return
	}
	if e, found := g.used[k]; found {
		if expires.After(e.expires) {
			e.expires = expires
			heap.Fix(&g.byExpiry, e.index)
		}
		return
	}
	e := &usedEntry{key: k, expires: expires}
	g.used[k] = e
	heap.Push(&g.byExpiry, e)
}

func (g *replayGuard) usedLen() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.used)
}
