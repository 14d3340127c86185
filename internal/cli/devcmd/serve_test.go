package devcmd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/devchain"
)

func TestKeysWritesDeterministicAccounts(t *testing.T) {
	t.Parallel()
	ios, _, out, _ := cmdutil.Test()
	dir := filepath.Join(t.TempDir(), "keys")
	if err := keysRun(&KeysOptions{IO: ios, Output: cmdutil.OutputJSON, KeyDir: dir, ChainID: 1337, TokenName: "USDC", TokenVersion: "2", Buyers: 2}); err != nil {
		t.Fatal(err)
	}
	var info KeysInfo
	if err := json.Unmarshal([]byte(out.String()), &info); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if info.Token.Address != devchain.TokenAddress() || info.Network != "eip155:1337" || info.Token.Decimals != 6 || info.Token.EIP712Name != "USDC" {
		t.Errorf("token %+v network %s", info.Token, info.Network)
	}
	names := []string{}
	for _, a := range info.Accounts {
		names = append(names, a.Name)
		st, err := os.Stat(a.KeyFile)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("key file of %s: %v %v", a.Name, st, err)
		}
		if a.Address != devchain.NewAccount(a.Name).Address.Hex() {
			t.Errorf("%s address %s", a.Name, a.Address)
		}
	}
	if strings.Join(names, ",") != "deployer,facilitator,seller,buyer-1,buyer-2" {
		t.Errorf("accounts %v", names)
	}
	if strings.Contains(out.String(), `"balance"`) {
		t.Errorf("keys prints balances it cannot know:\n%s", out)
	}

	f, _ := cmdutil.NewTestFactory()
	cmd := NewCmdKeys(f, func(*KeysOptions) error { t.Error("runF called without --key-dir"); return nil })
	cmd.SetArgs(nil)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "--key-dir") {
		t.Errorf("no --key-dir: %v", err)
	}
}

// start runs fn (upstreamRun, forwardRun) until the test ends and returns
// the address it listens on.
func start(t *testing.T, run func(ctx context.Context, ready func(string)) error) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan string, 1)
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, func(a string) { addrc <- a }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	select {
	case a := <-addrc:
		return a
	case err := <-errc:
		t.Fatalf("did not start: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("did not start in 30s")
	}
	return ""
}

func TestUpstreamAndForward(t *testing.T) {
	t.Parallel()
	ios, _, _, _ := cmdutil.Test()
	up := start(t, func(ctx context.Context, ready func(string)) error {
		return upstreamRun(&UpstreamOptions{ServeOptions{IO: ios, Listen: "127.0.0.1:0", Context: ctx, Ready: ready}})
	})
	fwd := start(t, func(ctx context.Context, ready func(string)) error {
		return forwardRun(&ForwardOptions{ServeOptions: ServeOptions{IO: ios, Listen: "127.0.0.1:0", Context: ctx, Ready: ready}, To: up})
	})
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	for _, base := range []string{up, fwd} {
		resp, err := client.Get("http://" + base + "/weather?city=Porto")
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || body["city"] != "Porto" {
			t.Errorf("GET %s/weather: %d %v %v", base, resp.StatusCode, body, err)
		}
	}
}

func TestForwardNeedsTo(t *testing.T) {
	t.Parallel()
	f, _ := cmdutil.NewTestFactory()
	for _, args := range [][]string{nil, {"--to", "no-port"}} {
		cmd := NewCmdForward(f, func(*ForwardOptions) error { t.Errorf("runF called with %v", args); return nil })
		cmd.SetArgs(args)
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "--to") {
			t.Errorf("%v: %v", args, err)
		}
	}
}

func TestKeysWaitsForTheChain(t *testing.T) {
	// Not parallel: the 600ms wrong-chain wait must see an answer before its
	// deadline, which more load makes less likely.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := devchain.Start(ctx, devchain.Config{Buyers: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ios, _, _, errOut := cmdutil.Test()
	opts := &KeysOptions{IO: ios, KeyDir: t.TempDir(), ChainID: 1337, TokenName: "USDC", TokenVersion: "2",
		WaitRPC: c.RPCURL, WaitTimeout: 30 * time.Second, Context: ctx}
	if err := keysRun(opts); err != nil {
		t.Fatalf("wait for a running chain: %v", err)
	}
	if !strings.Contains(errOut.String(), "answers (chain id 1337)") {
		t.Errorf("stderr %q", errOut)
	}
	// Another chain id never matches: the wait ends at its timeout.
	opts.ChainID, opts.WaitTimeout = 31337, 600*time.Millisecond
	if err := keysRun(opts); err == nil || !strings.Contains(err.Error(), "want 0x7a69") {
		t.Errorf("wrong chain id: %v", err)
	}
}

// Stopping the forwarder next to a verifier must not cut the settlement
// the verifier is finishing: a request in flight completes, a new
// connection during the drain is still forwarded, and it exits once no
// connection is open.
func TestForwardDrainsOnStop(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-release
		}
		io.WriteString(w, "settled")
	}))
	defer up.Close()
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock() // before up.Close: a failed test must not leave /slow waiting
	ios, _, _, _ := cmdutil.Test()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrc, errc := make(chan string, 1), make(chan error, 1)
	go func() {
		errc <- forwardRun(&ForwardOptions{ServeOptions: ServeOptions{IO: ios, Listen: "127.0.0.1:0", Context: ctx,
			Ready: func(a string) { addrc <- a }}, To: strings.TrimPrefix(up.URL, "http://"), Drain: 20 * time.Second})
	}()
	fwd := "http://" + <-addrc
	client := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	get := func(path string) (string, error) {
		resp, err := client.Get(fwd + path)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	slow := make(chan error, 1)
	go func() {
		body, err := get("/slow")
		if err == nil && body != "settled" {
			err = fmt.Errorf("body %q", body)
		}
		slow <- err
	}()
	<-entered
	cancel() // SIGTERM
	if body, err := get("/fast"); err != nil || body != "settled" {
		t.Fatalf("a new connection while draining: %q %v", body, err)
	}
	select {
	case err := <-errc:
		t.Fatalf("the forwarder exited with a request in flight: %v", err)
	default:
	}
	unblock()
	if err := <-slow; err != nil {
		t.Fatalf("the request in flight when the forwarder was stopped: %v", err)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the forwarder did not exit once no connection was open")
	}
}
