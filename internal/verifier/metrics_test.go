package verifier

import (
	"context"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/obolstack/obol/internal/evm"
)

// scrape reads /metrics through the real handler and returns the families.
func scrape(t *testing.T, h http.Handler) map[string][]*model.Sample {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if w.Code != 200 {
		t.Fatalf("/metrics: %d", w.Code)
	}
	dec := expfmt.SampleDecoder{Dec: expfmt.NewDecoder(w.Body, expfmt.NewFormat(expfmt.TypeTextPlain)), Opts: &expfmt.DecodeOptions{Timestamp: model.Now()}}
	out := map[string][]*model.Sample{}
	for {
		var v model.Vector
		if err := dec.Decode(&v); err != nil {
			if err == io.EOF {
				break
			}
			t.Fatal(err)
		}
		for _, s := range v {
			name := string(s.Metric[model.MetricNameLabel])
			out[name] = append(out[name], s)
		}
	}
	return out
}

var offerSeries = []string{
	"obol_x402_verifier_requests_total",
	"obol_x402_verifier_payment_required_total",
	"obol_x402_verifier_payment_verified_total",
	"obol_x402_verifier_payment_failed_total",
	"obol_x402_verifier_charged_requests_total",
	"obol_x402_verifier_last_payment_success_seconds",
	"obol_x402_verifier_charged_atomic_units_total",
	"obol_x402_verifier_payment_failures_total",
}

func TestMetricsChainLabelAndReloadPruning(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	doc := proxyDoc(up.URL)
	g := newGate(t, doc)
	b := newBuyer(t)
	// Traffic on both paid offers: a charge, a 402, a failure each.
	for _, path := range []string{"/weather/x", "/joke"} {
		name, value := b.pay(t, g.evm, 2, challenge(t, g.h, path))
		r := httptest.NewRequest(http.MethodGet, path, nil)
		r.Header.Set(name, value)
		if w := g.do(r); w.Code != 200 {
			t.Fatalf("%s: %d", path, w.Code)
		}
		g.do(r.Clone(context.Background())) // reused → failure
	}
	fams := scrape(t, g.h)
	for _, name := range offerSeries {
		if len(fams[name]) == 0 {
			t.Fatalf("no %s series", name)
		}
		for _, s := range fams[name] {
			if s.Metric[LabelChain] != "eip155:84532" {
				t.Fatalf("%s carries chain=%q; routes inheriting the global chain must carry its CAIP-2 id", s.Metric, s.Metric[LabelChain])
			}
		}
	}
	for _, name := range []string{"obol_x402_verifier_facilitator_request_duration_seconds_count", "obol_x402_verifier_config_reloads_total"} {
		if len(fams[name]) == 0 {
			t.Fatalf("no %s", name)
		}
	}
	weatherCharged := counter(t, g, "charged", "weather")

	// Reload without the jokes offer: all its series go, weather's stay.
	cut := strings.Replace(doc, "  - pattern: /joke\n    price: \"0.01\"\n    offerName: jokes\n", "", 1)
	if cut == doc {
		t.Fatal("test doc did not change")
	}
	if err := g.srv.ApplyConfig(compileYAML(t, g.evm, cut)); err != nil {
		t.Fatal(err)
	}
	fams = scrape(t, g.h)
	for _, name := range offerSeries {
		for _, s := range fams[name] {
			if s.Metric[LabelOfferName] == "jokes" {
				t.Fatalf("series of the removed offer survived the reload: %s", s.Metric)
			}
		}
	}
	if got := counter(t, g, "charged", "weather"); got != weatherCharged || got != 1 {
		t.Fatalf("kept offer lost its value: %v", got)
	}
	// A request for the removed offer does not bring its series back.
	if w := g.do(httptest.NewRequest(http.MethodGet, "/joke", nil)); w.Code != 404 {
		t.Fatalf("now unmatched /joke is denied: %d", w.Code)
	}
	for _, s := range scrape(t, g.h)["obol_x402_verifier_requests_total"] {
		if s.Metric[LabelOfferName] == "jokes" {
			t.Fatal("removed offer's series came back")
		}
	}

	// Moving weather to another chain drops its old-chain series.
	moved := strings.Replace(cut, "    stripPrefix: true\n", "    stripPrefix: true\n    network: base\n", 1)
	if err := g.srv.ApplyConfig(compileYAML(t, g.evm, moved)); err != nil {
		t.Fatal(err)
	}
	for _, s := range scrape(t, g.h)["obol_x402_verifier_charged_requests_total"] {
		if s.Metric[LabelOfferName] == "weather" && s.Metric[LabelChain] != "eip155:8453" {
			t.Fatalf("old-chain series kept after the offer moved: %s", s.Metric)
		}
	}
	if got := testutil.ToFloat64(g.metrics.ConfigReloads.WithLabelValues("success")); got != 3 {
		t.Fatalf("reloads success = %v", got)
	}
}

