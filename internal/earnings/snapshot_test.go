package earnings

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/exp/golden"

	"github.com/obolstack/obol/internal/evm"
)

func TestBuildExactAmounts(t *testing.T) {
	s := fixtureSnapshot()
	if len(s.Offers) != 3 {
		t.Fatalf("offers = %d, want 3", len(s.Offers))
	}
	// Stable order: namespace, name, chain.
	if got := []string{s.Offers[0].Key(), s.Offers[1].Key(), s.Offers[2].Key()}; strings.Join(got, ",") != "demo/llm,demo/weather,shop/search" {
		t.Fatalf("order = %v", got)
	}
	llm, weather, search := s.Offers[0], s.Offers[1], s.Offers[2]
	if llm.ChainName != "base" || weather.ChainName != "base-sepolia" {
		t.Errorf("chain names = %q, %q", llm.ChainName, weather.ChainName)
	}
	r := weather.Revenue[0]
	if !r.Known || r.Symbol != "USDC" || r.Decimals != 6 || *r.Window != "0.005" || r.Lifetime != "0.007" || *r.WindowAtomic != "5000" || r.LifetimeAtomic != "7000" {
		t.Errorf("weather revenue = %+v", r)
	}
	if *weather.ChargedCalls.Window != 5 || weather.ChargedCalls.Lifetime != 7 {
		t.Errorf("weather calls = %+v", weather.ChargedCalls)
	}
	if weather.LastSettlement == nil || weather.LastSettlement.Ago != "2m ago" || weather.LastSettlement.Time != "2026-11-27T11:58:00Z" {
		t.Errorf("weather last = %+v", weather.LastSettlement)
	}
	if llm.Revenue[0].Lifetime != "1.2" || *llm.Revenue[0].Window != "0.9" {
		t.Errorf("llm revenue = %+v", llm.Revenue[0])
	}
	u := search.Revenue[0]
	if u.Known || u.Symbol != "" || u.Lifetime != "300" || *u.Window != "100" {
		t.Errorf("unknown-token revenue = %+v", u)
	}
	if search.VerifiedRate != nil || search.LastSettlement != nil {
		t.Errorf("search rate/last = %v/%v, want null", search.VerifiedRate, search.LastSettlement)
	}
	if got := strings.Join(weather.Sparkline.Points, ","); got != "0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0.001,0,0.002,0.002" || weather.Sparkline.Unit != "USDC" {
		t.Errorf("sparkline = %s %s", weather.Sparkline.Unit, got)
	}
	// Totals per chain: base-sepolia has USDC and the unknown token.
	if len(s.Totals) != 2 {
		t.Fatalf("totals = %+v", s.Totals)
	}
	bs := s.Totals[1]
	if bs.Chain != "eip155:84532" || *bs.ChargedCalls.Window != 6 || bs.ChargedCalls.Lifetime != 10 || len(bs.Revenue) != 2 {
		t.Fatalf("base-sepolia total = %+v", bs)
	}
	if FormatAmounts(bs.Revenue, true) != "100 (0x0000…Beef), 0.005 USDC" {
		t.Errorf("total revenue = %s", FormatAmounts(bs.Revenue, true))
	}
	if !containsNote(s.Notes, "unknown token") {
		t.Errorf("notes lack the unknown-token note: %q", s.Notes)
	}
}

func TestBuildNeverInventsPrice(t *testing.T) {
	d := newData("metrics", "http://x/metrics")
	o := d.offer(OfferKey{"demo", "weather", "eip155:84532"})
	o.CallsLifetime = 4
	s := Build(d, Window24h, testNow, evm.NewRegistry())
	if len(s.Offers[0].Revenue) != 0 {
		t.Fatalf("revenue = %+v, want none without the atomic counter", s.Offers[0].Revenue)
	}
	if !containsNote(s.Notes, "revenue is unknown") || !containsNote(s.Notes, "lifetime figures only") {
		t.Errorf("notes = %q", s.Notes)
	}
	if s.Offers[0].ChargedCalls.Window != nil {
		t.Errorf("window calls = %v, want null", *s.Offers[0].ChargedCalls.Window)
	}
}

func TestAtomicFromFloat(t *testing.T) {
	for _, tc := range []struct {
		in    float64
		want  string
		exact bool
	}{
		{0, "0", true}, {999.9999999, "1000", true}, {1e15, "1000000000000000", true},
		{-3, "0", true}, {math.NaN(), "0", false}, {1 << 60, "1152921504606846976", false},
	} {
		got, exact := atomicFromFloat(tc.in)
		if got.String() != tc.want || exact != tc.exact {
			t.Errorf("atomicFromFloat(%v) = %s,%v want %s,%v", tc.in, got, exact, tc.want, tc.exact)
		}
	}
}

func TestAgo(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "just now", 5 * time.Second: "5s ago", 2*time.Minute + 10*time.Second: "2m ago",
		3 * time.Hour: "3h ago", 72 * time.Hour: "3d ago", -time.Minute: "just now",
	} {
		if got := Ago(testNow, testNow.Add(-d)); got != want {
			t.Errorf("Ago(-%s) = %q, want %q", d, got, want)
		}
	}
}

func TestParseWindow(t *testing.T) {
	for _, ok := range []string{"24h", "7d", "30d"} {
		if _, err := ParseWindow(ok); err != nil {
			t.Errorf("ParseWindow(%q): %v", ok, err)
		}
	}
	if _, err := ParseWindow("1h"); err == nil || !strings.Contains(err.Error(), "use 24h, 7d or 30d") {
		t.Errorf("ParseWindow(1h) err = %v", err)
	}
}

func TestSpark(t *testing.T) {
	if got := Spark([]string{"0", "1", "2", "4"}, 12); got != "▁▄▅█" {
		t.Errorf("Spark = %q", got)
	}
	if got := Spark([]string{"1", "1", "0", "0", "2", "2"}, 3); got != "▅▁█" {
		t.Errorf("Spark merged = %q", got)
	}
}

func TestSortOffers(t *testing.T) {
	s := fixtureSnapshot()
	keys := func() string {
		var k []string
		for _, r := range s.Offers {
			k = append(k, r.Key())
		}
		return strings.Join(k, ",")
	}
	for key, want := range map[SortKey]string{
		SortRevenue:  "demo/llm,demo/weather,shop/search", // unknown tokens sort as 0
		SortCalls:    "demo/llm,demo/weather,shop/search",
		SortLast:     "demo/weather,demo/llm,shop/search",
		SortOffer:    "demo/llm,demo/weather,shop/search",
		SortLifetime: "demo/llm,demo/weather,shop/search",
	} {
		SortOffers(s.Offers, key)
		if got := keys(); got != want {
			t.Errorf("sort %s = %s, want %s", key, got, want)
		}
	}
}

func TestSnapshotJSONSchema(t *testing.T) {
	s := fixtureSnapshot()
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden.RequireEqual(t, append(b, '\n'))
}

func TestWriteTable(t *testing.T) {
	s := fixtureSnapshot()
	var buf bytes.Buffer
	if err := WriteTable(&buf, &s); err != nil {
		t.Fatal(err)
	}
	golden.RequireEqual(t, buf.Bytes())
}

func containsNote(notes []string, sub string) bool {
	for _, n := range notes {
		if strings.Contains(n, sub) {
			return true
		}
	}
	return false
}
