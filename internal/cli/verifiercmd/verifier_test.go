package verifiercmd

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/devstack/stackfile"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/verifier"
	"github.com/obolstack/obol/internal/x402"
)

func parse(t *testing.T, args ...string) (*ServeOptions, error) {
	t.Helper()
	f, _ := cmdutil.NewTestFactory()
	var got *ServeOptions
	cmd := NewCmdServe(f, func(o *ServeOptions) error { got = o; return nil })
	cmd.SetArgs(args)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	err := cmd.Execute()
	return got, err
}

func TestServeFlags(t *testing.T) {
	t.Setenv(stackfile.EnvPath, "/nowhere/stack.json")
	o, err := parse(t, "--config", "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if o.ConfigPath != "p.yaml" || o.Listen != ":8080" || o.RouteSource != SourceFile || o.Watch || o.DevStack != "/nowhere/stack.json" || o.DevStackSet {
		t.Fatalf("defaults: %+v", o)
	}
	o, err = parse(t, "-c", "p.yaml", "--listen", "127.0.0.1:9", "--route-source", "kube", "--watch")
	if err != nil || o.Listen != "127.0.0.1:9" || o.RouteSource != SourceKube || !o.Watch {
		t.Fatalf("flags: %v %+v", err, o)
	}
	var fe *cmdutil.FlagError
	if _, err := parse(t); !errors.As(err, &fe) || !strings.Contains(err.Error(), "--config is required") {
		t.Fatalf("missing --config: %v", err)
	}
	if _, err := parse(t, "-c", "p.yaml", "--route-source", "etcd"); !errors.As(err, &fe) {
		t.Fatalf("bad --route-source: %v", err)
	}
}

type okFacilitator struct{}

func (okFacilitator) Verify(context.Context, x402.VerifyRequest) (*x402.VerifyResponse, error) {
	return &x402.VerifyResponse{IsValid: true}, nil
}

func (okFacilitator) Settle(context.Context, x402.SettleRequest) (*x402.SettleResponse, error) {
	return &x402.SettleResponse{Success: true, Transaction: "0x01"}, nil
}

const pricing = `payTo: 0x209693Bc6afc0C5328bA36FaF03C514EF312287C
chain: base-sepolia
facilitatorURL: http://127.0.0.1:4021
upstream: http://127.0.0.1:1
routes:
  - pattern: /weather/*
    price: "0.001"
`

func testOptions(t *testing.T, path string) *ServeOptions {
	ios, _, _, _ := cmdutil.Test()
	return &ServeOptions{
		IO: ios, Logger: func() *slog.Logger { return slog.New(slog.DiscardHandler) },
		ConfigPath: path, Listen: "127.0.0.1:0", RouteSource: SourceFile, ShutdownTimeout: 5 * time.Second,
		Registry:       evm.NewRegistry(),
		NewFacilitator: func(string) (verifier.Facilitator, error) { return okFacilitator{}, nil },
	}
}

func TestServeRunEndpointsAndShutdown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pricing.yaml")
	if err := os.WriteFile(path, []byte(pricing), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := testOptions(t, path)
	started := make(chan string, 1)
	stop := make(chan struct{})
	opts.Started, opts.Stop = started, stop
	done := make(chan error, 1)
	go func() { done <- serveRun(context.Background(), opts) }()
	var addr string
	select {
	case addr = <-started:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(10 * time.Second):
		t.Fatal("not started")
	}
	get := func(p string) (*http.Response, string) {
		res, err := http.Get("http://" + addr + p)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, string(b)
	}
	if res, _ := get("/healthz"); res.StatusCode != 200 {
		t.Fatalf("healthz %d", res.StatusCode)
	}
	if res, _ := get("/readyz"); res.StatusCode != 200 {
		t.Fatalf("readyz %d", res.StatusCode)
	}
	res, body := get("/weather/today")
	if res.StatusCode != 402 || res.Header.Get(x402.HeaderPaymentRequired) == "" || !strings.Contains(body, `"amount":"1000"`) {
		t.Fatalf("402: %d %s", res.StatusCode, body)
	}
	_, metrics := get("/metrics")
	for _, want := range []string{
		`obol_x402_verifier_payment_required_total{chain="eip155:84532",offer_name="weather",offer_namespace="default"} 1`,
		`obol_x402_verifier_config_reloads_total{result="success"} 1`,
		"go_goroutines",
	} {
		if !strings.Contains(metrics, want) {
			t.Fatalf("/metrics lacks %q", want)
		}
	}
	close(stop)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no graceful shutdown")
	}
}

func TestServeRunRefusesBrokenConfigAndKube(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pricing.yaml")
	if err := os.WriteFile(path, []byte(strings.Replace(pricing, `"0.001"`, `"0.0000001"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	err := serveRun(context.Background(), testOptions(t, path))
	if err == nil || !strings.Contains(err.Error(), path+":7:12: routes[0].price") {
		t.Fatalf("want file:line:field, got %v", err)
	}
	good := filepath.Join(t.TempDir(), "pricing.yaml")
	if err := os.WriteFile(good, []byte(pricing), 0o600); err != nil {
		t.Fatal(err)
	}
	// The kube source takes the globals from the file and the routes from
	// ServiceOffers; without a reachable cluster it says so and exits.
	opts := testOptions(t, good)
	opts.RouteSource = SourceKube
	opts.Kubeconfig = filepath.Join(t.TempDir(), "no-kubeconfig")
	if err := serveRun(context.Background(), opts); err == nil || !strings.Contains(err.Error(), "kube route source") {
		t.Fatalf("kube: %v", err)
	}
}

func TestDevStackRegistersToken(t *testing.T) {
	reg := evm.NewRegistry()
	dev, _ := reg.Chain("obol-dev")
	tok := evm.Token{Address: [20]byte{1, 2, 3}, Symbol: "USDC", Decimals: 6, EIP712Name: "USDC", EIP712Version: "2"}
	path := filepath.Join(t.TempDir(), "stack.json")
	if err := stackfile.Write(path, stackfile.Info{PID: os.Getpid(), StartedAt: time.Now(), Chain: dev, Token: tok}); err != nil {
		t.Fatal(err)
	}
	opts := &ServeOptions{DevStack: path}
	if err := registerDevStack(reg, opts, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	got, err := reg.Token("obol-dev", "")
	if err != nil || got.Address != tok.Address {
		t.Fatalf("dev token not registered: %v %+v", err, got)
	}
	// Absent default file: fine; absent explicit file: an error.
	opts = &ServeOptions{DevStack: filepath.Join(t.TempDir(), "none.json")}
	if err := registerDevStack(evm.NewRegistry(), opts, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	opts.DevStackSet = true
	if err := registerDevStack(evm.NewRegistry(), opts, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("explicit missing stack file accepted")
	}
}
