package e2e

import (
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The PurchaseRequest the buyer step creates: three authorizations, a daily
// cap of two calls.
const (
	purchaseName = "e2e-weather"
	dailyCap     = "0.002" // 2 × price
)

// buyerUpstream is one upstream of the buyer proxy's GET /status.
type buyerUpstream struct {
	Name         string `json:"name"`
	Remaining    int    `json:"remaining"`
	Used         int    `json:"used"`
	Spent        string `json:"spent"`
	SpentLast24h string `json:"spentLast24h"`
}

func (e *env) buyerStatus(base string) ([]buyerUpstream, error) {
	st, body, err := httpGet(base+"/status", nil)
	if err != nil {
		return nil, err
	}
	if st != http.StatusOK {
		return nil, fmt.Errorf("buyer /status: HTTP %d: %s", st, body)
	}
	var s struct {
		Upstreams []buyerUpstream `json:"upstreams"`
	}
	return s.Upstreams, json.Unmarshal([]byte(body), &s)
}

// stepBuyerProxy: `obol buy create` with caps → the controller hands the
// request to the in-cluster buyer proxy (within seconds) → a caller that
// holds no key goes through the proxy (a port-forward to the buyer pod) →
// the proxy pays the in-cluster verifier with a pre-signed authorization:
// 200 with the weather, the seller gains the price; the daily cap refuses
// the third call with nothing spent; `obol buy status` shows remaining and
// spent.
func stepBuyerProxy(t *testing.T, e *env) {
	verifier := e.serviceURL(t, e.ns, "obol-verifier")
	endpoint := verifier + offerPath
	rpc := e.serviceURL(t, e.ns, "obol-devchain")
	buyerURL := e.portForwardService(t, e.ns, "obol-buyer")

	start := time.Now()
	out, errOut, err := e.obolTry(2*time.Minute, "buy", "create", purchaseName, "-n", e.ns, "--endpoint", endpoint,
		"--count", "3", "--key-file", filepath.Join(e.keyDir, "buyer-2.key"), "--max-amount", "0.01",
		"--max-spend-per-day", dailyCap, "--chain", "obol-dev")
	if err != nil {
		t.Fatalf("obol buy create: %v\n%s\n%s", err, out, errOut)
	}
	t.Logf("obol buy create %s --count 3 --max-spend-per-day %s:\n%s", purchaseName, dailyCap, strings.TrimSpace(errOut))
	created := time.Now()

	// The controller writes the buyer's ConfigMap and the proxy, watching
	// it through the API, has the pool within seconds (it took ~2 minutes
	// through a mounted volume).
	eventually(t, 30*time.Second, "the buyer proxy to load the PurchaseRequest", func() error {
		ups, err := e.buyerStatus(buyerURL)
		if err != nil {
			return err
		}
		for _, u := range ups {
			if u.Name == purchaseName && u.Remaining == 3 {
				return nil
			}
		}
		return fmt.Errorf("upstreams %+v", ups)
	})
	t.Logf("the buyer proxy had the new PurchaseRequest %s after `obol buy create` returned (%s after it started)",
		time.Since(created).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	before := balanceOf(t, rpc, sellerAddr)
	call := func() (int, string) {
		t.Helper()
		st, body, err := httpGet(buyerURL+"/upstream/"+purchaseName+paidCallPath, nil)
		if err != nil {
			t.Fatalf("call through the buyer proxy: %v", err)
		}
		return st, body
	}
	for i := 1; i <= 2; i++ {
		st, body := call()
		t.Logf("call %d through the buyer proxy (no key, no payment header): HTTP %d %s", i, st, strings.TrimSpace(body))
		if st != http.StatusOK {
			t.Fatalf("call %d: HTTP %d, want 200: %s", i, st, body)
		}
		assertWeather(t, body)
		e.paidCalls++
		got := new(big.Int).Sub(balanceOf(t, rpc, sellerAddr), before)
		t.Logf("seller balance moved by %s atomic units after %d calls", got, i)
		if got.Cmp(big.NewInt(int64(i*priceAtomic))) != 0 {
			t.Fatalf("after %d paid calls the seller gained %s, want %d", i, got, i*priceAtomic)
		}
	}
	st, body := call()
	t.Logf("call 3 (past the daily cap): HTTP %d %s", st, strings.TrimSpace(body))
	if st != http.StatusTooManyRequests || !strings.Contains(body, "daily spend cap") {
		t.Fatalf("call 3: HTTP %d %s; want 429 naming the daily spend cap", st, body)
	}
	if got := new(big.Int).Sub(balanceOf(t, rpc, sellerAddr), before); got.Cmp(big.NewInt(2*priceAtomic)) != 0 {
		t.Fatalf("the refused call moved money: the seller gained %s, want %d", got, 2*priceAtomic)
	}

	// obol buy status: the controller copies the proxy's counts.
	var pr struct {
		Status struct {
			Remaining  int    `json:"remaining"`
			Spent      int    `json:"spent"`
			TotalSpent string `json:"totalSpent"`
			ValidUntil string `json:"validUntil"`
			NextExpiry string `json:"nextExpiry"`
			Conditions []struct {
				Type, Status, Reason, Message string
			} `json:"conditions"`
		} `json:"status"`
	}
	var raw string
	eventually(t, 90*time.Second, "obol buy status to show 1 remaining, 2 spent", func() error {
		out, errOut, err := e.obolTry(time.Minute, "buy", "status", purchaseName, "-n", e.ns, "-o", "json")
		if err != nil {
			return fmt.Errorf("%v: %s", err, errOut)
		}
		raw = out
		if err := json.Unmarshal([]byte(out), &pr); err != nil {
			return err
		}
		if pr.Status.Remaining != 1 || pr.Status.Spent != 2 || pr.Status.TotalSpent != "2000" {
			return fmt.Errorf("status remaining %d spent %d totalSpent %q", pr.Status.Remaining, pr.Status.Spent, pr.Status.TotalSpent)
		}
		return nil
	})
	var full map[string]any
	_ = json.Unmarshal([]byte(raw), &full)
	sj, _ := json.MarshalIndent(full["status"], "", "  ")
	t.Logf("obol buy status %s -o json | .status:\n%s", purchaseName, sj)
	if pr.Status.ValidUntil == "" || pr.Status.NextExpiry == "" {
		t.Errorf("status lacks validUntil/nextExpiry: %s", sj)
	}
	text := e.obolCmd(t, time.Minute, "buy", "status", purchaseName, "-n", e.ns)
	t.Logf("obol buy status %s:\n%s", purchaseName, text)
	for _, want := range []string{"1 remaining, 2 spent", "Validity:", "obol buy refill " + purchaseName} {
		if !strings.Contains(text, want) {
			t.Errorf("obol buy status lacks %q", want)
		}
	}
	t.Logf("obol buy delete:\n%s", e.obolCmd(t, 2*time.Minute, "buy", "delete", purchaseName, "-n", e.ns))
	eventually(t, 30*time.Second, "the buyer proxy to drop the deleted PurchaseRequest", func() error {
		ups, err := e.buyerStatus(buyerURL)
		if err != nil {
			return err
		}
		for _, u := range ups {
			if u.Name == purchaseName {
				return fmt.Errorf("still configured: %+v", u)
			}
		}
		return nil
	})
}

// assertWeather fails unless body is the demo upstream's weather answer
// for paidCity (not its index, which a wrongly stripped path reaches).
func assertWeather(t *testing.T, body string) {
	t.Helper()
	var w struct {
		City       string `json:"city"`
		Conditions string `json:"conditions"`
		Service    string `json:"service"`
	}
	if err := json.Unmarshal([]byte(body), &w); err != nil || w.City != paidCity || w.Conditions == "" {
		t.Fatalf("paid answer is not the weather for %s: %s", paidCity, body)
	}
}
