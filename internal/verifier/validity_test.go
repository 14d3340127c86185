package verifier

import (
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/x402"
)

// payFor signs a payment of req valid from now for validity.
func (b *buyer) payFor(t testing.TB, reg *evm.Registry, req x402.Requirement, now time.Time, validity time.Duration) (string, string) {
	t.Helper()
	ch, err := reg.Chain(req.Network)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := reg.Token(ch.CAIP2, req.Asset)
	if err != nil {
		t.Fatal(err)
	}
	value, _ := new(big.Int).SetString(req.Amount, 10)
	auth, err := evm.NewAuthorization(crypto.PubkeyToAddress(b.key.PublicKey), commonAddr(req.PayTo), value, now, validity)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := evm.Sign(b.key, tok.Domain(ch.ChainID), auth)
	if err != nil {
		t.Fatal(err)
	}
	p, err := x402.NewExactPayment(x402.Version2, req, x402.ExactEVMPayload{Signature: "0x" + hexString(sig), Authorization: auth.Wire()})
	if err != nil {
		t.Fatal(err)
	}
	name, v, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return name, v
}

func TestLongValidityIsRefused(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	g := newGate(t, proxyDoc(up.URL)) // maxTimeoutSeconds 60
	req := challenge(t, g.h, "/joke")
	b := newBuyer(t)
	for _, c := range []struct {
		validity time.Duration
		ok       bool
	}{{60 * time.Second, true}, {60*time.Second + evm.ValiditySkew, true}, {10 * time.Minute, false}, {10 * 365 * 24 * time.Hour, false}} {
		name, value := b.payFor(t, g.evm, req, time.Now(), c.validity)
		r := httptest.NewRequest(http.MethodGet, "/joke", nil)
		r.Header.Set(name, value)
		verifies, _ := g.fac.calls()
		w := g.do(r)
		v, _ := g.fac.calls()
		if c.ok && w.Code != 200 {
			t.Errorf("valid for %s: %d %s", c.validity, w.Code, w.Body)
		}
		if !c.ok && (w.Code != 402 || !strings.Contains(w.Body.String(), x402.ReasonValidBefore) || v != verifies) {
			t.Errorf("valid for %s: %d %s (facilitator asked %d times), want 402 %s without asking", c.validity, w.Code, w.Body, v-verifies, x402.ReasonValidBefore)
		}
	}
}

// A used authorization stays refused for its whole validity, however many
// other payments pass meanwhile: the record is never evicted early. With a
// cache of 1,000 and 100,000 short-lived payments the old LRU forgot it.
func TestUsedAuthorizationOutlivesOtherPayments(t *testing.T) {
	t.Parallel()
	g := newReplayGuard(1000)
	t0 := time.Unix(1_800_000_000, 0)
	target := newAuthKey("eip155:84532", testUSDC, testPayTo, "0xtarget")
	if ok, _, _ := g.acquire(target, t0); !ok {
		t.Fatal("first use refused")
	}
	g.release(target, true, t0.Add(120*time.Second))
	now := t0
	for i := 0; i < 100_000; i++ {
		now = t0.Add(time.Duration(i) * time.Millisecond) // 100,000 payments in 100 s
		k := newAuthKey("eip155:84532", testUSDC, testPayTo, fmt.Sprintf("0x%x", i))
		ok, used, full := g.acquire(k, now)
		if !ok || used || full {
			t.Fatalf("payment %d refused (used %v, full %v) with %d live", i, used, full, g.usedLen())
		}
		g.release(k, true, now.Add(500*time.Millisecond))
		if i%1000 == 0 {
			if _, used, _ := g.acquire(target, now); !used {
				t.Fatalf("after %d other payments the used authorization is accepted again", i)
			}
		}
	}
	if _, used, _ := g.acquire(target, t0.Add(119*time.Second)); !used {
		t.Fatal("the used authorization is accepted again before its validity ended")
	}
	if ok, _, _ := g.acquire(target, t0.Add(121*time.Second)); !ok {
		t.Fatal("the record outlived the authorization's validity")
	}
}

// When the record is full of live entries a new payment is refused (503),
// never an entry dropped.
func TestFullReplayRecordRefusesNewPayments(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	g := newGate(t, proxyDoc(up.URL))
	g.srv.guard = newReplayGuard(3)
	req := challenge(t, g.h, "/joke")
	var first *http.Request
	for i := 0; i < 3; i++ {
		name, value := newBuyer(t).payFor(t, g.evm, req, time.Now(), time.Minute)
		r := httptest.NewRequest(http.MethodGet, "/joke", nil)
		r.Header.Set(name, value)
		if i == 0 {
			first = r.Clone(r.Context())
		}
		if w := g.do(r); w.Code != 200 {
			t.Fatalf("payment %d: %d %s", i, w.Code, w.Body)
		}
	}
	name, value := newBuyer(t).payFor(t, g.evm, req, time.Now(), time.Minute)
	r := httptest.NewRequest(http.MethodGet, "/joke", nil)
	r.Header.Set(name, value)
	if w := g.do(r); w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), ReasonReplayRecordFull) {
		t.Fatalf("fourth payment with a full record: %d %s", w.Code, w.Body)
	}
	if w := g.do(first); w.Code != 402 || !strings.Contains(w.Body.String(), ReasonAuthorizationReused) {
		t.Fatalf("replay of the first payment: %d %s", w.Code, w.Body)
	}
}
