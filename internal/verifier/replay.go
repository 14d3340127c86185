package verifier

import (
	"container/list"
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
// in-flight set held between verify and settle, and a bounded cache of
// recently used (settled, or passed in verify-only mode) authorizations,
// each kept until its validBefore has passed (after which the token refuses
// it anyway) and evicted oldest-first beyond max entries.
type replayGuard struct {
	mu       sync.Mutex
	inFlight map[authKey]struct{}
	used     map[authKey]*list.Element
	order    *list.List // front = newest
	max      int
}

type usedEntry struct {
	key     authKey
	expires time.Time
}

func newReplayGuard(max int) *replayGuard {
	if max <= 0 {
		max = 100_000
	}
	return &replayGuard{inFlight: map[authKey]struct{}{}, used: map[authKey]*list.Element{}, order: list.New(), max: max}
}

// acquire takes the in-flight lock. It reports (false, true) when the
// authorization was already used, (false, false) when it is in flight.
func (g *replayGuard) acquire(k authKey, now time.Time) (ok, used bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if el, found := g.used[k]; found {
		if now.Before(el.Value.(*usedEntry).expires) {
			return false, true
		}
		g.order.Remove(el)
		delete(g.used, k)
	}
	if _, busy := g.inFlight[k]; busy {
		return false, false
	}
	g.inFlight[k] = struct{}{}
	return true, false
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
	if el, found := g.used[k]; found {
		el.Value.(*usedEntry).expires = expires
		g.order.MoveToFront(el)
		return
	}
	g.used[k] = g.order.PushFront(&usedEntry{key: k, expires: expires})
	for g.order.Len() > g.max {
		old := g.order.Back()
		g.order.Remove(old)
		delete(g.used, old.Value.(*usedEntry).key)
	}
}
