package devstack_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/obolstack/obol/internal/cli/buy"
	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/devstack"
	"github.com/obolstack/obol/internal/devstack/stackfile"
	"github.com/obolstack/obol/internal/evm"
)

// One stack for the package's tests: it is a real chain, facilitator and
// verifier, and starting one costs about a second.
func startStack(t *testing.T) *devstack.Stack {
	t.Helper()
	dir := t.TempDir()
	var steps []string
	s, err := devstack.Start(context.Background(), devstack.Options{
		Listen: "127.0.0.1:0", KeyDir: filepath.Join(dir, "keys"), StackFile: filepath.Join(dir, "stack.json"),
		Step: func(msg string, _ time.Duration) { steps = append(steps, msg) },
	})
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	if len(steps) != 6 {
		t.Errorf("progress steps: %q", steps)
	}
	return s
}

func buyPay(t *testing.T, stackFile string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	t.Setenv(stackfile.EnvPath, stackFile)
	f, ios := cmdutil.NewTestFactory()
	cmd := buy.NewCmdPay(f, nil)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	cmd.SetArgs(args)
	err = cmd.Execute()
	return ios.Out.(*bytes.Buffer).String(), ios.ErrOut.(*bytes.Buffer).String(), err
}

func TestDevStackLoop(t *testing.T) {
	ctx := context.Background()
	s := startStack(t)
	info, err := stackfile.Read(filepath.Join(filepath.Dir(s.Buyer.KeyFile), "..", "stack.json"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Token.Address != s.Token.Address || info.BuyerKeyFile != s.Buyer.KeyFile || info.Price != "0.001" || !info.Alive() {
		t.Fatalf("stack file %+v", info)
	}
	stackFile := filepath.Join(filepath.Dir(s.Buyer.KeyFile), "..", "stack.json")

	sellerBefore, _ := s.Chain.BalanceOf(ctx, s.Seller.Address)
	buyerBefore, _ := s.Chain.BalanceOf(ctx, s.Buyer.Address)

	// A free path passes through the verifier to the upstream.
	res, err := http.Get(s.URL("/"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), "obol dev demo API") {
		t.Fatalf("free path: %d %s", res.StatusCode, body)
	}

	// Over the cap: refused, nothing signed, no transaction.
	_, _, err = buyPay(t, stackFile, s.URL(devstack.PathWeather), "--key-file", s.Buyer.KeyFile, "--max-amount", "0.0009")
	var exit *cmdutil.ExitError
	if !errors.As(err, &exit) || exit.Code != buy.ExitRefused || !strings.Contains(err.Error(), "over the cap of 0.0009 USDC") {
		t.Fatalf("over the cap: %v", err)
	}
	if b, _ := s.Chain.BalanceOf(ctx, s.Seller.Address); b.Cmp(sellerBefore) != 0 {
		t.Fatalf("seller balance moved on a refused payment: %s -> %s", sellerBefore, b)
	}

	// One paid call through `obol buy pay`, reading the stack file for the token.
	out, errOut, err := buyPay(t, stackFile, s.URL(devstack.PathJoke), "--key-file", s.Buyer.KeyFile, "--max-amount", "0.01")
	if err != nil {
		t.Fatalf("buy pay: %v\n%s", err, errOut)
	}
	if !strings.Contains(out, `"joke"`) || !strings.Contains(errOut, "Paid 0.001 USDC to "+s.Seller.Address.Hex()+" on obol-dev (eip155:1337)") ||
		!strings.Contains(errOut, "transaction  0x") {
		t.Fatalf("buy pay output:\nstdout %s\nstderr %s", out, errOut)
	}

	// Four more through the stack's own buyer.
	var seen int
	calls, err := s.Pay(ctx, 4, func(devstack.Call) { seen++ })
	if err != nil {
		t.Fatal(err)
	}
	if seen != 4 || len(calls) != 4 || calls[3].Status != 200 || calls[3].Amount() != "0.001 USDC" || len(calls[3].Transaction()) != 66 {
		t.Fatalf("calls %+v", calls)
	}

	// Money moved on chain: exactly price × 5.
	want := new(big.Int).Mul(s.PriceAtomic, big.NewInt(5))
	sellerAfter, _ := s.Chain.BalanceOf(ctx, s.Seller.Address)
	buyerAfter, _ := s.Chain.BalanceOf(ctx, s.Buyer.Address)
	if got := new(big.Int).Sub(sellerAfter, sellerBefore); got.Cmp(want) != 0 {
		t.Fatalf("seller received %s, want %s", got, want)
	}
	if got := new(big.Int).Sub(buyerBefore, buyerAfter); got.Cmp(want) != 0 {
		t.Fatalf("buyer spent %s, want %s", got, want)
	}

	// The summary, from the verifier's /metrics: 5 charged calls, 0.005 USDC.
	sum, err := s.Summary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Offers) != 1 {
		t.Fatalf("offers %+v", sum.Offers)
	}
	o := sum.Offers[0]
	if o.Namespace != "default" || o.Name != "demo" || o.Chain != "eip155:1337" || o.ChargedCalls.Lifetime != 5 {
		t.Fatalf("offer row %+v", o)
	}
	if len(o.Revenue) != 1 || o.Revenue[0].Lifetime != "0.005" || o.Revenue[0].LifetimeAtomic != "5000" || o.Revenue[0].Symbol != "USDC" {
		t.Fatalf("revenue %+v", o.Revenue)
	}
	if o.LastSettlement == nil || o.VerifiedRate == nil {
		t.Fatalf("last settlement %v, rate %v", o.LastSettlement, o.VerifiedRate)
	}
	// Each paid call is one 402 then one verified payment; the refused call
	// was one more 402: 5 / (6 + 5).
	if r := *o.VerifiedRate; r < 5.0/11-1e-5 || r > 5.0/11+1e-5 {
		t.Fatalf("settlement rate %v, want 5/11", r)
	}

	// Nothing else passes unpaid: other spellings of the paid paths and
	// unknown paths are answered by the verifier (402, 400 or 404).
	for _, p := range []string{"/WEATHER", "/weather;x", "/weather.", "/weather/", "/joke%2e", "/x/../joke", "/about", "/index.html"} {
		res, err := http.Get(s.URL(p))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode == 200 || strings.Contains(string(body), "demo upstream") {
			t.Errorf("unpaid GET %s: %d %s", p, res.StatusCode, body)
		}
	}
}

func TestStackFileOfAnotherLiveDevIsKept(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "stack.json")
	// The parent process (go test) stands in for another running obol dev.
	other := stackfile.Info{PID: os.Getppid(), VerifierURL: "http://127.0.0.1:8080",
		Chain: evm.NewRegistry().Chains()[0], Token: evm.Token{Address: common.HexToAddress("0x01"), EIP712Name: "USDC", EIP712Version: "2"}}
	other.Chain.ChainID = 1337
	if err := stackfile.Write(path, other); err != nil {
		t.Fatal(err)
	}
	var steps []string
	s, err := devstack.Start(context.Background(), devstack.Options{Listen: "127.0.0.1:0", StackFile: path,
		Step: func(msg string, _ time.Duration) { steps = append(steps, msg) }})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := stackfile.Read(path)
	if err != nil || got.PID != os.Getppid() {
		t.Fatalf("the other obol dev's stack file was replaced or removed: %+v %v", got, err)
	}
	if last := steps[len(steps)-1]; !strings.Contains(last, "belongs to another obol dev") {
		t.Fatalf("no warning: %q", last)
	}
}
