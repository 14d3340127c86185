package devcmd

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/devchain"
)

func TestNewCmdChainParsesFlags(t *testing.T) {
	t.Parallel()
	f, _ := cmdutil.NewTestFactory()
	f.Global.Output = cmdutil.OutputJSON
	var got *ChainOptions
	cmd := NewCmdChain(f, func(o *ChainOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"--listen", "127.0.0.1:0", "--chain-id", "31337", "--key-dir", "/tmp/k", "--eip712-name", "USD Coin", "--buyers", "5"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got.Listen != "127.0.0.1:0" || got.ChainID != 31337 || got.KeyDir != "/tmp/k" || got.TokenName != "USD Coin" ||
		got.TokenVersion != "2" || got.Buyers != 5 || got.Output != cmdutil.OutputJSON {
		t.Errorf("options %+v", got)
	}

	cmd = NewCmdChain(f, func(o *ChainOptions) error { got = o; return nil })
	cmd.SetArgs(nil)
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got.Listen != "127.0.0.1:8545" || got.ChainID != 1337 || got.KeyDir != "" || got.TokenName != "USDC" || got.Buyers != 3 {
		t.Errorf("defaults %+v", got)
	}

	cmd = NewCmdChain(f, func(o *ChainOptions) error { t.Error("runF called"); return nil })
	cmd.SetArgs([]string{"--chain-id", "0"})
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "--chain-id") {
		t.Errorf("chain id 0: %v", err)
	}
}

func TestDevHelpListsChain(t *testing.T) {
	t.Parallel()
	f, ios := cmdutil.NewTestFactory()
	cmd := NewCmdDev(f)
	var out strings.Builder
	cmd.SetOut(&out)
	// Without arguments `obol dev` runs the whole loop (run.go); its help
	// still lists the chain subcommand.
	cmd.SetArgs([]string{"--help"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	_ = ios
	if !strings.Contains(out.String(), "chain") || !strings.Contains(out.String(), "Run the development chain") {
		t.Errorf("help lacks the chain subcommand:\n%s", out.String())
	}
}

func runChain(t *testing.T, output string, ready func(*devchain.Chain)) (string, string, string) {
	t.Helper()
	ios, _, out, errOut := cmdutil.Test()
	keyDir := filepath.Join(t.TempDir(), "keys")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	opts := &ChainOptions{
		IO: ios, Output: output, Listen: "127.0.0.1:0", ChainID: 1337, KeyDir: keyDir,
		TokenName: "USDC", TokenVersion: "2", Buyers: 2, Context: ctx,
		Ready: func(c *devchain.Chain) {
			ready(c)
			cancel()
		},
	}
	if err := chainRun(opts); err != nil {
		t.Fatalf("chainRun: %v\n%s", err, errOut)
	}
	return out.String(), errOut.String(), keyDir
}

func TestChainRunJSONAnswersCurl(t *testing.T) {
	t.Parallel()
	var chainID string
	var keys []string
	out, errOut, keyDir := runChain(t, cmdutil.OutputJSON, func(c *devchain.Chain) {
		req := `{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}`
		resp, err := http.Post(c.RPCURL, "application/json", strings.NewReader(req))
		if err != nil {
			t.Errorf("eth_chainId: %v", err)
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		chainID = string(b)
		for _, a := range append([]devchain.Account{c.Deployer, c.Facilitator, c.Seller}, c.Buyers...) {
			keys = append(keys, hex.EncodeToString(crypto.FromECDSA(a.Key)))
		}
	})
	http.DefaultClient.CloseIdleConnections()
	if !strings.Contains(chainID, `"result":"0x539"`) {
		t.Errorf("eth_chainId answered %s", chainID)
	}
	var info ChainInfo
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("stdout is not one JSON object: %v\n%s", err, out)
	}
	if info.ChainID != 1337 || info.Network != "eip155:1337" || !strings.HasPrefix(info.RPCURL, "http://127.0.0.1:") ||
		info.Token.Symbol != "USDC" || info.Token.Decimals != 6 || info.Token.EIP712Name != "USDC" || info.Token.EIP712Version != "2" ||
		info.KeyDir != keyDir {
		t.Errorf("info %+v", info)
	}
	if len(info.Accounts) != 5 {
		t.Fatalf("%d accounts, want deployer, facilitator, seller and 2 buyers", len(info.Accounts))
	}
	for _, a := range info.Accounts {
		st, err := os.Stat(a.KeyFile)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s key file %s: %v", a.Name, a.KeyFile, err)
		}
		want := "0"
		if a.Role == "buyer" {
			want = "1000000000"
		}
		if a.Balance != want {
			t.Errorf("%s balance %s, want %s", a.Name, a.Balance, want)
		}
	}
	for _, k := range keys {
		if strings.Contains(out+errOut, k) {
			t.Fatal("output contains a private key")
		}
	}
	if !strings.Contains(errOut, "Ctrl-C") || !strings.Contains(errOut, "Stopping") {
		t.Errorf("stderr: %s", errOut)
	}
}

func TestChainRunTable(t *testing.T) {
	t.Parallel()
	out, _, keyDir := runChain(t, cmdutil.OutputTable, func(*devchain.Chain) {})
	for _, want := range []string{"RPC URL:   http://127.0.0.1:", "eip155:1337", "EIP-712 name \"USDC\" version \"2\"",
		"Key files: " + keyDir, "facilitator", "buyer-2", "1000", filepath.Join(keyDir, "seller.key")} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
