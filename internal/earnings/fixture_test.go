package earnings

import (
	"time"

	"github.com/obolstack/obol/internal/evm"
)

// Fixed clock and addresses of the fixtures.
var (
	testNow      = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	usdcBaseSep  = "0x036CbD53842c5426634e7929541eC2318f3dCF7e"
	usdcBase     = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
	unknownAsset = "0x00000000000000000000000000000000DeaDBeef"
)

func hourly(vals map[int]float64) []float64 {
	out := make([]float64, 24)
	for i, v := range vals {
		out[i] = v
	}
	return out
}

// fixtureData is three offers on two chains (one with a token the registry
// does not know) and one buyer upstream.
func fixtureData() *Data {
	d := newData("prometheus", "http://127.0.0.1:9090")
	d.Windowed = true
	d.HasAtomic = true
	d.RecordingRules = "loaded"
	d.RulesFound = append([]string{}, contractRules...)
	w := d.offer(OfferKey{"demo", "weather", "eip155:84532"})
	w.Requests, w.CallsLifetime, w.CallsWindow = 12, 7, ptr(5)
	w.AtomicLifetime[usdcBaseSep] = 7000
	w.AtomicWindow = map[string]float64{usdcBaseSep: 5000}
	w.VerifiedRate, w.RateWindow = ptr(0.5), "1h"
	w.LastSettlement = float64(testNow.Add(-2 * time.Minute).Unix())
	w.SparkStep = time.Hour
	w.SparkCalls = hourly(map[int]float64{20: 1, 22: 2, 23: 2})
	w.SparkAtomic = map[string][]float64{usdcBaseSep: hourly(map[int]float64{20: 1000, 22: 2000, 23: 2000})}

	l := d.offer(OfferKey{"demo", "llm", "eip155:8453"})
	l.Requests, l.CallsLifetime, l.CallsWindow = 45, 40, ptr(30)
	l.AtomicLifetime[usdcBase] = 1_200_000
	l.AtomicWindow = map[string]float64{usdcBase: 900_000}
	l.VerifiedRate, l.RateWindow = ptr(0.95), "1h"
	l.LastSettlement = float64(testNow.Add(-3 * time.Hour).Unix())
	l.SparkStep = time.Hour
	l.SparkCalls = hourly(map[int]float64{0: 3, 5: 10, 12: 9, 20: 8})
	l.SparkAtomic = map[string][]float64{usdcBase: hourly(map[int]float64{0: 90_000, 5: 300_000, 12: 270_000, 20: 240_000})}

	s := d.offer(OfferKey{"shop", "search", "eip155:84532"})
	s.Requests, s.CallsLifetime, s.CallsWindow = 9, 3, ptr(1)
	s.AtomicLifetime[unknownAsset] = 300
	s.AtomicWindow = map[string]float64{unknownAsset: 100}
	s.RateWindow = "1h"
	s.SparkStep = time.Hour
	s.SparkCalls = hourly(map[int]float64{10: 1})
	s.SparkAtomic = map[string][]float64{unknownAsset: hourly(map[int]float64{10: 100})}

	b := d.spend(SpendKey{"http://litellm.llm.svc:4000", "qwen3:8b", "eip155:84532"})
	b.Requests, b.Attempts, b.Success, b.Failure = 12, 9, 8, 1
	b.RequestsW, b.AttemptsW, b.SuccessW, b.FailureW = ptr(6), ptr(5), ptr(4), ptr(1)
	b.AuthRemaining, b.AuthSpent, b.ActiveModelMappings = 92, 8, 1
	return d
}

func fixtureSnapshot() Snapshot {
	return Build(fixtureData(), Window24h, testNow, evm.NewRegistry())
}
