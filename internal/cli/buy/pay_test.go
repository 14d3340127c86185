package buy

import (
	"bytes"
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
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/obolstack/obol/internal/buyer"
	"github.com/obolstack/obol/internal/buyer/buyertest"
	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/devstack/stackfile"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/x402"
)

var payTo = common.HexToAddress("0x209693Bc6afc0C5328bA36FaF03C514EF312287C")

// keyFile writes a fresh key (mode 0600) and returns its path and address.
func keyFile(t *testing.T) (string, common.Address) {
	t.Helper()
	k, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "buyer.key")
	if err := evm.WriteKeyFile(p, k); err != nil {
		t.Fatal(err)
	}
	return p, evm.Address(k)
}

type run struct {
	out, errOut string
	err         error
}

func (r run) code() int {
	var e *cmdutil.ExitError
	if errors.As(r.err, &e) {
		return e.Code
	}
	if r.err != nil {
		return 1
	}
	return 0
}

// pay runs `obol buy pay` through cobra with test streams. No dev stack file
// is read unless the test writes one at $OBOL_DEV_STACK.
func pay(t *testing.T, args ...string) run {
	t.Helper()
	if os.Getenv(stackfile.EnvPath) == "" {
		t.Setenv(stackfile.EnvPath, filepath.Join(t.TempDir(), "absent.json"))
	}
	f, ios := cmdutil.NewTestFactory()
	for i, a := range args {
		if a == "-o" && i+1 < len(args) {
			f.Global.Output = args[i+1]
			args = append(args[:i:i], args[i+2:]...)
			break
		}
	}
	cmd := NewCmdPay(f, nil)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true // as under the root command
	cmd.SetArgs(args)
	cmd.SetOut(ios.Out)
	cmd.SetErr(ios.ErrOut)
	err := cmd.Execute()
	return run{out: ios.Out.(*bytes.Buffer).String(), errOut: ios.ErrOut.(*bytes.Buffer).String(), err: err}
}

