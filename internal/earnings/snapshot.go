// Package earnings turns the x402 verifier's and buyer's metrics into a
// Snapshot — revenue, charged calls, settlement rate and last settlement per
// offer and chain, totals per chain, and spend per upstream — read either from
// Prometheus (recording rules, or raw PromQL when they are not loaded) or from
// a process's /metrics page. A bubbletea model and a plain-text renderer show
// the snapshot; `obol earnings` wires them to the command line.
package earnings

import (
	"context"
	"fmt"
	"math"
	"math/big"
	"sort"
	"strings"
	"time"

	"github.com/obolstack/obol/internal/evm"
)

// SchemaVersion is the version of the Snapshot JSON schema (docs/earnings.md).
// It changes only when a field is removed or changes meaning.
const SchemaVersion = 1

// Window is the period the windowed figures cover.
type Window string

// The windows `obol earnings --window` accepts.
const (
	Window24h Window = "24h"
	Window7d  Window = "7d"
	Window30d Window = "30d"
)

// ParseWindow accepts 24h, 7d or 30d.
func ParseWindow(s string) (Window, error) {
	switch w := Window(strings.TrimSpace(s)); w {
	case Window24h, Window7d, Window30d:
		return w, nil
	}
	return "", fmt.Errorf("invalid window %q: use 24h, 7d or 30d", s)
}

// Duration is the window's length.
func (w Window) Duration() time.Duration {
	switch w {
	case Window7d:
		return 7 * 24 * time.Hour
	case Window30d:
		return 30 * 24 * time.Hour
	}
	return 24 * time.Hour
}

// SparkStep is the width of one sparkline bucket: an hour for 24h, six hours
// for 7d, a day for 30d (24, 28 and 30 points).
func (w Window) SparkStep() time.Duration {
	switch w {
	case Window7d:
		return 6 * time.Hour
	case Window30d:
		return 24 * time.Hour
	}
	return time.Hour
}

// promDuration is the window in PromQL duration syntax.
func (w Window) promDuration() string {
	switch w {
	case Window7d:
		return "7d"
	case Window30d:
		return "30d"
	}
	return "24h"
}

// Snapshot is what `obol earnings` shows, and its -o json output. Field names
// and meanings are a documented, stable schema (docs/earnings.md).
type Snapshot struct {
	SchemaVersion int        `json:"schemaVersion"`
	GeneratedAt   time.Time  `json:"generatedAt"`
	Window        Window     `json:"window"`
	Source        SourceInfo `json:"source"`
	// Notes say plainly what the figures are and are not (fallbacks, missing
	// metrics, unknown assets).
	Notes  []string     `json:"notes"`
	Offers []OfferRow   `json:"offers"`
	Totals []ChainTotal `json:"totals"`
	Spend  []SpendRow   `json:"spend"`
}

// SourceInfo says where the figures came from.
type SourceInfo struct {
	// Kind is "prometheus" or "metrics" (a /metrics page).
	Kind string `json:"kind"`
	URL  string `json:"url"`
	// Windowed is false for a /metrics source: only lifetime figures exist and
	// every window field is null.
	Windowed bool `json:"windowed"`
	// RecordingRules is "loaded" (every x402 rule obol earnings reads is in
	// Prometheus), "missing" (computed from raw metrics instead), "partial",
	// or "n/a" for a /metrics source.
	RecordingRules string `json:"recordingRules"`
	// RulesFound lists the x402 recording rules Prometheus reported.
	RulesFound []string `json:"rulesFound,omitempty"`
}

// Count is a number of events in the window and over the lifetime of the
// counters. Window is null when the source has no history.
type Count struct {
	Window   *int64 `json:"window"`
	Lifetime int64  `json:"lifetime"`
}

// Amount is revenue in one asset: exact decimal strings in token units (when
// the token is known) and in atomic units.
type Amount struct {
	Asset string `json:"asset"` // token contract address as labelled
	// Symbol and Decimals come from the token registry; Known is false when
	// the asset is not in it, and then Window/Lifetime are atomic units too.
	Symbol   string `json:"symbol,omitempty"`
	Decimals int    `json:"decimals"`
	Known    bool   `json:"known"`
	// Window and Lifetime are decimal strings in token units ("0.005").
	Window         *string `json:"window"`
	Lifetime       string  `json:"lifetime"`
	WindowAtomic   *string `json:"windowAtomic"`
	LifetimeAtomic string  `json:"lifetimeAtomic"`
}

