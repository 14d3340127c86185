package earnings

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/devstack/stackfile"
	"github.com/obolstack/obol/internal/earnings"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/verifier"
)

func TestFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args    []string
		wantErr string
		check   func(*Options) bool
	}{
		{args: nil, check: func(o *Options) bool {
			return o.Window == "24h" && o.Refresh == 10*time.Second && !o.Watch && o.Timeout == 30*time.Second
		}},
		{args: []string{"--timeout", "5s"}, check: func(o *Options) bool { return o.Timeout == 5*time.Second }},
		{args: []string{"--timeout", "0s"}, wantErr: "must be positive"},
		{args: []string{"--prometheus", "http://p:9090", "--window", "7d", "--watch", "--refresh", "2s"}, check: func(o *Options) bool {
			return o.Prometheus == "http://p:9090" && o.Window == "7d" && o.Watch && o.Refresh == 2*time.Second
		}},
		{args: []string{"--metrics-url", "http://v:8080/metrics"}, check: func(o *Options) bool { return o.MetricsURL == "http://v:8080/metrics" }},
		{args: []string{"--window", "1h"}, wantErr: "use 24h, 7d or 30d"},
		{args: []string{"--prometheus", "x", "--metrics-url", "y"}, wantErr: "exclusive"},
		{args: []string{"--refresh", "0s"}, wantErr: "must be positive"},
	} {
		f, _ := cmdutil.NewTestFactory()
		var got *Options
		cmd := NewCmdEarnings(f, func(o *Options) error { got = o; return nil })
		cmd.SetArgs(tc.args)
		cmd.SetOut(&strings.Builder{})
		cmd.SetErr(&strings.Builder{})
		err := cmd.Execute()
		if tc.wantErr != "" {
			var fe *cmdutil.FlagError
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.As(err, &fe) {
				t.Errorf("%v: err = %v, want flag error %q", tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got == nil || !tc.check(got) {
			t.Errorf("%v: err %v opts %+v", tc.args, err, got)
		}
	}
}

// verifierMetrics serves verifier-shaped metrics from a real registry.
func verifierMetrics(t *testing.T) string {
	reg := prometheus.NewRegistry()
	offer := []string{verifier.LabelOfferNamespace, verifier.LabelOfferName, verifier.LabelChain}
	w := []string{"demo", "weather", "eip155:84532"}
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: verifier.MetricCharged, Help: "x"}, offer)
	a := prometheus.NewCounterVec(prometheus.CounterOpts{Name: verifier.MetricChargedAtomicUnits, Help: "x"}, append(offer, verifier.LabelAsset))
	reg.MustRegister(c, a)
	c.WithLabelValues(w...).Add(3)
	a.WithLabelValues(append(w, "0x036CbD53842c5426634e7929541eC2318f3dCF7e")...).Add(3000)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	return srv.URL + "/metrics"
}

func testOpts(t *testing.T) (*Options, *bytes.Buffer) {
	t.Helper()
	ios, _, out, _ := cmdutil.Test()
	return &Options{IO: ios, Output: "json", Window: "24h", Refresh: time.Second,
		Now: func() time.Time { return time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC) }}, out
}

