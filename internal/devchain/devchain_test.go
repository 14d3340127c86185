package devchain_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/ethereum/go-ethereum/ethclient"
	"github.com/ethereum/go-ethereum/rpc"

	"github.com/obolstack/obol/internal/devchain"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/testenv/wait"
	"github.com/obolstack/obol/internal/token"
)

func startChain(t *testing.T, cfg devchain.Config) *devchain.Chain {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	began := time.Now()
	c, err := devchain.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("dev chain started in %s at %s", time.Since(began).Round(time.Millisecond), c.RPCURL)
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

func rpcCall(t *testing.T, url, host, method string, params ...any) (json.RawMessage, int) {
	t.Helper()
	if params == nil {
		params = []any{}
	}
	body, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if host != "" {
		req.Host = host
	}
	cl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, resp.StatusCode
	}
	var out struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s: decode %q: %v", method, raw, err)
	}
	if out.Error != nil {
		t.Fatalf("%s: error %s", method, out.Error.Message)
	}
	return out.Result, resp.StatusCode
}

func TestDevChainServesJSONRPCAndToken(t *testing.T) {
	t.Parallel()
	keyDir := filepath.Join(t.TempDir(), "keys")
	c := startChain(t, devchain.Config{KeyDir: keyDir})

	if !strings.HasPrefix(c.RPCURL, "http://127.0.0.1:") {
		t.Errorf("RPCURL %q is not a loopback HTTP URL", c.RPCURL)
	}
	res, _ := rpcCall(t, c.RPCURL, "", "eth_chainId")
	if string(res) != `"0x539"` {
		t.Errorf("eth_chainId = %s, want \"0x539\" (1337)", res)
	}
	// Requests naming the host "localhost" must not get 403.
	port := c.RPCURL[strings.LastIndex(c.RPCURL, ":")+1:]
	if res, code := rpcCall(t, c.RPCURL, "localhost:"+port, "net_version"); code != http.StatusOK || string(res) != `"1337"` {
		t.Errorf("net_version with Host localhost: status %d, result %s", code, res)
	}
	// eth_getLogs exists (the filter API is registered).
	rpcCall(t, c.RPCURL, "", "eth_getLogs", map[string]any{"fromBlock": "0x0", "address": c.Token.Address})

	if c.ChainID != evm.DevChainID || c.CAIP2() != "eip155:1337" {
		t.Errorf("chain id %d %s", c.ChainID, c.CAIP2())
	}
	want := evm.Token{Chain: "eip155:1337", Address: c.Token.Address, Symbol: "USDC", Decimals: 6,
		EIP712Name: "USDC", EIP712Version: "2", TransferMethod: "eip3009"}
	if c.Token != want {
		t.Errorf("Token = %+v, want %+v", c.Token, want)
	}

	ctx := context.Background()
	cl := c.Client()
	call := func(method string) []byte {
		t.Helper()
		data, err := token.Pack(method)
		if err != nil {
			t.Fatal(err)
		}
		out, err := cl.CallContract(ctx, ethereum.CallMsg{To: &c.Token.Address, Data: data}, nil)
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		return out
	}
	for method, wantStr := range map[string]string{"name": "USDC", "symbol": "USDC", "version": "2"} {
		if got, err := token.UnpackString(call(method)); err != nil || got != wantStr {
			t.Errorf("%s() = %q, %v; want %q", method, got, err, wantStr)
		}
	}
	if dec, err := token.UnpackUint(call("decimals")); err != nil || dec.Int64() != 6 {
		t.Errorf("decimals() = %v, %v", dec, err)
	}
	sep := c.Domain().Separator()
	if got := call("DOMAIN_SEPARATOR"); !bytes.Equal(got, sep[:]) {
		t.Errorf("DOMAIN_SEPARATOR() = %x, evm.Domain says %x", got, sep)
	}
	if supply, err := token.UnpackUint(call("totalSupply")); err != nil || supply.Cmp(big.NewInt(3*1000_000_000)) != 0 {
		t.Errorf("totalSupply() = %v, %v; want 3000e6", supply, err)
	}

	if len(c.Buyers) != 3 {
		t.Fatalf("%d buyers, want 3", len(c.Buyers))
	}
	for _, b := range c.Buyers {
		bal, err := c.BalanceOf(ctx, b.Address)
		if err != nil || bal.Cmp(devchain.DefaultMintPerBuyer()) != 0 {
			t.Errorf("%s balance %v, %v; want 1000e6", b.Name, bal, err)
		}
	}
	if bal, err := c.BalanceOf(ctx, c.Seller.Address); err != nil || bal.Sign() != 0 {
		t.Errorf("seller balance %v, %v; want 0", bal, err)
	}
	eth, err := cl.BalanceAt(ctx, c.Facilitator.Address, nil)
	if err != nil || eth.Cmp(big.NewInt(0).Exp(big.NewInt(10), big.NewInt(18), nil)) < 0 {
		t.Errorf("facilitator has %v wei, %v; want ETH for gas", eth, err)
	}

	// Key files: mode 0600, loadable, matching the addresses; deterministic.
	for _, a := range append([]devchain.Account{c.Deployer, c.Facilitator, c.Seller}, c.Buyers...) {
		if a.KeyFile != filepath.Join(keyDir, a.Name+".key") {
			t.Errorf("%s: key file %q", a.Name, a.KeyFile)
			continue
		}
		st, err := os.Stat(a.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: key file mode %04o, want 0600", a.Name, st.Mode().Perm())
		}
		raw, _ := os.ReadFile(a.KeyFile)
		k, err := ethCryptoHex(strings.TrimSpace(string(raw)))
		if err != nil || evm.Address(k) != a.Address {
			t.Errorf("%s: key file does not hold the account's key (%v)", a.Name, err)
		}
		if devchain.NewAccount(a.Name).Address != a.Address {
			t.Errorf("%s: address not deterministic", a.Name)
		}
	}
	if st, err := os.Stat(keyDir); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("key dir mode: %v %v", st.Mode().Perm(), err)
	}

	reg := evm.NewRegistry()
	c.Register(reg)
	tok, err := reg.Token("dev", "")
	if err != nil || tok.Address != c.Token.Address {
		t.Errorf("registry dev token = %+v, %v", tok, err)
	}
}