func TestChargedAtomicUnitsExact(t *testing.T) {
	t.Parallel()
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	reg := evm.NewRegistry()
	cfg := compileYAML(t, reg, validHead+"routes:\n  - {pattern: /a, price: \"9007199.254740\"}\n")
	m.serve(cfg.offers())
	r := cfg.Routes[0]
	m.charged(r, r.Amount, time.Unix(1700000000, 500_000_000))
	m.charged(r, big.NewInt(1), time.Unix(1700000001, 0))
	lv := offerLabelValues(r.Offer, r.Chain.CAIP2)
	if got := testutil.ToFloat64(m.ChargedAtomicUnits.Series(append(lv, testUSDC)...)); got != 9007199254741 {
		t.Fatalf("atomic units %v", got)
	}
	if got := testutil.ToFloat64(m.LastPaymentSuccess.Series(lv...)); got != 1700000001 {
		t.Fatalf("gauge %v", got)
	}
	if reasonLabel("something_new") != ReasonOther || reasonLabel("insufficient_funds") != "insufficient_funds" {
		t.Fatal("reason mapping")
	}
}

func TestReadyzAndHealthz(t *testing.T) {
	t.Parallel()
	srv, err := New(Options{NewFacilitator: func(string) (Facilitator, error) { return &stubFacilitator{}, nil }, Registry: evm.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	get := func(p string) int {
		w := httptest.NewRecorder()
		srv.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, p, nil))
		return w.Code
	}
	if get("/healthz") != 200 || get("/readyz") != 503 || get("/anything") != 503 {
		t.Fatal("before config: want healthz 200, readyz 503, gate 503")
	}
	if err := srv.ApplyConfig(compileYAML(t, evm.NewRegistry(), validHead+"routes:\n  - {pattern: /a, price: \"1\"}\n")); err != nil {
		t.Fatal(err)
	}
	if get("/readyz") != 200 {
		t.Fatal("after config: readyz")
	}
}

// logRecorder is a slog handler that passes each message on.
type logRecorder struct{ msgs chan string }

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	select {
	case l.msgs <- r.Message:
	default:
	}
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

// drain forgets what was logged so far.
func (l *logRecorder) drain() {
	for {
		select {
		case <-l.msgs:
		default:
			return
		}
	}
}

// waitFor is closed when msg is logged.
func (l *logRecorder) waitFor(msg string) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		for m := range l.msgs {
			if m == msg {
				close(done)
				return
			}
		}
	}()
	return done
}

type sinkRecorder struct {
	*Server
	applied chan *Config
	failed  chan error
}

func (s *sinkRecorder) ApplyConfig(cfg *Config) error {
	err := s.Server.ApplyConfig(cfg)
	s.applied <- cfg
	return err
}

func (s *sinkRecorder) ReportReloadFailure(err error) {
	s.Server.ReportReloadFailure(err)
	s.failed <- err
}

