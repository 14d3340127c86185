package facilitatorcmd

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/devchain"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/x402"
)

func parse(t *testing.T, args ...string) (*ServeOptions, error) {
	t.Helper()
	f, _ := cmdutil.NewTestFactory()
	var got *ServeOptions
	cmd := NewCmdServe(f, func(o *ServeOptions) error { got = o; return nil })
	cmd.SetArgs(args)
	cmd.SetOut(&strings.Builder{})
	cmd.SetErr(&strings.Builder{})
	err := cmd.Execute()
	return got, err
}

func TestServeFlags(t *testing.T) {
	o, err := parse(t, "--rpc", "http://127.0.0.1:8545", "--chain", "dev", "--key-file", "k", "--asset", "0x5FbDB2315678afecb367f032d93F642f64180aa3", "--eip712-name", "USD Coin")
	if err != nil {
		t.Fatal(err)
	}
	if o.RPCURL != "http://127.0.0.1:8545" || o.Chain != "dev" || o.KeyFile != "k" || o.Listen != "127.0.0.1:4021" ||
		o.TokenName != "USD Coin" || o.TokenVersion != "2" || o.TokenDecimals != 6 || o.RPCTimeout != 10*time.Second {
		t.Errorf("options %+v", o)
	}
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--chain", "dev", "--key-file", "k"}, "--rpc is required"},
		{[]string{"--rpc", "http://x", "--key-file", "k"}, "--chain is required"},
		{[]string{"--rpc", "http://x", "--chain", "base"}, "--key-file is required"},
		{[]string{"--rpc", "http://x", "--chain", "base", "--key-file", "k", "--asset", "nope"}, "invalid --asset"},
		{[]string{"--rpc", "http://x", "--chain", "base", "--key-file", "k", "--eip712-name", "X"}, "needs --asset"},
	} {
		if _, err := parse(t, c.args...); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%v: err %v, want %q", c.args, err, c.msg)
		}
	}
}

func TestDevChainNeedsTokenAddress(t *testing.T) {
	ios, _, _, _ := cmdutil.Test()
	err := serveRun(context.Background(), &ServeOptions{IO: ios, Logger: func() *slog.Logger { return nil }, RPCURL: "http://127.0.0.1:1", Chain: "dev", KeyFile: "k", Registry: evm.NewRegistry()})
	if err == nil || !strings.Contains(err.Error(), "--asset") {
		t.Fatalf("err %v, want it to ask for --asset", err)
	}
}

// TestServeAgainstDevChain runs the command against the real dev chain and
// checks /supported and a verify over HTTP.
func TestServeAgainstDevChain(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	ch, err := devchain.Start(ctx, devchain.Config{Buyers: 1, KeyDir: filepath.Join(dir, "keys")})
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	ios, _, out, _ := cmdutil.Test()
	started := make(chan string, 1)
	stop := make(chan struct{})
	done := make(chan error, 1)
	opts := &ServeOptions{
		IO: ios, Logger: func() *slog.Logger { return nil }, Output: cmdutil.OutputJSON,
		RPCURL: ch.RPCURL, Chain: "dev", KeyFile: ch.Facilitator.KeyFile, Listen: "127.0.0.1:0",
		TokenAddress: ch.Token.Address.Hex(), TokenName: ch.Token.EIP712Name, TokenVersion: ch.Token.EIP712Version,
		TokenDecimals: 6, TokenSymbol: "USDC", RPCTimeout: 5 * time.Second, ReceiptTimeout: 10 * time.Second,
		ShutdownTimeout: 5 * time.Second, Registry: evm.NewRegistry(), Started: started, Stop: stop,
	}
	go func() { done <- serveRun(ctx, opts) }()
	var url string
	select {
	case url = <-started:
	case err := <-done:
		t.Fatalf("serve ended: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not start")
	}
	var info startInfo
	if err := json.Unmarshal([]byte(out.String()), &info); err != nil {
		t.Fatalf("start output %q: %v", out.String(), err)
	}
	if info.URL != url || info.CAIP2 != "eip155:1337" || info.FeePayer != ch.Facilitator.Address.Hex() || len(info.Tokens) != 1 {
		t.Errorf("start info %+v", info)
	}
	res, err := http.Get(url + "/supported")
	if err != nil {
		t.Fatal(err)
	}
	var sup x402.SupportedResponse
	if err := json.NewDecoder(res.Body).Decode(&sup); err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if len(sup.Kinds) != 2 || sup.Kinds[1].Network != "eip155:1337" || sup.Signers["eip155:*"][0] != ch.Facilitator.Address.Hex() {
		t.Errorf("supported %+v", sup)
	}
	close(stop)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
	// The key file must be private.
	if st, err := os.Stat(ch.Facilitator.KeyFile); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v %v", st, err)
	}
}