func TestFlags(t *testing.T) {
	f, _ := cmdutil.NewTestFactory()
	t.Setenv(stackfile.EnvPath, "/nowhere/stack.json")
	var got *PayOptions
	cmd := NewCmdPay(f, func(o *PayOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"http://x.test/a", "-X", "put", "-d", "@b.json", "-H", "A: 1", "-H", "B: 2",
		"--key-file", "k", "--allow-pay-to", "0x1,0x2", "--allow-pay-to", "0x3", "--chain", "base", "--dry-run"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got.URL != "http://x.test/a" || got.Method != "put" || got.Data != "@b.json" || len(got.Headers) != 2 ||
		got.KeyFile != "k" || len(got.AllowPayTo) != 3 || got.Network != "base" || !got.DryRun {
		t.Fatalf("options %+v", got)
	}
	if got.MaxAmount != "0.01" || got.DevStack != "/nowhere/stack.json" || got.DevStackExplicit || got.PassphraseEnv != PassphraseEnvDefault {
		t.Fatalf("defaults %+v", got)
	}
}

// The old spellings still work, hidden, with a one-line notice.
func TestDeprecatedFlagSpellings(t *testing.T) {
	f, ios := cmdutil.NewTestFactory()
	var got *PayOptions
	cmd := NewCmdPay(f, func(o *PayOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"http://x.test/a", "--network", "base", "--token-address", "0x5FbDB2315678afecb367f032d93F642f64180aa3",
		"--token-name", "USD Coin", "--token-version", "2", "--token-decimals", "18", "--token-symbol", "USDX", "--dry-run"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got.Network != "base" || got.TokenAddress != "0x5FbDB2315678afecb367f032d93F642f64180aa3" || got.TokenName != "USD Coin" ||
		got.TokenVersion != "2" || got.TokenDecimals != 18 || got.TokenSymbol != "USDX" {
		t.Fatalf("options %+v", got)
	}
	notices := ios.ErrOut.(*bytes.Buffer).String()
	for _, want := range []string{"--network is deprecated: use --chain", "--token-address is deprecated: use --asset",
		"--token-name is deprecated: use --eip712-name", "--token-decimals is deprecated: use --asset-decimals"} {
		if !strings.Contains(notices, want) {
			t.Errorf("stderr lacks %q:\n%s", want, notices)
		}
	}
	if strings.Contains(cmd.UsageString(), "token-address") || strings.Contains(cmd.UsageString(), "network") {
		t.Errorf("help shows a deprecated spelling:\n%s", cmd.UsageString())
	}
}

func TestPaysV1AndV2(t *testing.T) {
	for _, version := range []int{1, 2} {
		s, srv := buyertest.New(t, version, buyertest.USDCBaseSepolia("1000", payTo))
		s.WantBody = `{"city":"Lisbon"}`
		key, addr := keyFile(t)
		body := filepath.Join(t.TempDir(), "body.json")
		if err := os.WriteFile(body, []byte(s.WantBody), 0o600); err != nil {
			t.Fatal(err)
		}
		r := pay(t, srv.URL+"/weather", "-d", "@"+body, "--key-file", key, "--max-amount", "0.001")
		if r.err != nil {
			t.Fatalf("v%d: %v\n%s", version, r.err, r.errOut)
		}
		if r.out != `{"forecast":"sunny"}` {
			t.Fatalf("v%d stdout %q", version, r.out)
		}
		for _, want := range []string{
			"The seller reports it settled 0.001 USDC to 0x209693Bc6afc0C5328bA36FaF03C514EF312287C on base-sepolia (eip155:84532)",
			"transaction  0x", "payer        " + addr.Hex(), "x402         version " + string(rune('0'+version)) + " (" + x402.PaymentHeaderName(version) + ")",
		} {
			if !strings.Contains(r.errOut, want) {
				t.Errorf("v%d stderr lacks %q:\n%s", version, want, r.errOut)
			}
		}
		ps := s.Payments()
		if len(ps) != 1 || ps[0].Reason != "" || ps[0].From != addr || ps[0].Value != "1000" {
			t.Fatalf("v%d seller saw %+v", version, ps)
		}
	}
}

func TestJSONOutput(t *testing.T) {
	_, srv := buyertest.New(t, 2, buyertest.USDCBaseSepolia("2500", payTo))
	key, addr := keyFile(t)
	r := pay(t, srv.URL, "--key-file", key, "-o", "json")
	if r.err != nil {
		t.Fatal(r.err)
	}
	var doc struct {
		Status int `json:"status"`
		Body   struct {
			Forecast string `json:"forecast"`
		} `json:"body"`
		Payment struct {
			Amount, AmountAtomic, Symbol, Network, Chain, PayTo, From, Header string
			Signed                                                            bool
		} `json:"payment"`
		Receipt struct {
			Success     bool   `json:"success"`
			Transaction string `json:"transaction"`
			Payer       string `json:"payer"`
		} `json:"receipt"`
	}
	if err := json.Unmarshal([]byte(r.out), &doc); err != nil {
		t.Fatalf("not one JSON object: %v\n%s", err, r.out)
	}
	p := doc.Payment
	if doc.Status != 200 || doc.Body.Forecast != "sunny" || p.Amount != "0.0025" || p.AmountAtomic != "2500" || p.Symbol != "USDC" ||
		p.Network != "eip155:84532" || p.Chain != "base-sepolia" || p.PayTo != payTo.Hex() || p.From != addr.Hex() || !p.Signed ||
		p.Header != "PAYMENT-SIGNATURE" || !doc.Receipt.Success || doc.Receipt.Transaction == "" || doc.Receipt.Payer != addr.Hex() {
		t.Fatalf("document:\n%s", r.out)
	}
}

func TestOverCapSignsNothing(t *testing.T) {
	for _, version := range []int{1, 2} {
		s, srv := buyertest.New(t, version, buyertest.USDCBaseSepolia("50000", payTo))
		key, _ := keyFile(t)
		r := pay(t, srv.URL, "--key-file", key, "--max-amount", "0.01")
		if r.code() != ExitRefused {
			t.Fatalf("v%d exit %d (%v), want %d", version, r.code(), r.err, ExitRefused)
		}
		if !strings.Contains(r.err.Error(), "price 0.05 USDC is over the cap of 0.01 USDC") || !strings.Contains(r.err.Error(), "nothing was signed") {
			t.Fatalf("v%d message %q", version, r.err)
		}
		if len(s.Payments()) != 0 || s.Requests() != 1 || r.out != "" {
			t.Fatalf("v%d: %d payments, %d requests, stdout %q", version, len(s.Payments()), s.Requests(), r.out)
		}
	}
}

func TestPayToNotAllowed(t *testing.T) {
	s, srv := buyertest.New(t, 2, buyertest.USDCBaseSepolia("1000", payTo))
	key, _ := keyFile(t)
	r := pay(t, srv.URL, "--key-file", key, "--allow-pay-to", "0x1111111111111111111111111111111111111111")
	if r.code() != ExitRefused || !strings.Contains(r.err.Error(), "not in --allow-pay-to") || len(s.Payments()) != 0 {
		t.Fatalf("exit %d: %v", r.code(), r.err)
	}
	r = pay(t, srv.URL, "--key-file", key, "--allow-pay-to", strings.ToLower(payTo.Hex()))
	if r.err != nil || len(s.Payments()) != 1 {
		t.Fatalf("allowed payee: %v", r.err)
	}
}

func TestFreeURLPassthrough(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.Error(w, "no such thing", http.StatusNotFound)
			return
		}
		_, _ = w.Write([]byte("plain and free\n"))
	}))
	defer srv.Close()
	key, _ := keyFile(t)
	r := pay(t, srv.URL+"/free", "--key-file", key)
	if r.err != nil || r.out != "plain and free\n" || r.errOut != "" {
		t.Fatalf("err %v stdout %q stderr %q", r.err, r.out, r.errOut)
	}
	r = pay(t, srv.URL+"/missing", "--key-file", key)
	if r.code() != ExitFailed || !strings.Contains(r.err.Error(), "HTTP 404") || r.out != "no such thing\n" {
		t.Fatalf("exit %d err %v stdout %q", r.code(), r.err, r.out)
	}
}

