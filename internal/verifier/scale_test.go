package verifier

import (
	"fmt"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/obolstack/obol/internal/evm"
)

// oracleMatch is the matcher the route index replaced, kept as the oracle:
// every route in config order, each pattern split and compared anew.
func oracleMatch(routes []*Route, clean string) *Route {
	for _, r := range routes {
		if oraclePatternMatch(r.Pattern, clean) {
			return r
		}
	}
	return nil
}

func oraclePatternMatch(p Pattern, clean string) bool {
	segs := splitPath(clean)
	if p.prefix {
		if len(segs) < len(p.segments) {
			return false
		}
		segs = segs[:len(p.segments)]
	} else if len(segs) != len(p.segments) {
		return false
	}
	for i, s := range p.segments {
		if !p.globs || !strings.ContainsAny(s, "*?[\\") {
			if segs[i] != s {
				return false
			}
			continue
		}
		if ok, _ := path.Match(s, segs[i]); !ok {
			return false
		}
	}
	return true
}

// randomRoutes builds n patterns from a small alphabet of segments, so that
// routes overlap (exact, prefix, globs at every depth) and first-match-wins
// decides.
func randomRoutes(rng *rand.Rand, n int) []*Route {
	segs := []string{"a", "b", "c", "v1", "v2", "*", "v*", "[ab]", "?"}
	seen := map[string]bool{}
	var routes []*Route
	for len(routes) < n {
		depth := rng.Intn(4)
		var b strings.Builder
		for i := 0; i < depth; i++ {
			b.WriteString("/" + segs[rng.Intn(len(segs))])
		}
		p := b.String()
		if rng.Intn(2) == 0 {
			p += "/*"
		}
		if p == "" {
			p = "/"
		}
		pat, err := ParsePattern(p)
		if err != nil || seen[p] {
			continue
		}
		seen[p] = true
		routes = append(routes, &Route{Pattern: pat, Offer: Offer{Name: fmt.Sprint(len(routes))}})
	}
	return routes
}

func randomPath(rng *rand.Rand) string {
	segs := []string{"a", "b", "c", "v1", "v2", "x", "ab", ""}
	var b strings.Builder
	for i, n := 0, rng.Intn(5); i < n; i++ {
		b.WriteString("/" + segs[rng.Intn(len(segs))])
	}
	if rng.Intn(4) == 0 {
		b.WriteString("/")
	}
	return cleanRequestPath(b.String())
}

// The route index picks the same route as the linear matcher, on random
// route sets and paths.
func FuzzRouteIndexMatchesLinear(f *testing.F) {
	for seed := int64(0); seed < 8; seed++ {
		f.Add(seed, uint8(1+seed*5))
	}
	f.Fuzz(func(t *testing.T, seed int64, n uint8) {
		rng := rand.New(rand.NewSource(seed))
		routes := randomRoutes(rng, 1+int(n)%40)
		idx := newRouteIndex(routes)
		for i := 0; i < 200; i++ {
			p := randomPath(rng)
			want, got := oracleMatch(routes, p), idx.match(p)
			if want != got {
				t.Fatalf("path %q: index picked %v, linear matcher %v (routes %v)", p, describe(got), describe(want), patterns(routes))
			}
		}
	})
}

func describe(r *Route) string {
	if r == nil {
		return "none"
	}
	return r.Pattern.String()
}

func patterns(routes []*Route) []string {
	out := make([]string, len(routes))
	for i, r := range routes {
		out[i] = r.Pattern.String()
	}
	return out
}

// A reload that drops half of 10,000 offers while 8 goroutines hammer a
// kept offer: no request waits on the reload, the removed offers' series
// are all gone, the kept ones keep their values.
func TestReloadUnderLoadAtScale(t *testing.T) {
	up := newUpstream(t)
	reg := evm.NewRegistry()
	const n = 10000
	full := compileScale(t, reg, up.URL, n, scaleChains[:1])
	half := compileScale(t, reg, up.URL, n/2, scaleChains[:1])
	g := newScaleGate(t, reg, full)

	// Give every offer some history: a 402 for all, a failure for a few.
	for i := 0; i < n; i++ {
		p := fmt.Sprintf("/svc/%d/x", i)
		if w := g.do(httptest.NewRequest(http.MethodGet, p, nil)); w.Code != http.StatusPaymentRequired {
			t.Fatalf("%s: %d", p, w.Code)
		}
		if i%100 == 0 {
			r := httptest.NewRequest(http.MethodGet, p, nil)
			r.Header.Set("PAYMENT-SIGNATURE", "garbage")
			if w := g.do(r); w.Code != http.StatusBadRequest {
				t.Fatalf("%s with a malformed payment: %d", p, w.Code)
			}
		}
	}
	kept := "/svc/7/x"
	keptLV := offerLabelValues(Offer{"default", "svc-7"}, "eip155:84532")
	before := testutil.ToFloat64(g.metrics.PaymentRequired.Series(keptLV...))

	var (
		stop    atomic.Bool
		slowest atomic.Int64
		count   atomic.Int64
		wg      sync.WaitGroup
		flowing = make(chan struct{}) // closed at the 100th answer
	)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				start := time.Now()
				rec := g.do(httptest.NewRequest(http.MethodGet, kept, nil))
				d := time.Since(start).Nanoseconds()
				if rec.Code != http.StatusPaymentRequired {
					t.Errorf("kept offer: %d", rec.Code)
					return
				}
				if count.Add(1) == 100 {
					close(flowing)
				}
				for {
					cur := slowest.Load()
					if d <= cur || slowest.CompareAndSwap(cur, d) {
						break
					}
				}
			}
		}()
	}
	select { // traffic is flowing before the reload
	case <-flowing:
	case <-time.After(time.Minute):
		t.Fatal("the kept offer did not answer 100 requests within a minute")
	}
	start := time.Now()
	if err := g.srv.ApplyConfig(half); err != nil {
		t.Fatal(err)
	}
	applied := time.Since(start)
	during := count.Load()
	stop.Store(true)
	wg.Wait()
	t.Logf("reload 10k→5k took %v; %d requests to the kept offer, slowest %v", applied, during, time.Duration(slowest.Load()))
	// Generous: the machine is shared; the old code took about a minute.
	if max := 3 * time.Second; time.Duration(slowest.Load()) > max {
		t.Fatalf("a request to a kept offer took %v during the reload (bound %v)", time.Duration(slowest.Load()), max)
	}

	fams := scrape(t, g.h)
	for _, name := range offerSeries {
		for _, s := range fams[name] {
			var i int
			if _, err := fmt.Sscanf(string(s.Metric[LabelOfferName]), "svc-%d", &i); err == nil && i >= n/2 {
				t.Fatalf("series of removed offer survived the reload: %s", s.Metric)
			}
		}
	}
	// The kept priced offers and the free /health offer.
	if got := len(fams["obol_x402_verifier_payment_required_total"]); got != n/2+1 {
		t.Fatalf("%d payment_required series after the reload, want %d", got, n/2+1)
	}
	if got := len(fams["obol_x402_verifier_payment_failures_total"]); got != n/2/100 {
		t.Fatalf("%d payment_failures series after the reload, want %d", got, n/2/100)
	}
	after := testutil.ToFloat64(g.metrics.PaymentRequired.Series(keptLV...))
	if after < before+float64(during) {
		t.Fatalf("kept offer's payment_required = %v, want at least %v + %d", after, before, during)
	}
}