// LastSettlement is the time of the most recent settled payment.
type LastSettlement struct {
	Unix int64  `json:"unix"`
	Time string `json:"time"` // RFC 3339, UTC
	Ago  string `json:"ago"`  // "2m ago", relative to generatedAt
}

// Sparkline is revenue (or charged calls) per bucket across the window,
// oldest first, each bucket ending at start+i*step.
type Sparkline struct {
	StepSeconds int64 `json:"stepSeconds"`
	// Unit is a token symbol, "atomic:<asset>" for an unknown token, or
	// "calls" when no atomic-units counter exists.
	Unit   string   `json:"unit"`
	Points []string `json:"points"` // exact decimals in Unit
}

// OfferRow is one ServiceOffer on one chain.
type OfferRow struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Chain     string `json:"chain"`     // CAIP-2
	ChainName string `json:"chainName"` // registry name, or the CAIP-2 id when unknown
	// Requests is every request the verifier saw for the offer (lifetime).
	Requests     int64    `json:"requests"`
	ChargedCalls Count    `json:"chargedCalls"`
	Revenue      []Amount `json:"revenue"`
	// VerifiedRate is the share of payment traffic whose payment the
	// facilitator verified: verified / (required + verified + failed), 0..1
	// rounded to 6 decimals, over VerifiedRateWindow ("1h" from Prometheus,
	// "lifetime" from /metrics); null when there was no payment traffic. It
	// counts verifications, not settlements; the JSON keeps the name of the
	// recording rule it reads (x402:settlement_rate:1h_by_offer_chain), which
	// dashboards and scripts already use.
	VerifiedRate       *float64        `json:"settlementRate"`
	VerifiedRateWindow string          `json:"settlementRateWindow"`
	LastSettlement     *LastSettlement `json:"lastSettlement"`
	Sparkline          *Sparkline      `json:"sparkline"`
}

// Key identifies the row as namespace/name.
func (r OfferRow) Key() string { return r.Namespace + "/" + r.Name }

// ChainTotal sums the offers on one chain.
type ChainTotal struct {
	Chain        string   `json:"chain"`
	ChainName    string   `json:"chainName"`
	ChargedCalls Count    `json:"chargedCalls"`
	Revenue      []Amount `json:"revenue"`
}

// SpendRow is what the buyer paid one upstream model on one chain.
type SpendRow struct {
	Upstream        string `json:"upstream"`
	RemoteModel     string `json:"remoteModel"`
	Chain           string `json:"chain"`
	ChainName       string `json:"chainName"`
	Requests        Count  `json:"requests"`
	PaymentAttempts Count  `json:"paymentAttempts"`
	PaymentSuccess  Count  `json:"paymentSuccess"`
	PaymentFailure  Count  `json:"paymentFailure"`
	// PaymentUnsettled counts paid answers that came back without a
	// settlement header (not in PaymentSuccess); ConfirmSpendFailure the
	// outcomes the proxy could not journal.
	PaymentUnsettled    Count `json:"paymentUnsettled"`
	ConfirmSpendFailure Count `json:"confirmSpendFailure"`
	// Gauges, current values.
	AuthRemaining       int64 `json:"authRemaining"`
	AuthSpent           int64 `json:"authSpent"`
	ActiveModelMappings int64 `json:"activeModelMappings"`
}

// Source yields the raw figures a Snapshot is built from.
type Source interface {
	// Fetch reads the metrics as of now for the window.
	Fetch(ctx context.Context, window Window, now time.Time) (*Data, error)
}

// OfferKey is the verifier's label set.
type OfferKey struct{ Namespace, Name, Chain string }

// SpendKey is the buyer's label set.
type SpendKey struct{ Upstream, RemoteModel, Chain string }

// Data is what a Source read: Prometheus sample values (float64, as
// Prometheus stores them) keyed by label set. Collect turns them into exact
// integers.
type Data struct {
	Kind           string
	URL            string
	Windowed       bool
	RecordingRules string
	RulesFound     []string
	Notes          []string
	Offers         map[OfferKey]*OfferData
	Spend          map[SpendKey]*SpendData
	// HasAtomic is true when the charged atomic-units counter exists at all.
	HasAtomic bool
}