func TestDryRunSignsNothing(t *testing.T) {
	s, srv := buyertest.New(t, 1, buyertest.USDCBaseSepolia("1000", payTo))
	r := pay(t, srv.URL, "--dry-run") // no key needed
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !strings.Contains(r.out, "Would pay 0.001 USDC to "+payTo.Hex()+" on base-sepolia (eip155:84532)") || !strings.Contains(r.out, "nothing was signed") {
		t.Fatalf("stdout %q", r.out)
	}
	key, _ := keyFile(t)
	r = pay(t, srv.URL, "--dry-run", "--key-file", key, "-o", "json")
	if r.err != nil || !strings.Contains(r.out, `"dryRun": true`) || !strings.Contains(r.out, `"signed": false`) {
		t.Fatalf("json dry run: %v\n%s", r.err, r.out)
	}
	if len(s.Payments()) != 0 || s.Requests() != 2 {
		t.Fatalf("dry run sent %d payments", len(s.Payments()))
	}
}

func TestRejectedAfterPaying(t *testing.T) {
	s, srv := buyertest.New(t, 2, buyertest.USDCBaseSepolia("1000", payTo))
	s.Reject = true
	key, _ := keyFile(t)
	r := pay(t, srv.URL, "--key-file", key)
	if r.code() != ExitRejected || !strings.Contains(r.err.Error(), "insufficient_funds") || !strings.Contains(r.errOut, "NOT settled") {
		t.Fatalf("exit %d err %v stderr %s", r.code(), r.err, r.errOut)
	}
	if s.Requests() != 2 {
		t.Fatalf("%d requests, want one retry only", s.Requests())
	}
}

