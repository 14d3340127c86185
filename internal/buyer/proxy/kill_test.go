package proxy

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ethereum/go-ethereum/common/hexutil"

	"github.com/obolstack/obol/internal/buyer/buyertest"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/x402"
)

// With OBOL_TEST_PROXY=<config dir>\t<state path> the test binary is a
// buyer proxy process: it prints its address and serves until killed.
func TestMain(m *testing.M) {
	if v := os.Getenv("OBOL_TEST_PROXY"); v != "" {
		dir, state, _ := strings.Cut(v, "\t")
		st, err := LoadState(state)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		s, err := New(Options{ConfigDir: dir, State: st, Registry: evm.NewRegistry()})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			os.Exit(1)
		}
		fmt.Println(ln.Addr().String())
		_ = http.Serve(ln, s.Handler())
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// The proxy is SIGKILLed mid-traffic again and again. After each restart
// it must never send an authorization twice (the seller, checking nonces
// like a facilitator, refuses none) and must have lost no spend: every
// payment the seller received is in the state.
func TestSIGKILLMidTrafficReusesNothingAndLosesNoSpend(t *testing.T) {
	t.Parallel()
	const rounds, perRound, workers = 6, 12, 8
	s, _ := buyertest.New(t, x402.Version2, buyertest.USDCBaseSepolia("1000", seller))
	paid := make(chan struct{}, rounds*(perRound+workers)*4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.ServeHTTP(w, r)
		if r.Header.Get(x402.HeaderPaymentSignature) != "" {
			select {
			case paid <- struct{}{}:
			default:
			}
		}
	}))
	defer srv.Close()
	dir, state := t.TempDir(), filepath.Join(t.TempDir(), "state.json")
	writePool(t, dir, "a", srv.URL, rounds*(perRound+workers)*2, nil)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; round < rounds; round++ {
		cmd := exec.Command(self)
		cmd.Env = append(os.Environ(), "OBOL_TEST_PROXY="+dir+"\t"+state)
		out, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		if !sc.Scan() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("round %d: the proxy did not start", round)
		}
		addr := sc.Text()
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					resp, err := http.Get("http://" + addr + "/upstream/a/x")
					if err != nil {
						return // killed
					}
					resp.Body.Close()
				}
			}()
		}
		for i := 0; i < perRound; i++ {
			<-paid
		}
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		wg.Wait()
	}

	st, err := LoadState(state)
	if err != nil {
		t.Fatal(err)
	}
	accepted, reused := 0, 0
	for _, p := range s.Payments() {
		switch p.Reason {
		case "":
			accepted++
		case x402.ReasonNonceAlreadyUsed:
			reused++
		default:
			t.Errorf("seller refused a payment: %s", p.Reason)
		}
		if !st.Used(p.From.Hex(), hexutil.Encode(p.Nonce[:])) {
			t.Errorf("the seller received authorization %x, but the state has no record of it (lost spend)", p.Nonce)
		}
	}
	taken, _, _ := st.Counts("a")
	t.Logf("%d kills: seller accepted %d payments, %d reused authorizations; state records %d taken", rounds, accepted, reused, taken)
	if reused != 0 {
		t.Fatalf("%d authorizations were sent twice", reused)
	}
	if taken < accepted {
		t.Fatalf("state records %d taken, the seller accepted %d", taken, accepted)
	}
}