// OfferData holds one offer/chain's raw values. Window fields are nil
// without history.
type OfferData struct {
	Requests       float64
	CallsLifetime  float64
	CallsWindow    *float64
	AtomicLifetime map[string]float64 // by asset
	AtomicWindow   map[string]float64
	VerifiedRate   *float64
	RateWindow     string
	LastSettlement float64 // unix seconds; 0 = never
	SparkStep      time.Duration
	SparkCalls     []float64
	SparkAtomic    map[string][]float64
}

// SpendData holds one buyer upstream's raw values.
type SpendData struct {
	Requests, Attempts, Success, Failure          float64
	RequestsW, AttemptsW, SuccessW, FailureW      *float64
	Unsettled, ConfirmFailure                     float64
	UnsettledW, ConfirmFailureW                   *float64
	AuthRemaining, AuthSpent, ActiveModelMappings float64
}

func newData(kind, url string) *Data {
	return &Data{Kind: kind, URL: url, Offers: map[OfferKey]*OfferData{}, Spend: map[SpendKey]*SpendData{}}
}

func (d *Data) offer(k OfferKey) *OfferData {
	o := d.Offers[k]
	if o == nil {
		o = &OfferData{AtomicLifetime: map[string]float64{}}
		d.Offers[k] = o
	}
	return o
}

func (d *Data) spend(k SpendKey) *SpendData {
	s := d.Spend[k]
	if s == nil {
		s = &SpendData{}
		d.Spend[k] = s
	}
	return s
}

// Collect reads src and builds the Snapshot as of now, resolving tokens in
// reg.
func Collect(ctx context.Context, src Source, window Window, now time.Time, reg *evm.Registry) (Snapshot, error) {
	if _, err := ParseWindow(string(window)); err != nil {
		return Snapshot{}, err
	}
	d, err := src.Fetch(ctx, window, now)
	if err != nil {
		return Snapshot{}, err
	}
	return Build(d, window, now, reg), nil
}