func TestRunMetricsURLJSON(t *testing.T) {
	t.Parallel()
	opts, out := testOpts(t)
	opts.MetricsURL = verifierMetrics(t)
	if err := earningsRun(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	var s earnings.Snapshot
	if err := json.Unmarshal([]byte(out.String()), &s); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if s.Source.Kind != "metrics" || len(s.Offers) != 1 || s.Offers[0].ChargedCalls.Lifetime != 3 || s.Offers[0].Revenue[0].Lifetime != "0.003" || s.Offers[0].Revenue[0].Symbol != "USDC" {
		t.Fatalf("snapshot = %s", out)
	}
}

func TestRunMetricsURLPlainTableWhenNotATerminal(t *testing.T) {
	t.Parallel()
	opts, out := testOpts(t)
	opts.Output = "table"
	opts.MetricsURL = verifierMetrics(t)
	opts.RunTUI = func(context.Context, *Options, earnings.Model) error {
		t.Fatal("TUI started although stdout is not a terminal")
		return nil
	}
	if err := earningsRun(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"demo/weather", "0.003 USDC", "lifetime figures only", "(lifetime only)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out.String(), "\x1b[") {
		t.Errorf("plain table has escape sequences:\n%q", out)
	}
}

func TestRunTerminalStartsTUI(t *testing.T) {
	t.Parallel()
	opts, _ := testOpts(t)
	opts.Output = "table"
	opts.IO.SetStdoutTTY(true)
	opts.MetricsURL = verifierMetrics(t)
	opts.Watch, opts.Refresh = true, 3*time.Second
	var started bool
	opts.RunTUI = func(ctx context.Context, o *Options, m earnings.Model) error {
		started = true
		return nil
	}
	if err := earningsRun(context.Background(), opts); err != nil || !started {
		t.Fatalf("err %v started %v", err, started)
	}
}

func TestRunNoSourceSaysWhatToDo(t *testing.T) {
	t.Parallel()
	opts, _ := testOpts(t)
	// A kubeconfig that does not exist: no cluster.
	opts.Kubeconfig = filepath.Join(t.TempDir(), "missing-kubeconfig")
	err := earningsRun(context.Background(), opts)
	if err == nil || !strings.Contains(err.Error(), "pass --prometheus URL or --metrics-url URL") {
		t.Fatalf("err = %v", err)
	}
	// A kubeconfig whose server refuses connections.
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
users: [{name: u, user: {}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	opts.Kubeconfig = kc
	err = earningsRun(context.Background(), opts)
	if err == nil || !strings.Contains(err.Error(), "pass --prometheus URL or --metrics-url URL") {
		t.Fatalf("err = %v", err)
	}
}

// A Prometheus that accepts the connection and never answers: -o json gives
// up after --timeout with an error saying so, instead of hanging.
func TestRunPrometheusThatNeverAnswersTimesOut(t *testing.T) {
	opts, _ := testOpts(t)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	opts.Prometheus = srv.URL
	opts.Timeout = 300 * time.Millisecond
	done := make(chan error, 1)
	go func() { done <- earningsRun(context.Background(), opts) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "no answer within --timeout 300ms") {
			t.Fatalf("err = %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("obol earnings -o json still waiting 20s after a 300ms --timeout")
	}
}

func TestRunUnreachablePrometheus(t *testing.T) {
	t.Parallel()
	opts, _ := testOpts(t)
	srv := httptest.NewServer(nil)
	opts.Prometheus = srv.URL
	srv.Close()
	err := earningsRun(context.Background(), opts)
	if err == nil || !strings.Contains(err.Error(), "pass --prometheus URL") {
		t.Fatalf("err = %v", err)
	}
}

// Against a running `obol dev`, the dev token from its stack file gives the
// revenue in token units.
func TestRunMetricsURLDevToken(t *testing.T) {
	token := common.HexToAddress("0x5FbDB2315678afecb367f032d93F642f64180aa3")
	path := filepath.Join(t.TempDir(), "stack.json")
	t.Setenv(stackfile.EnvPath, path)
	if err := stackfile.Write(path, stackfile.Info{
		Chain: evm.Chain{Name: evm.DevChainName, CAIP2: "eip155:1337", ChainID: 1337},
		Token: evm.Token{Address: token, Symbol: "OUSD", Decimals: 6, EIP712Name: "ObolUSD", EIP712Version: "1"},
	}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	a := prometheus.NewCounterVec(prometheus.CounterOpts{Name: verifier.MetricChargedAtomicUnits, Help: "x"},
		[]string{verifier.LabelOfferNamespace, verifier.LabelOfferName, verifier.LabelChain, verifier.LabelAsset})
	reg.MustRegister(a)
	a.WithLabelValues("dev", "weather", "eip155:1337", token.Hex()).Add(5000)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()

	opts, out := testOpts(t)
	opts.MetricsURL = srv.URL + "/metrics"
	if err := earningsRun(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	var s earnings.Snapshot
	if err := json.Unmarshal(out.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	r := s.Offers[0].Revenue[0]
	if !r.Known || r.Symbol != "OUSD" || r.Lifetime != "0.005" || s.Offers[0].ChainName != evm.DevChainName {
		t.Fatalf("dev revenue = %+v chain %s", r, s.Offers[0].ChainName)
	}
}
