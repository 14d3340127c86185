package earnings

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/obolstack/obol/internal/devstack"
	"github.com/obolstack/obol/internal/devstack/stackfile"
	"github.com/obolstack/obol/internal/earnings"
	"github.com/obolstack/obol/internal/testenv"
	"github.com/obolstack/obol/internal/verifier"
)

// TestRealVerifierPaidCalls is the end-to-end check: a real verifier
// (obol dev's, in proxy mode, with a real facilitator settling EIP-3009
// transfers on the in-process dev chain) takes real paid calls; a real
// Prometheus scrapes it; `obol earnings -o json` reports the exact charged
// count and revenue for the offer on its CAIP-2 chain and a last settlement
// within a minute — without the recording rules, with the chart's rules
// loaded, and from the verifier's /metrics directly.
func TestRealVerifierPaidCalls(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dev chain, facilitator, verifier and Prometheus")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	stackPath := filepath.Join(t.TempDir(), "stack.json")
	t.Setenv(stackfile.EnvPath, stackPath) // obol earnings learns the dev token here
	st, err := devstack.Start(ctx, devstack.Options{Listen: "127.0.0.1:0", StackFile: stackPath, Price: "0.001"})
	if err != nil {
		t.Fatalf("start the dev stack: %v", err)
	}
	defer st.Close()

	// The verifier serves /metrics, the path testenv scrapes.
	p := testenv.StartPrometheus(t, testenv.PromConfig{Targets: []string{st.VerifierURL}})
	p.WaitForUp(t, "test", 1)

	const paid = 3
	calls, err := st.Pay(ctx, paid, nil)
	if err != nil {
		t.Fatalf("paid calls: %v", err)
	}
	for _, c := range calls {
		if c.Status != 200 || c.Transaction() == "" {
			t.Fatalf("call %d: status %d tx %q", c.N, c.Status, c.Transaction())
		}
	}
	paidAt := time.Now()
	p.WaitForValue(t, "sum("+verifier.MetricCharged+")", paid)
	p.WaitFor(t, "sum(increase("+verifier.MetricPaymentVerified+"[1h]))", func(f float64) bool { return f > 0 })

	wantAtomic := new(big.Int).Mul(st.PriceAtomic, big.NewInt(paid)).String()
	chain := st.Token.Chain
	check := func(name string, s earnings.Snapshot, windowed bool) {
		t.Helper()
		var row *earnings.OfferRow
		for i := range s.Offers {
			o := &s.Offers[i]
			if o.Namespace == devstack.OfferNamespace && o.Name == devstack.OfferName && o.Chain == chain {
				row = o
			}
		}
		if row == nil {
			t.Fatalf("%s: no row for %s/%s on %s: %+v", name, devstack.OfferNamespace, devstack.OfferName, chain, s.Offers)
		}
		if !strings.HasPrefix(row.Chain, "eip155:") {
			t.Errorf("%s: chain %q is not CAIP-2", name, row.Chain)
		}
		if row.ChargedCalls.Lifetime != paid || (windowed && row.ChargedCalls.Window == nil) {
			t.Errorf("%s: charged calls = %+v, want %d", name, row.ChargedCalls, paid)
		}
		if len(row.Revenue) != 1 {
			t.Fatalf("%s: revenue = %+v", name, row.Revenue)
		}
		r := row.Revenue[0]
		if !r.Known || r.Symbol != st.Token.Symbol || r.LifetimeAtomic != wantAtomic || r.Lifetime != "0.003" {
			t.Errorf("%s: revenue = %+v, want %s atomic = 0.003 %s", name, r, wantAtomic, st.Token.Symbol)
		}
		if windowed && (r.WindowAtomic == nil || r.Window == nil) {
			t.Errorf("%s: window revenue = %+v", name, r)
		}
		if row.LastSettlement == nil || math.Abs(float64(row.LastSettlement.Unix-paidAt.Unix())) > 60 {
			t.Errorf("%s: last settlement = %+v, want within a minute of %s", name, row.LastSettlement, paidAt.Format(time.RFC3339))
		}
		if row.VerifiedRate == nil || *row.VerifiedRate <= 0 {
			t.Errorf("%s: settlement rate = %v", name, row.VerifiedRate)
		}
	}

	sel := fmt.Sprintf(`{offer_namespace=%q,offer_name=%q,chain=%q}`, devstack.OfferNamespace, devstack.OfferName, chain)
	// The window figures are the 24h expressions' values at the same
	// evaluation time (increase() estimates, not the exact count).
	window := func(name string, s earnings.Snapshot, calls, atomic string, at time.Time) {
		t.Helper()
		for _, o := range s.Offers {
			if o.Namespace == devstack.OfferNamespace && o.Name == devstack.OfferName && o.Chain == chain {
				checkWindow(t, name, o, valueAt(t, p, calls, at), valueAt(t, p, atomic, at))
			}
		}
	}
	at := settledAt(t, p, verifier.MetricCharged)
	raw := runJSON(t, p.URL, at)
	if raw.Source.RecordingRules != "missing" {
		t.Errorf("without rules: recordingRules = %q", raw.Source.RecordingRules)
	}
	check("raw PromQL", raw, true)
	window("raw PromQL", raw, rawCalls24h(sel), rawAtomic24h(sel), at)

	p.Reload(t, testenv.PromConfig{Targets: []string{st.VerifierURL}, RuleFiles: []string{ruleFile(t)}})
	p.WaitFor(t, `x402:settlement_rate:1h_by_offer_chain`, func(f float64) bool { return f > 0 })
	// The chart's revenue rules themselves, for the paid offer on its CAIP-2
	// chain (what dashboards read).
	p.WaitFor(t, `x402:revenue:24h_by_offer_chain`+sel, func(f float64) bool { return f > 0 })
	p.WaitFor(t, `x402:revenue_atomic:24h_by_offer_chain_asset`+sel, func(f float64) bool { return f > 0 })
	p.WaitForValue(t, `x402:revenue:lifetime_by_offer{offer_namespace="`+devstack.OfferNamespace+`",offer_name="`+devstack.OfferName+`"}`, paid)
	at = settledAt(t, p, "x402:revenue_atomic:24h_by_offer_chain_asset")
	ruled := runJSON(t, p.URL, at)
	if ruled.Source.RecordingRules != "loaded" {
		t.Errorf("with rules: recordingRules = %q", ruled.Source.RecordingRules)
	}
	check("recording rules", ruled, true)
	window("recording rules", ruled, `x402:revenue:24h_by_offer_chain`+sel, `sum(x402:revenue_atomic:24h_by_offer_chain_asset`+sel+`)`, at)

	opts, out := testOpts(t)
	opts.MetricsURL = st.MetricsURL
	opts.Now = time.Now
	if err := earningsRun(ctx, opts); err != nil {
		t.Fatal(err)
	}
	var direct earnings.Snapshot
	if err := json.Unmarshal(out.Bytes(), &direct); err != nil {
		t.Fatal(err)
	}
	check("--metrics-url", direct, false)
}
