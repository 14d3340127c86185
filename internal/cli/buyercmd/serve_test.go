package buyercmd_test

import (
	"bufio"
	"context"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	"sigs.k8s.io/yaml"

	"github.com/obolstack/obol/internal/buyer/buyertest"
	"github.com/obolstack/obol/internal/buyer/proxy"
	"github.com/obolstack/obol/internal/cli/root"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/x402"
)

// The test binary doubles as `obol`: with OBOL_TEST_MAIN=1 it runs its arguments the way cmd/obol does (one signal context).
func TestMain(m *testing.M) {
	if os.Getenv("OBOL_TEST_MAIN") == "1" {
		ctx, stop := root.SignalContext()
		code := root.MainContext(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

var payTo = common.HexToAddress("0x209693Bc6afc0C5328bA36FaF03C514EF312287C")

// obol starts this test binary as `obol args...` and returns the process and
// the proxy's address, read from its "listening on" line.
func obol(t *testing.T, args ...string) (*exec.Cmd, string) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), "OBOL_TEST_MAIN=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		if _, rest, ok := strings.Cut(line, "buyer proxy listening on http://"); ok {
			addr, _, _ := strings.Cut(rest, " ")
			go func() { _, _ = io.Copy(io.Discard, stderr) }()
			return cmd, addr
		}
	}
	t.Fatalf("obol %s exited before listening", strings.Join(args, " "))
	return nil, ""
}

// A rollout sends SIGTERM while a paid request is in flight: the proxy stops
// accepting, the request finishes (the caller gets the seller's answer, the
// state records it settled, not pending) and the process exits 0.
func TestSIGTERMDrainsPaidRequestInFlight(t *testing.T) {
	s, _ := buyertest.New(t, x402.Version2, buyertest.USDCBaseSepolia("1000", payTo))
	paidArrived, release := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(x402.HeaderPaymentSignature) != "" {
			close(paidArrived)
			<-release
		}
		s.ServeHTTP(w, r)
	}))
	defer srv.Close()
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock() // before srv.Close, which waits for the handler
	dir, state := t.TempDir(), filepath.Join(t.TempDir(), "state.json")
	key, _ := crypto.GenerateKey()
	tok, _ := evm.NewRegistry().Token("base-sepolia", "")
	auths, err := proxy.PreSign(key, tok, 84532, payTo, big.NewInt(1000), 2, time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := yaml.Marshal(proxy.UpstreamConfig{Name: "weather", Endpoint: srv.URL, Network: "base-sepolia", PayTo: payTo.Hex(),
		Asset: tok.Address.Hex(), Price: "1000", EIP712Name: "USDC", EIP712Version: "2", PreSignedAuths: auths})
	if err := os.WriteFile(filepath.Join(dir, "weather.yaml"), b, 0o600); err != nil {
		t.Fatal(err)
	}

	cmd, addr := obol(t, "buyer", "serve", "--config-dir", dir, "--state", state, "--listen", "127.0.0.1:0")
	type answer struct {
		code int
		body string
		err  error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/upstream/weather/forecast")
		if err != nil {
			answered <- answer{err: err}
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answered <- answer{code: resp.StatusCode, body: string(body)}
	}()
	<-paidArrived
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// It stops accepting while the paid request is still running.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatal("still accepting connections 20s after SIGTERM")
			}
			break
		}
		c.Close()
		select {
		case err := <-exited:
			t.Fatalf("the process exited (%v) with a paid request in flight", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	unblock()
	a := <-answered
	if a.err != nil || a.code != 200 || !strings.Contains(a.body, "sunny") {
		t.Fatalf("the in-flight paid request got %d %q %v; want the seller's answer", a.code, a.body, a.err)
	}
	if err := <-exited; err != nil {
		t.Fatalf("exit: %v", err)
	}
	st, err := proxy.LoadState(state)
	if err != nil {
		t.Fatal(err)
	}
	if taken, settled, _ := st.Counts("weather"); taken != 1 || settled != 1 {
		t.Fatalf("state after the rollout: %d taken, %d settled; want 1, 1 (no pending entry)", taken, settled)
	}
}
