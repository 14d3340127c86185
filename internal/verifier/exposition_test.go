package verifier

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/x402"
)

var updateExposition = flag.Bool("update-exposition", false, "rewrite testdata/exposition.golden from the handler's output")

// expositionDoc prices offers on two chains, in two namespaces, so that
// every label and every sort key of the per-offer families varies.
func expositionDoc(upstreamURL string) string {
	return proxyDoc(upstreamURL) + `  - pattern: /mainnet/weather/*
    price: "0.002"
    network: base
    offerName: weather-main
  - pattern: /b/alpha
    price: "0.003"
    offerNamespace: team-b
    offerName: alpha
`
}

// expositionScenario drives traffic that creates every kind of per-offer
// series (402s, a charge, failures by three reasons), then a reload that
// drops an offer, and returns the /metrics text after each phase.
func expositionScenario(t *testing.T, accept string) [2][]byte {
	t.Helper()
	up := newUpstream(t)
	doc := expositionDoc(up.URL)
	g := &testGate{fac: &stubFacilitator{}, reg: prometheus.NewRegistry(), evm: evm.NewRegistry()}
	m, err := NewMetrics(g.reg)
	if err != nil {
		t.Fatal(err)
	}
	g.metrics = m
	g.srv, err = New(Options{
		NewFacilitator: func(string) (Facilitator, error) { return g.fac, nil },
		Registry:       g.evm, Metrics: m, Gatherer: g.reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.srv.ApplyConfig(compileYAML(t, g.evm, doc)); err != nil {
		t.Fatal(err)
	}
	g.h = g.srv.Handler()

	for _, p := range []string{"/weather/a", "/weather/b", "/joke", "/mainnet/weather/x", "/b/alpha"} {
		if w := g.do(httptest.NewRequest(http.MethodGet, p, nil)); w.Code != http.StatusPaymentRequired {
			t.Fatalf("%s: %d", p, w.Code)
		}
	}
	b := newBuyer(t)
	name, value := b.pay(t, g.evm, 2, challenge(t, g.h, "/weather/x"))
	r := httptest.NewRequest(http.MethodGet, "/weather/x", nil)
	r.Header.Set(name, value)
	if w := g.do(r); w.Code != 200 {
		t.Fatalf("paid: %d %s", w.Code, w.Body)
	}
	g.do(r.Clone(context.Background())) // reused: authorization_reused
	bad := httptest.NewRequest(http.MethodGet, "/joke", nil)
	bad.Header.Set("PAYMENT-SIGNATURE", "garbage")
	g.do(bad) // malformed_payment
	g.fac.verify = func(x402.VerifyRequest) (*x402.VerifyResponse, error) {
		return &x402.VerifyResponse{IsValid: false, InvalidReason: "insufficient_funds"}, nil
	}
	name, value = b.pay(t, g.evm, 2, challenge(t, g.h, "/b/alpha"))
	r = httptest.NewRequest(http.MethodGet, "/b/alpha", nil)
	r.Header.Set(name, value)
	if w := g.do(r); w.Code != http.StatusPaymentRequired {
		t.Fatalf("refused payment: %d %s", w.Code, w.Body)
	}

	var out [2][]byte
	out[0] = scrapeRaw(t, g.h, accept)
	cut := strings.Replace(doc, "  - pattern: /joke\n    price: \"0.01\"\n    offerName: jokes\n", "", 1)
	if err := g.srv.ApplyConfig(compileYAML(t, g.evm, cut)); err != nil {
		t.Fatal(err)
	}
	out[1] = scrapeRaw(t, g.h, accept)
	return out
}

func scrapeRaw(t *testing.T, h http.Handler, accept string) []byte {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	if accept != "" {
		r.Header.Set("Accept", accept)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 200 {
		t.Fatalf("/metrics: %d %s", w.Code, w.Body)
	}
	return append([]byte(w.Header().Get("Content-Type")+"\n"), w.Body.Bytes()...)
}

// parseExposition decodes a scrape (its first line is the Content-Type)
// into families, with the facilitator latency histogram reduced to its
// sample count (durations are measured, not scripted).
func parseExposition(t *testing.T, raw []byte) map[string]*dto.MetricFamily {
	t.Helper()
	ct, body, _ := bytes.Cut(raw, []byte("\n"))
	dec := expfmt.NewDecoder(bytes.NewReader(body), expfmt.ResponseFormat(http.Header{"Content-Type": {string(ct)}}))
	out := map[string]*dto.MetricFamily{}
	for {
		mf := &dto.MetricFamily{}
		if err := dec.Decode(mf); err != nil {
			if err == io.EOF {
				break
			}
			t.Fatalf("decode %s: %v", ct, err)
		}
		if _, dup := out[mf.GetName()]; dup {
			t.Fatalf("family %s appears twice", mf.GetName())
		}
		if mf.GetName() == MetricFacilitatorDuration {
			for _, m := range mf.Metric {
				m.Histogram = &dto.Histogram{SampleCount: m.Histogram.SampleCount}
			}
		}
		out[mf.GetName()] = mf
	}
	return out
}

// describeFamilies renders families as sorted lines: HELP, TYPE and one
// line per sample, so two expositions compare line by line.
func describeFamilies(fams map[string]*dto.MetricFamily) []string {
	var lines []string
	for name, mf := range fams {
		lines = append(lines, fmt.Sprintf("%s HELP %q", name, mf.GetHelp()), fmt.Sprintf("%s TYPE %s", name, mf.GetType()))
		for _, m := range mf.Metric {
			var lbl []string
			for _, lp := range m.Label {
				lbl = append(lbl, fmt.Sprintf("%s=%q", lp.GetName(), lp.GetValue()))
			}
			var v string
			switch {
			case m.Counter != nil:
				v = fmt.Sprint(m.Counter.GetValue())
			case name == MetricLastPaymentSuccess && math.Abs(m.Gauge.GetValue()-float64(time.Now().Unix())) < 3600:
				v = "(within the last hour)" // the time of the scripted payment
			case m.Gauge != nil:
				v = fmt.Sprint(m.Gauge.GetValue())
			case m.Histogram != nil:
				v = fmt.Sprintf("count=%d", m.Histogram.GetSampleCount())
			default:
				v = "?"
			}
			if math.IsNaN(m.GetCounter().GetValue()) {
				v = "NaN"
			}
			lines = append(lines, fmt.Sprintf("%s{%s} %s", name, strings.Join(lbl, ","), v))
		}
	}
	sort.Strings(lines)
	return lines
}

// measured matches the values of the facilitator latency histogram's
// buckets and sum in the text exposition, which the golden file blanks;
// lastPaid matches the last payment time, which it writes as NOW.
var (
	measured = regexp.MustCompile(`(?m)^(` + MetricFacilitatorDuration + `_(?:bucket\{[^}]*\}|sum)) .*$`)
	lastPaid = regexp.MustCompile(`(?m)^(` + MetricLastPaymentSuccess + `\{[^}]*\}) .*$`)
)

// The exposition of the per-offer families is the one client_golang's
// vectors produced (testdata/exposition.golden was written by the
// CounterVec implementation): same names, HELP, TYPE, labels and values,
// before and after a reload that drops an offer, in the text format and in
// the protobuf format a scraper may negotiate.
func TestExpositionMatchesGolden(t *testing.T) {
	t.Parallel()
	golden := filepath.Join("testdata", "exposition.golden")
	text := expositionScenario(t, "")
	if *updateExposition {
		var buf bytes.Buffer
		for i, phase := range text {
			_, body, _ := bytes.Cut(phase, []byte("\n"))
			fmt.Fprintf(&buf, "# phase %d\n%s", i, lastPaid.ReplaceAll(measured.ReplaceAll(body, []byte("$1 0")), []byte("$1 NOW")))
		}
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	raw = bytes.ReplaceAll(raw, []byte(" NOW\n"), fmt.Appendf(nil, " %d\n", time.Now().Unix()))
	parts := regexp.MustCompile(`(?m)^# phase \d\n`).Split(string(raw), -1)[1:]
	if len(parts) != 2 {
		t.Fatalf("golden file has %d phases, want 2", len(parts))
	}
	textCT := "text/plain; version=0.0.4; charset=utf-8\n"
	protobuf := expositionScenario(t, "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3")
	openMetrics := expositionScenario(t, "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
	for i := range parts {
		want := describeFamilies(parseExposition(t, []byte(textCT+parts[i])))
		for _, got := range []struct {
			name string
			raw  []byte
		}{{"text", text[i]}, {"protobuf", protobuf[i]}, {"prometheus-2.42-accept", openMetrics[i]}} {
			have := describeFamilies(parseExposition(t, got.raw))
			if d := diffLines(want, have); d != "" {
				t.Errorf("phase %d, %s exposition differs from the golden one (-golden +served):\n%s", i, got.name, d)
			}
		}
	}
	if ct, _, _ := bytes.Cut(protobuf[0], []byte("\n")); !strings.HasPrefix(string(ct), "application/vnd.google.protobuf") {
		t.Errorf("protobuf was asked for, served %q", ct)
	}
	for _, raw := range [][]byte{text[0], openMetrics[0]} {
		if ct, _, _ := bytes.Cut(raw, []byte("\n")); !strings.HasPrefix(string(ct), "text/plain; version=0.0.4") {
			t.Errorf("text served as %q", ct)
		}
	}
}

func diffLines(want, have []string) string {
	w, h := map[string]bool{}, map[string]bool{}
	for _, l := range want {
		w[l] = true
	}
	for _, l := range have {
		h[l] = true
	}
	var d []string
	for _, l := range want {
		if !h[l] {
			d = append(d, "- "+l)
		}
	}
	for _, l := range have {
		if !w[l] {
			d = append(d, "+ "+l)
		}
	}
	return strings.Join(d, "\n")
}