func TestKeyRequired(t *testing.T) {
	r := pay(t, "http://127.0.0.1:1/x")
	var fe *cmdutil.FlagError
	if !errors.As(r.err, &fe) || !strings.Contains(r.err.Error(), "--key-file is required") {
		t.Fatalf("err %v", r.err)
	}
	key, _ := keyFile(t)
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	r = pay(t, "http://127.0.0.1:1/x", "--key-file", key)
	if !errors.Is(r.err, evm.ErrInsecureKeyFile) {
		t.Fatalf("loose key file: %v", r.err)
	}
}

// devSeller serves a challenge on the development chain with a token that
// only the dev stack file (or token flags) makes known.
func devSeller(t *testing.T, token common.Address) (*buyertest.Seller, *httptest.Server, evm.Token) {
	tok := evm.Token{Address: token, Symbol: "USDC", Decimals: 6, EIP712Name: "USDC", EIP712Version: "2"}
	reg := evm.NewRegistry()
	reg.SetDevChain(1337, tok)
	req := x402.Requirement{Scheme: "exact", Network: "eip155:1337", NetworkV1: "obol-dev", Amount: "1000",
		Asset: token.Hex(), PayTo: payTo.Hex(), MaxTimeoutSeconds: 30, Extra: x402.Extra{Name: "USDC", Version: "2"}}
	s, srv := buyertest.New(t, 2, req)
	s.Registry = reg
	return s, srv, tok
}

func TestDevStackFile(t *testing.T) {
	token := common.HexToAddress("0x5FbDB2315678afecb367f032d93F642f64180aa3")
	s, srv, tok := devSeller(t, token)
	key, _ := keyFile(t)

	r := pay(t, srv.URL, "--key-file", key)
	if r.code() != ExitRefused || !strings.Contains(r.err.Error(), "obol dev") {
		t.Fatalf("without the stack file: exit %d %v", r.code(), r.err)
	}

	path := filepath.Join(t.TempDir(), "stack.json")
	reg := evm.NewRegistry()
	chain, _ := reg.Chain("dev")
	if err := stackfile.Write(path, stackfile.Info{PID: os.Getpid(), StartedAt: time.Now(), Chain: chain, Token: tok}); err != nil {
		t.Fatal(err)
	}
	t.Setenv(stackfile.EnvPath, path)
	r = pay(t, srv.URL, "--key-file", key)
	if r.err != nil || !strings.Contains(r.errOut, "The seller reports it settled 0.001 USDC to "+payTo.Hex()+" on obol-dev (eip155:1337)") {
		t.Fatalf("with the stack file: %v\n%s", r.err, r.errOut)
	}
	if r := pay(t, srv.URL, "--key-file", key, "--dev-stack", filepath.Join(t.TempDir(), "gone.json")); r.err == nil || !strings.Contains(r.err.Error(), "is `obol dev` running?") {
		t.Fatalf("explicit missing stack file: %v", r.err)
	}
	if n := len(s.Payments()); n != 1 {
		t.Fatalf("%d payments", n)
	}
}

func TestTokenFlags(t *testing.T) {
	token := common.HexToAddress("0x5FbDB2315678afecb367f032d93F642f64180aa3")
	s, srv, _ := devSeller(t, token)
	key, _ := keyFile(t)
	r := pay(t, srv.URL, "--key-file", key, "--asset", token.Hex())
	var fe *cmdutil.FlagError
	if !errors.As(r.err, &fe) || !strings.Contains(r.err.Error(), "never guesses") {
		t.Fatalf("incomplete token flags: %v", r.err)
	}
	// A wrong domain name registers fine, but the seller's extra disagrees: refused.
	r = pay(t, srv.URL, "--key-file", key, "--chain", "dev", "--asset", token.Hex(), "--eip712-name", "USD Coin", "--eip712-version", "2", "--asset-symbol", "USDC")
	if r.code() != ExitRefused || !strings.Contains(r.err.Error(), "refusing to sign with a domain") {
		t.Fatalf("wrong domain: %v", r.err)
	}
	r = pay(t, srv.URL, "--key-file", key, "--chain", "dev", "--asset", token.Hex(), "--eip712-name", "USDC", "--eip712-version", "2", "--asset-symbol", "USDC")
	if r.err != nil || len(s.Payments()) != 1 {
		t.Fatalf("token flags: %v\n%s", r.err, r.errOut)
	}
}

func TestBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"ftp://x", "--dry-run"}, "want an absolute http"},
		{[]string{"http://x.test", "--dry-run", "--max-amount", "lots"}, "--max-amount"},
		{[]string{"http://x.test", "--dry-run", "--allow-pay-to", "bob"}, "--allow-pay-to"},
		{[]string{"http://x.test", "--dry-run", "--chain", "narnia"}, "unknown chain"},
		{[]string{"http://x.test", "--dry-run", "-H", "nocolon"}, "want 'Name: value'"},
	} {
		r := pay(t, tc.args...)
		var fe *cmdutil.FlagError
		if !errors.As(r.err, &fe) || !strings.Contains(r.err.Error(), tc.want) {
			t.Errorf("%v: err %v, want a flag error with %q", tc.args, r.err, tc.want)
		}
	}
}

func TestSettlementPendingWaitedOut(t *testing.T) {
	s := &buyertest.Seller{Version: 2, Requirements: []x402.Requirement{buyertest.USDCBaseSepolia("1000", payTo)}}
	pd := &buyertest.Pending{Seller: s, Times: 2, RetryAfter: "1"}
	srv := httptest.NewServer(pd)
	t.Cleanup(srv.Close)
	key, _ := keyFile(t)
	r := pay(t, srv.URL+"/weather", "--key-file", key, "-o", "json")
	t.Logf("stderr:\n%s", r.errOut)
	if r.err != nil {
		t.Fatalf("%v\n%s", r.err, r.errOut)
	}
	var doc struct {
		Status         int `json:"status"`
		PendingRetries int `json:"pendingRetries"`
	}
	if err := json.Unmarshal([]byte(r.out), &doc); err != nil {
		t.Fatalf("stdout is not one JSON document: %v\n%s", err, r.out)
	}
	if doc.Status != 200 || doc.PendingRetries != 2 {
		t.Fatalf("document:\n%s", r.out)
	}
	for _, want := range []string{
		"settlement pending at the seller; asking again in 1s (attempt 2)\n",
		"settlement pending at the seller; asking again in 1s (attempt 3)\n",
	} {
		if !strings.Contains(r.errOut, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
	if h := pd.PaymentHeaders(); len(h) != 3 || h[0] != h[1] || h[1] != h[2] || len(s.Payments()) != 1 {
		t.Fatalf("%d paid requests (want 3 with one payment), seller accepted %d", len(h), len(s.Payments()))
	}
}

// A seller that could not tell whether the payment settled (and could not
// keep it pending) is not reported as "should not have been charged".
func TestClassifySettlementUnknown(t *testing.T) {
	opts := &PayOptions{URL: "http://127.0.0.1:1/paid"}
	signed := &buyer.Signed{}
	for _, tc := range []struct {
		body, want, not string
	}{
		{`{"error":"…","reason":"settlement_unknown"}`, "may have been charged", "should not have been charged"},
		{`{"error":"…","reason":"facilitator_unavailable"}`, "should not have been charged", "may have been charged"},
	} {
		err := classify(opts, &buyer.Result{Status: http.StatusServiceUnavailable, Body: []byte(tc.body), Signed: signed}, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), tc.not) {
			t.Errorf("503 %s: %v, want it to say %q", tc.body, err, tc.want)
		}
	}
}