func TestFileSourceWatch(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "pricing.yaml")
	doc := proxyDoc(up.URL)
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	g := newGate(t, doc)
	sink := &sinkRecorder{Server: g.srv, applied: make(chan *Config, 10), failed: make(chan error, 10)}
	env := Environment{Getenv: func(string) string { return "s3cret" }}
	logs := &logRecorder{msgs: make(chan string, 100)}
	src := &FileSource{Path: path, Registry: g.evm, Env: env, Watch: true, Debounce: 20 * time.Millisecond, Logger: slog.New(logs)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := src.Start(ctx, sink); err != nil {
		t.Fatal(err)
	}
	<-sink.applied
	wait := func(what string) (*Config, error) {
		t.Helper()
		select {
		case c := <-sink.applied:
			return c, nil
		case err := <-sink.failed:
			return nil, err
		case <-time.After(5 * time.Second):
			t.Fatalf("no reload after %s", what)
		}
		return nil, nil
	}

	// An editor's rename-replace.
	tmp := filepath.Join(dir, ".pricing.yaml.swp")
	repriced := strings.Replace(doc, `price: "0.01"`, `price: "0.02"`, 1)
	if err := os.WriteFile(tmp, []byte(repriced), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	cfg, err := wait("rename-replace")
	if err != nil || cfg.Routes[2].Amount.String() != "20000" {
		t.Fatalf("reload: %v", err)
	}

	// A broken file keeps the last good config and counts a failure.
	if err := os.WriteFile(path, []byte(doc+"  - pattern: /x\n    price: 0.0000001\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = wait("broken write")
	if err == nil || !strings.Contains(err.Error(), "pricing.yaml:") || !strings.Contains(err.Error(), "routes[3].price") {
		t.Fatalf("want a file:line error naming routes[3].price, got %v", err)
	}
	if g.srv.Config() != cfg {
		t.Fatal("broken file replaced the config in force")
	}
	if got := testutil.ToFloat64(g.metrics.ConfigReloads.WithLabelValues("failure")); got != 1 {
		t.Fatalf("failure reloads = %v", got)
	}
	if w := g.do(httptest.NewRequest(http.MethodGet, "/readyz", nil)); w.Code != 200 {
		t.Fatal("not ready after a failed reload")
	}

	// A log written next to the broken file, and the same broken content
	// written again, do not retry it (they made it reload in a loop).
	// The source says when it looked and found nothing new: wait for that,
	// not for time to pass.
	logs.drain()
	logFile := filepath.Join(dir, "verifier.log")
	for i := 0; i < 20; i++ {
		if err := os.WriteFile(logFile, []byte(strings.Repeat("log line\n", i+1)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path, []byte(doc+"  - pattern: /x\n    price: 0.0000001\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	select {
	case <-logs.waitFor(msgPricingUnchanged):
	case err := <-sink.failed:
		t.Fatalf("the same broken file was loaded again: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the rewrite of the broken file was never looked at")
	}
	if got := testutil.ToFloat64(g.metrics.ConfigReloads.WithLabelValues("failure")); got != 1 {
		t.Fatalf("failure reloads after unrelated writes = %v, want still 1", got)
	}
	// Fixing the file reloads it.
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := wait("fixed file"); err != nil {
		t.Fatalf("fixed file: %v", err)
	}
}

// A ConfigMap volume updates by swapping the ..data symlink; the file the
// verifier reads is itself a symlink through it.
func TestFileSourceWatchConfigMapSymlinkSwap(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	dir := t.TempDir()
	doc := proxyDoc(up.URL)
	write := func(ts, content string) {
		if err := os.Mkdir(filepath.Join(dir, ts), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ts, "pricing.yaml"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("..2026_01", doc)
	if err := os.Symlink("..2026_01", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "pricing.yaml")
	if err := os.Symlink("..data/pricing.yaml", path); err != nil {
		t.Fatal(err)
	}
	g := newGate(t, doc)
	sink := &sinkRecorder{Server: g.srv, applied: make(chan *Config, 10), failed: make(chan error, 10)}
	src := &FileSource{Path: path, Registry: g.evm, Env: Environment{Getenv: func(string) string { return "s3cret" }}, Watch: true, Debounce: 20 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := src.Start(ctx, sink); err != nil {
		t.Fatal(err)
	}
	<-sink.applied

	write("..2026_02", strings.Replace(doc, `price: "0.01"`, `price: "0.03"`, 1))
	if err := os.Symlink("..2026_02", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	select {
	case cfg := <-sink.applied:
		if cfg.Routes[2].Amount.String() != "30000" {
			t.Fatalf("reloaded price %s", cfg.Routes[2].Amount)
		}
	case err := <-sink.failed:
		t.Fatal(err)
	case <-time.After(5 * time.Second):
		t.Fatal("symlink swap not seen")
	}
}

// Paid traffic while the config is reloaded over and over: no race, no
// double service, every charge accounted to a served offer.
func TestConcurrentTrafficDuringReloads(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	doc := proxyDoc(up.URL)
	g := newGate(t, doc)
	req := challenge(t, g.h, "/joke")
	b := newBuyer(t)
	const n = 40
	names, values := make([]string, n), make([]string, n)
	for i := range names {
		names[i], values[i] = b.pay(t, g.evm, 2, req)
	}
	repriced := compileYAML(t, g.evm, strings.Replace(doc, "    description: Weather now\n", "    description: Weather later\n", 1))
	original := compileYAML(t, g.evm, doc)
	stop := make(chan struct{})
	reloads := make(chan int)
	go func() {
		count := 0
		for {
			select {
			case <-stop:
				reloads <- count
				return
			default:
			}
			cfg := original
			if count%2 == 1 {
				cfg = repriced
			}
			_ = g.srv.ApplyConfig(cfg)
			count++
		}
	}()
	codes := make(chan int, 2*n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		for rep := 0; rep < 2; rep++ { // each authorization sent twice at once
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				r := httptest.NewRequest(http.MethodGet, "/joke", nil)
				r.Header.Set(names[i], values[i])
				codes <- g.do(r).Code
			}(i)
		}
	}
	wg.Wait()
	close(stop)
	<-reloads
	close(codes)
	ok := 0
	for c := range codes {
		if c == 200 {
			ok++
		} else if c != 402 {
			t.Fatalf("unexpected status %d", c)
		}
	}
	if ok != n || up.hits.Load() != n {
		t.Fatalf("%d answers served, upstream hit %d times, want %d each", ok, up.hits.Load(), n)
	}
	if got := counter(t, g, "charged", "jokes"); got != n {
		t.Fatalf("charged %v, want %d", got, n)
	}
}