// settle sends transferWithAuthorization from the facilitator account over
// a real HTTP client and returns the receipt.
func settle(t *testing.T, ctx context.Context, cl *ethclient.Client, c *devchain.Chain, a evm.Authorization, sig []byte) (*types.Receipt, error) {
	t.Helper()
	data, err := token.PackTransferWithAuthorization(a, sig)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := token.Transact(ctx, cl, c.Facilitator.Key, big.NewInt(c.ChainID), &c.Token.Address, data)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return token.WaitMined(wctx, cl, tx.Hash(), 10*time.Millisecond)
}

func TestTransferWithAuthorizationSettlesOnce(t *testing.T) {
	t.Parallel()
	c := startChain(t, devchain.Config{})
	ctx := context.Background()
	cl, err := ethclient.Dial(c.RPCURL)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	buyer := c.Buyers[0]
	value := big.NewInt(1234) // 0.001234 USDC
	a, err := evm.NewAuthorization(buyer.Address, c.Seller.Address, value, time.Now(), 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := evm.Sign(buyer.Key, c.Domain(), a)
	if err != nil {
		t.Fatal(err)
	}
	buyerBefore, _ := c.BalanceOf(ctx, buyer.Address)

	began := time.Now()
	r, err := settle(t, ctx, cl, c, a, sig)
	if err != nil {
		t.Fatalf("settle: %v", err)
	}
	t.Logf("settled in %s, block %d, gas %d", time.Since(began).Round(time.Millisecond), r.BlockNumber, r.GasUsed)
	if r.Status != types.ReceiptStatusSuccessful {
		t.Fatalf("receipt status %d", r.Status)
	}
	var used bool
	for _, l := range r.Logs {
		if l.Topics[0] == token.ABI().Events["AuthorizationUsed"].ID {
			used = l.Topics[1] == common.BytesToHash(buyer.Address[:]) && l.Topics[2] == common.Hash(a.Nonce)
		}
	}
	if !used {
		t.Error("no AuthorizationUsed(buyer, nonce) event")
	}
	buyerAfter, _ := c.BalanceOf(ctx, buyer.Address)
	sellerAfter, _ := c.BalanceOf(ctx, c.Seller.Address)
	if d := new(big.Int).Sub(buyerBefore, buyerAfter); d.Cmp(value) != 0 {
		t.Errorf("buyer paid %s, want %s", d, value)
	}
	if sellerAfter.Cmp(value) != 0 {
		t.Errorf("seller got %s, want %s", sellerAfter, value)
	}
	stateData, _ := token.PackAuthorizationState(buyer.Address, a.Nonce)
	out, err := cl.CallContract(ctx, ethereum.CallMsg{To: &c.Token.Address, Data: stateData}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if usedState, err := token.UnpackBool(out); err != nil || !usedState {
		t.Errorf("authorizationState = %v, %v; want true", usedState, err)
	}

	// Replay: the same authorization reverts (at estimation, so nothing is sent).
	_, err = settle(t, ctx, cl, c, a, sig)
	if reason := token.RevertReason(err); !strings.Contains(reason, token.ReasonAuthorizationUsed) {
		t.Errorf("replay: err %v, reason %q; want %q", err, reason, token.ReasonAuthorizationUsed)
	}
	if sellerNow, _ := c.BalanceOf(ctx, c.Seller.Address); sellerNow.Cmp(value) != 0 {
		t.Errorf("replay moved money: seller has %s", sellerNow)
	}

	// Signed over the wrong domain name → invalid signature.
	b, err := evm.NewAuthorization(buyer.Address, c.Seller.Address, value, time.Now(), 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	wrong := c.Domain()
	wrong.Name = "USD Coin"
	sig, _ = evm.Sign(buyer.Key, wrong, b)
	_, err = settle(t, ctx, cl, c, b, sig)
	if reason := token.RevertReason(err); !strings.Contains(reason, token.ReasonInvalidSignature) {
		t.Errorf("wrong domain: err %v, reason %q; want %q", err, reason, token.ReasonInvalidSignature)
	}

	// More than the balance → insufficient funds, seen by eth_call as the facilitator would simulate.
	big1 := new(big.Int).Add(buyerAfter, big.NewInt(1))
	cAuth, _ := evm.NewAuthorization(buyer.Address, c.Seller.Address, big1, time.Now(), 5*time.Minute)
	sig, _ = evm.Sign(buyer.Key, c.Domain(), cAuth)
	data, _ := token.PackTransferWithAuthorization(cAuth, sig)
	_, err = cl.CallContract(ctx, ethereum.CallMsg{From: c.Facilitator.Address, To: &c.Token.Address, Data: data}, nil)
	if reason := token.RevertReason(err); !strings.Contains(reason, token.ReasonInsufficientBalance) {
		t.Errorf("overdraft: err %v, reason %q; want %q", err, reason, token.ReasonInsufficientBalance)
	}
}

func TestMintAndCustomConfig(t *testing.T) {
	t.Parallel()
	c := startChain(t, devchain.Config{ChainID: 31337, TokenName: "USD Coin", Buyers: 1, MintPerBuyer: big.NewInt(5)})
	ctx := context.Background()
	if id, err := c.Client().ChainID(ctx); err != nil || id.Int64() != 31337 {
		t.Fatalf("chain id %v, %v", id, err)
	}
	if c.Token.EIP712Name != "USD Coin" || c.CAIP2() != "eip155:31337" || len(c.Buyers) != 1 {
		t.Errorf("token %+v, buyers %d", c.Token, len(c.Buyers))
	}
	if bal, _ := c.BalanceOf(ctx, c.Buyers[0].Address); bal.Int64() != 5 {
		t.Errorf("buyer balance %v, want 5", bal)
	}
	if err := c.Mint(ctx, c.Seller.Address, big.NewInt(7)); err != nil {
		t.Fatal(err)
	}
	if bal, _ := c.BalanceOf(ctx, c.Seller.Address); bal.Int64() != 7 {
		t.Errorf("seller balance after Mint %v, want 7", bal)
	}
	// Only the owner may mint.
	data, _ := token.PackMint(c.Seller.Address, big.NewInt(1))
	_, err := c.Client().CallContract(ctx, ethereum.CallMsg{From: c.Seller.Address, To: &c.Token.Address, Data: data}, nil)
	if !strings.Contains(token.RevertReason(err), "not the owner") {
		t.Errorf("mint by non-owner: %v", err)
	}
}

func TestListenAddressInUse(t *testing.T) {
	t.Parallel()
	c := startChain(t, devchain.Config{Buyers: -1})
	addr := strings.TrimPrefix(c.RPCURL, "http://")
	_, err := devchain.Start(context.Background(), devchain.Config{ListenAddr: addr})
	if err == nil || !strings.Contains(err.Error(), "another port") {
		t.Errorf("second chain on %s: err %v, want a clear address-in-use error", addr, err)
	}
	if _, err := devchain.Start(context.Background(), devchain.Config{ListenAddr: "nonsense"}); err == nil || !strings.Contains(err.Error(), "host:port") {
		t.Errorf("bad listen address: %v", err)
	}
}

func TestCloseIsQuickAndLeavesNoGoroutines(t *testing.T) {
	// Warm up package-level goroutines (HTTP transports, caches) first.
	warm, err := devchain.Start(context.Background(), devchain.Config{Buyers: 1})
	if err != nil {
		t.Fatal(err)
	}
	warm.Close()
	before := wait.RunningGoroutines() // the warm-up's goroutines still leaving never count

	for i := 0; i < 3; i++ {
		began := time.Now()
		c, err := devchain.Start(context.Background(), devchain.Config{})
		if err != nil {
			t.Fatal(err)
		}
		started := time.Since(began)
		// An outside HTTP client, closed (idle connections too) before the
		// chain as documented.
		hc := &http.Client{Transport: &http.Transport{}}
		rc, err := rpc.DialOptions(context.Background(), c.RPCURL, rpc.WithHTTPClient(hc))
		if err != nil {
			t.Fatal(err)
		}
		cl := ethclient.NewClient(rc)
		if _, err := cl.BlockNumber(context.Background()); err != nil {
			t.Fatal(err)
		}
		cl.Close()
		hc.CloseIdleConnections()
		began = time.Now()
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		closed := time.Since(began)
		t.Logf("run %d: start %s, close %s", i, started.Round(time.Millisecond), closed.Round(time.Millisecond))
		// Close takes ~0.1 s (with the log indexer on, its shutdown took
		// 2–5 s under -race). The bound only catches a hang: speed is not
		// asserted here, since a loaded CI machine under -race is slow.
		if closed > 30*time.Second {
			t.Errorf("Close hung for %s", closed)
		}
		if err := c.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	}
	wait.NoNewGoroutines(t, 5*time.Second, before, 2)
}

func ethCryptoHex(s string) (*ecdsa.PrivateKey, error) {
	return crypto.HexToECDSA(strings.TrimPrefix(s, "0x"))
}

// Layout tells clients of a chain running elsewhere (a pod) its accounts and
// token without asking it: it must agree with what Start deploys.
func TestLayoutPredictsStart(t *testing.T) {
	t.Parallel()
	cfg := devchain.Config{Buyers: 2, TokenName: "USD Coin", ChainID: 31337}
	c := startChain(t, cfg)
	keyDir := filepath.Join(t.TempDir(), "keys")
	cfg.KeyDir = keyDir
	l, err := devchain.Layout(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if l.Token != c.Token || devchain.TokenAddress() != c.Token.Address {
		t.Errorf("Layout token %+v (TokenAddress %s), Start deployed %+v", l.Token, devchain.TokenAddress().Hex(), c.Token)
	}
	if l.Deployer.Address != c.Deployer.Address || l.Facilitator.Address != c.Facilitator.Address ||
		l.Seller.Address != c.Seller.Address || len(l.Buyers) != 2 || l.Buyers[1].Address != c.Buyers[1].Address {
		t.Errorf("Layout accounts differ from Start's")
	}
	b, err := os.ReadFile(filepath.Join(keyDir, "buyer-2.key"))
	if err != nil {
		t.Fatal(err)
	}
	k, err := crypto.HexToECDSA(strings.TrimPrefix(strings.TrimSpace(string(b)), "0x"))
	if err != nil || crypto.PubkeyToAddress(k.PublicKey) != c.Buyers[1].Address {
		t.Errorf("buyer-2.key does not hold buyer-2's key (%v)", err)
	}
	if l.RPCURL != "" {
		t.Errorf("Layout RPCURL %q, want empty: nothing runs", l.RPCURL)
	}
}

// Many transactions in a row keep the chain's block time near the wall
// clock: blocks are sealed at once while the chain is at most MaxAhead
// ahead, and at the clock's pace after that. (Sealing each block a second after
// the last ran the chain a second ahead per transaction, and 60 s
// authorizations expired on chain after about 57 payments.)
func TestBlockTimeFollowsWallClock(t *testing.T) {
	c := startChain(t, devchain.Config{Buyers: 1, MaxAhead: 2 * time.Second})
	ctx := context.Background()
	const n = 12
	began := time.Now()
	for i := 0; i < n; i++ {
		if err := c.Mint(ctx, c.Buyers[0].Address, big.NewInt(1)); err != nil {
			t.Fatal(err)
		}
	}
	took := time.Since(began)
	head, err := c.Client().HeaderByNumber(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	ahead := int64(head.Time) - time.Now().Unix()
	t.Logf("%d transactions in %v (%v each); head block time %+d s from the wall clock", n, took.Round(time.Millisecond), (took / n).Round(time.Millisecond), ahead)
	if ahead > 3 {
		t.Fatalf("after %d transactions the chain's block time is %d s ahead of the wall clock", n, ahead)
	}
}

// evm assumes the default dev token's address without a stack file (a
// devnet in a cluster); it must be where devchain deploys it.
func TestTokenAddressIsEVMDevTokenAddress(t *testing.T) {
	t.Parallel()
	if got, want := devchain.TokenAddress(), common.HexToAddress(evm.DevTokenAddress); got != want {
		t.Errorf("devchain.TokenAddress() = %s, evm.DevTokenAddress = %s", got.Hex(), want.Hex())
	}
}