// Build turns raw data into a Snapshot: exact integers, token units from the
// registry, totals per chain, rows in a stable order.
func Build(d *Data, window Window, now time.Time, reg *evm.Registry) Snapshot {
	now = now.UTC().Truncate(time.Second)
	s := Snapshot{
		SchemaVersion: SchemaVersion,
		GeneratedAt:   now,
		Window:        window,
		Source: SourceInfo{Kind: d.Kind, URL: d.URL, Windowed: d.Windowed,
			RecordingRules: d.RecordingRules, RulesFound: d.RulesFound},
		Notes:  append([]string{}, d.Notes...),
		Offers: []OfferRow{},
		Totals: []ChainTotal{},
		Spend:  []SpendRow{},
	}
	if !d.Windowed {
		s.Notes = append(s.Notes, "lifetime figures only: a /metrics page has no history, so window figures are null (use --prometheus for "+string(window)+")")
	}
	var inexact, unknown []string
	for k, o := range d.Offers {
		row := OfferRow{
			Namespace: k.Namespace, Name: k.Name, Chain: k.Chain, ChainName: chainName(reg, k.Chain),
			Requests:           toInt(o.Requests),
			ChargedCalls:       Count{Window: toIntPtr(o.CallsWindow), Lifetime: toInt(o.CallsLifetime)},
			VerifiedRate:       roundRate(o.VerifiedRate),
			VerifiedRateWindow: o.RateWindow,
			Revenue:            []Amount{},
		}
		assets := make([]string, 0, len(o.AtomicLifetime))
		for a := range o.AtomicLifetime {
			assets = append(assets, a)
		}
		for a := range o.AtomicWindow {
			if _, ok := o.AtomicLifetime[a]; !ok {
				assets = append(assets, a)
			}
		}
		sort.Strings(assets)
		for _, a := range assets {
			life, ex1 := atomicFromFloat(o.AtomicLifetime[a])
			var win *big.Int
			ex2 := true
			if o.AtomicWindow != nil {
				win, ex2 = atomicFromFloat(o.AtomicWindow[a])
			}
			if !ex1 || !ex2 {
				inexact = append(inexact, row.Key())
			}
			amt := newAmount(reg, k.Chain, a, win, life)
			if !amt.Known {
				unknown = append(unknown, a)
			}
			row.Revenue = append(row.Revenue, amt)
		}
		if o.LastSettlement > 0 {
			t := time.Unix(int64(math.Round(o.LastSettlement)), 0).UTC()
			row.LastSettlement = &LastSettlement{Unix: t.Unix(), Time: t.Format(time.RFC3339), Ago: Ago(now, t)}
		}
		row.Sparkline = buildSpark(reg, k.Chain, o, row.Revenue)
		s.Offers = append(s.Offers, row)
	}
	sort.Slice(s.Offers, func(i, j int) bool {
		a, b := s.Offers[i], s.Offers[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.Chain < b.Chain
	})
	if len(d.Offers) > 0 && !d.HasAtomic {
		s.Notes = append(s.Notes, "no obol_x402_verifier_charged_atomic_units_total series: revenue is unknown (charged calls are shown; a price is never assumed)")
	}
	if len(unknown) > 0 {
		s.Notes = append(s.Notes, "unknown token(s) "+strings.Join(dedupe(unknown), ", ")+": amounts are in atomic units")
	}
	if len(inexact) > 0 {
		s.Notes = append(s.Notes, "revenue of "+strings.Join(dedupe(inexact), ", ")+" exceeds 2^53 atomic units: Prometheus stores floats, so the last digits are approximate")
	}
	s.Totals = Totals(s.Offers, d.Windowed)

	for k, sp := range d.Spend {
		s.Spend = append(s.Spend, SpendRow{
			Upstream: k.Upstream, RemoteModel: k.RemoteModel, Chain: k.Chain, ChainName: chainName(reg, k.Chain),
			Requests:            Count{Window: toIntPtr(sp.RequestsW), Lifetime: toInt(sp.Requests)},
			PaymentAttempts:     Count{Window: toIntPtr(sp.AttemptsW), Lifetime: toInt(sp.Attempts)},
			PaymentSuccess:      Count{Window: toIntPtr(sp.SuccessW), Lifetime: toInt(sp.Success)},
			PaymentFailure:      Count{Window: toIntPtr(sp.FailureW), Lifetime: toInt(sp.Failure)},
			PaymentUnsettled:    Count{Window: toIntPtr(sp.UnsettledW), Lifetime: toInt(sp.Unsettled)},
			ConfirmSpendFailure: Count{Window: toIntPtr(sp.ConfirmFailureW), Lifetime: toInt(sp.ConfirmFailure)},
			AuthRemaining:       toInt(sp.AuthRemaining),
			AuthSpent:           toInt(sp.AuthSpent),
			ActiveModelMappings: toInt(sp.ActiveModelMappings),
		})
	}
	sort.Slice(s.Spend, func(i, j int) bool {
		a, b := s.Spend[i], s.Spend[j]
		if a.Upstream != b.Upstream {
			return a.Upstream < b.Upstream
		}
		if a.RemoteModel != b.RemoteModel {
			return a.RemoteModel < b.RemoteModel
		}
		return a.Chain < b.Chain
	})
	return s
}

// Totals sums rows per chain and asset (exact, from the atomic strings).
func Totals(rows []OfferRow, windowed bool) []ChainTotal {
	type acc struct {
		tmpl      Amount
		win, life *big.Int
	}
	byChain := map[string]*ChainTotal{}
	amounts := map[string]map[string]*acc{}
	var order []string
	for _, r := range rows {
		t := byChain[r.Chain]
		if t == nil {
			t = &ChainTotal{Chain: r.Chain, ChainName: r.ChainName, Revenue: []Amount{}}
			if windowed {
				t.ChargedCalls.Window = new(int64)
			}
			byChain[r.Chain] = t
			amounts[r.Chain] = map[string]*acc{}
			order = append(order, r.Chain)
		}
		t.ChargedCalls.Lifetime += r.ChargedCalls.Lifetime
		if t.ChargedCalls.Window != nil && r.ChargedCalls.Window != nil {
			*t.ChargedCalls.Window += *r.ChargedCalls.Window
		}
		for _, a := range r.Revenue {
			x := amounts[r.Chain][a.Asset]
			if x == nil {
				x = &acc{tmpl: a, life: new(big.Int)}
				if windowed {
					x.win = new(big.Int)
				}
				amounts[r.Chain][a.Asset] = x
			}
			x.life.Add(x.life, parseAtomic(a.LifetimeAtomic))
			if x.win != nil && a.WindowAtomic != nil {
				x.win.Add(x.win, parseAtomic(*a.WindowAtomic))
			}
		}
	}
	sort.Strings(order)
	out := make([]ChainTotal, 0, len(order))
	for _, c := range order {
		t := byChain[c]
		for _, a := range sortedAssets(amounts[c]) {
			x := amounts[c][a]
			t.Revenue = append(t.Revenue, amountFrom(x.tmpl, x.win, x.life))
		}
		out = append(out, *t)
	}
	return out
}

func sortedAssets[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func parseAtomic(s string) *big.Int {
	v, ok := new(big.Int).SetString(s, 10)
	if !ok {
		return new(big.Int)
	}
	return v
}

// amountFrom is tmpl's asset with other figures.
func amountFrom(tmpl Amount, win, life *big.Int) Amount {
	a := Amount{Asset: tmpl.Asset, Symbol: tmpl.Symbol, Decimals: tmpl.Decimals, Known: tmpl.Known}
	a.LifetimeAtomic, a.Lifetime = life.String(), formatUnits(life, a)
	if win != nil {
		ws, wa := formatUnits(win, a), win.String()
		a.Window, a.WindowAtomic = &ws, &wa
	}
	return a
}

func newAmount(reg *evm.Registry, chain, asset string, win, life *big.Int) Amount {
	a := Amount{Asset: asset}
	if tok, ok := lookupToken(reg, chain, asset); ok {
		a.Symbol, a.Decimals, a.Known = tok.Symbol, int(tok.Decimals), true
	}
	return amountFrom(a, win, life)
}

func formatUnits(v *big.Int, a Amount) string {
	if !a.Known {
		return v.String()
	}
	return evm.FormatAmount(v, uint8(a.Decimals))
}

// lookupToken resolves an asset address on a chain; an empty or non-address
// label never falls back to the chain's default token.
func lookupToken(reg *evm.Registry, chain, asset string) (evm.Token, bool) {
	if reg == nil || !strings.HasPrefix(strings.ToLower(asset), "0x") {
		return evm.Token{}, false
	}
	t, err := reg.Token(chain, asset)
	if err != nil {
		return evm.Token{}, false
	}
	return t, true
}

func chainName(reg *evm.Registry, caip2 string) string {
	if reg == nil || caip2 == "" {
		return caip2
	}
	c, err := reg.Chain(caip2)
	if err != nil {
		return caip2
	}
	return c.Name
}

func buildSpark(reg *evm.Registry, chain string, o *OfferData, rev []Amount) *Sparkline {
	if o.SparkStep <= 0 {
		return nil
	}
	sp := &Sparkline{StepSeconds: int64(o.SparkStep / time.Second)}
	if len(rev) > 0 && o.SparkAtomic != nil {
		a := rev[0] // the row's first asset (rows rarely have more than one)
		pts := o.SparkAtomic[a.Asset]
		sp.Unit = a.Symbol
		if !a.Known {
			sp.Unit = "atomic:" + a.Asset
		}
		for _, p := range pts {
			v, _ := atomicFromFloat(p)
			sp.Points = append(sp.Points, formatUnits(v, a))
		}
	} else {
		sp.Unit = "calls"
		for _, p := range o.SparkCalls {
			sp.Points = append(sp.Points, big.NewInt(toInt(p)).String())
		}
	}
	if sp.Points == nil {
		sp.Points = []string{}
	}
	return sp
}

// atomicFromFloat rounds a Prometheus sample to the nearest integer. exact is
// false beyond 2^53, where float64 no longer holds every integer.
func atomicFromFloat(v float64) (*big.Int, bool) {
	if math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 {
		return new(big.Int), !math.IsNaN(v) && !math.IsInf(v, 0)
	}
	r := math.Round(v)
	out, _ := new(big.Float).SetFloat64(r).Int(nil)
	return out, r <= 1<<53
}

// roundRate rounds a ratio to 6 decimals: increase() ratios carry float
// noise (0.49999999999999994 for 3 of 6).
func roundRate(r *float64) *float64 {
	if r == nil || math.IsNaN(*r) || math.IsInf(*r, 0) {
		return nil
	}
	v := math.Round(*r*1e6) / 1e6
	return &v
}

func toInt(v float64) int64 {
	if math.IsNaN(v) || math.IsInf(v, 0) || v <= 0 {
		return 0
	}
	if v >= math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(math.Round(v))
}

func toIntPtr(v *float64) *int64 {
	if v == nil {
		return nil
	}
	n := toInt(*v)
	return &n
}

func dedupe(in []string) []string {
	sort.Strings(in)
	out := in[:0]
	for i, s := range in {
		if i == 0 || s != in[i-1] {
			out = append(out, s)
		}
	}
	return out
}

// Ago renders how long before now t was: "12s ago", "2m ago", "3h ago",
// "4d ago"; "just now" for the future or under a second.
func Ago(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
}
