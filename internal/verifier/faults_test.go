package verifier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"

	"github.com/obolstack/obol/internal/devchain"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/facilitator"
	"github.com/obolstack/obol/internal/testenv/wait"
	"github.com/obolstack/obol/internal/token"
	"github.com/obolstack/obol/internal/x402"
)

// The fault matrix: paid calls run in parallel against the real facilitator
// on the dev chain while the facilitator is killed (its memory lost, its
// in-flight settlements cut) or its chain RPC refuses connections. At the
// end every call is checked against the chain: served ⇔ charged.
//
// The dev chain seals one block per transaction, each at least a second
// after its parent, so a burst of 150 settlements runs the chain's clock
// minutes ahead of the wall clock: the route allows 600 s of validity so
// that late authorizations do not expire on chain.
//
// The facilitator here waits 5 s per RPC call and 10 s for a receipt, and
// queues its sends: its worst case is several tens of seconds. The gate's
// facilitatorTimeout of 20 s gives a settle deadline of 80 s, longer than
// that, as the settle deadline must be.

// tcpGate forwards TCP to a target and can refuse for a while: every
// connection, new or open, is cut while refusing.
type tcpGate struct {
	target string
	ln     net.Listener
	mu     sync.Mutex
	refuse bool
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

func newTCPGate(t *testing.T, target string) *tcpGate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &tcpGate{target: target, ln: ln, conns: map[net.Conn]bool{}}
	g.wg.Add(1)
	go g.accept()
	t.Cleanup(func() {
		ln.Close()
		g.cut()
		g.wg.Wait()
	})
	return g
}

func (g *tcpGate) URL() string { return "http://" + g.ln.Addr().String() }

func (g *tcpGate) track(c net.Conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.refuse {
		return false
	}
	g.conns[c] = true
	return true
}

func (g *tcpGate) accept() {
	defer g.wg.Done()
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		if !g.track(c) {
			c.Close()
			continue
		}
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			defer g.drop(c)
			up, err := net.Dial("tcp", g.target)
			if err != nil || !g.track(up) {
				if up != nil {
					up.Close()
				}
				return
			}
			defer g.drop(up)
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
			go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
			<-done
			c.Close()
			up.Close()
			<-done
		}()
	}
}

func (g *tcpGate) drop(c net.Conn) {
	c.Close()
	g.mu.Lock()
	delete(g.conns, c)
	g.mu.Unlock()
}

func (g *tcpGate) cut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for c := range g.conns {
		c.Close()
	}
}

func (g *tcpGate) setRefuse(on bool) {
	g.mu.Lock()
	g.refuse = on
	g.mu.Unlock()
	if on {
		g.cut()
	}
}

// restartableFacilitator is the real facilitator server on a fixed
// loopback address; kill drops it like kill -9 would (open connections cut,
// in-flight settlements aborted, its in-memory ledger gone) and start
// brings up a fresh process on the same address.
type restartableFacilitator struct {
	t      *testing.T
	addr   string
	rpcURL string
	chain  *devchain.Chain
	reg    *evm.Registry
	// holdFirst holds the answer to the first /settle (after the
	// facilitator settled) until a second /settle arrives.
	holdFirst bool
	second    chan struct{}
	// holdAll, when set, holds every /settle answer (after the
	// facilitator settled) until it is closed.
	holdAll atomic.Pointer[chan struct{}]
	// receiptGaveUp is closed when the facilitator first logs that it
	// gave up waiting for a settlement's receipt.
	receiptGaveUp *logEvent

	mu      sync.Mutex
	srv     *http.Server
	fs      *facilitator.Server
	settles atomic.Int64
}

func newRestartableFacilitator(t *testing.T, chain *devchain.Chain, reg *evm.Registry, rpcURL string) *restartableFacilitator {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &restartableFacilitator{t: t, addr: ln.Addr().String(), rpcURL: rpcURL, chain: chain, reg: reg, second: make(chan struct{}),
		receiptGaveUp: newLogEvent("settle failed", "message", "no receipt within")}
	f.serve(ln)
	t.Cleanup(f.kill)
	return f
}

// logEvent is a slog handler that closes Seen at the first record with the
// given message whose attribute attr contains text.
type logEvent struct {
	msg, attr, text string
	once            *sync.Once
	Seen            chan struct{}
}

func newLogEvent(msg, attr, text string) *logEvent {
	return &logEvent{msg: msg, attr: attr, text: text, once: &sync.Once{}, Seen: make(chan struct{})}
}

func (e *logEvent) Enabled(context.Context, slog.Level) bool { return true }
func (e *logEvent) WithAttrs([]slog.Attr) slog.Handler       { return e }
func (e *logEvent) WithGroup(string) slog.Handler            { return e }
func (e *logEvent) Handle(_ context.Context, r slog.Record) error {
	if r.Message != e.msg {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == e.attr && strings.Contains(a.Value.String(), e.text) {
			e.once.Do(func() { close(e.Seen) })
			return false
		}
		return true
	})
	return nil
}

func (f *restartableFacilitator) URL() string { return "http://" + f.addr }

func (f *restartableFacilitator) serve(ln net.Listener) {
	fs, err := facilitator.NewServer(context.Background(), facilitator.Config{RPCURL: f.rpcURL, Chain: f.chain.CAIP2(), Registry: f.reg,
		Key: f.chain.Facilitator.Key, RPCTimeout: 5 * time.Second, ReceiptTimeout: 10 * time.Second,
		Logger: slog.New(f.receiptGaveUp)})
	if err != nil {
		ln.Close()
		f.t.Fatalf("start facilitator: %v", err)
	}
	h := fs.Handler()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/settle" {
			h.ServeHTTP(w, r)
			return
		}
		n := f.settles.Add(1)
		if n == 2 && f.second != nil {
			close(f.second)
		}
		if hold := f.holdAll.Load(); hold != nil {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			select {
			case <-*hold:
			case <-r.Context().Done():
				return // the gate gave up on this answer
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
			return
		}
		if n != 1 || !f.holdFirst {
			h.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		<-f.second // the gate gave up waiting and asked again
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})}
	f.mu.Lock()
	f.srv, f.fs = srv, fs
	f.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

func (f *restartableFacilitator) kill() {
	f.mu.Lock()
	srv, fs := f.srv, f.fs
	f.srv, f.fs = nil, nil
	f.mu.Unlock()
	if srv == nil {
		return
	}
	srv.Close() // listener and every connection, at once
	fs.Close()  // in-flight settlements lose their node connection
}

func (f *restartableFacilitator) restart() {
	f.kill()
	// The kernel releases the port asynchronously: listen as soon as it can.
	var ln net.Listener
	err := wait.Poll(time.Second, func() (err error) {
		ln, err = net.Listen("tcp", f.addr)
		return err
	})
	if err != nil {
		f.t.Fatalf("restart facilitator on %s: %v", f.addr, err)
	}
	f.serve(ln)
}

type paidCall struct {
	nonce   [32]byte
	served  bool
	status  int
	body    string
	err     error
	pending int // settlement_pending answers before the last
}

// send sends the paid call once.
func (r *faultRig) send(client *http.Client, name, value string) (*http.Response, []byte, error) {
	hr, _ := http.NewRequest(http.MethodGet, r.gate.URL+"/joke", nil)
	hr.Header.Set(name, value)
	res, err := client.Do(hr)
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	return res, body, err
}

// retryAfter is the pause a settlement_pending answer asks for.
func retryAfter(res *http.Response) time.Duration {
	n, err := strconv.Atoi(res.Header.Get("Retry-After"))
	if err != nil || n <= 0 {
		return time.Second
	}
	return time.Duration(n) * time.Second
}

type faultRig struct {
	chain  *devchain.Chain
	reg    *evm.Registry
	rpc    *tcpGate
	fac    *restartableFacilitator
	up     *upstream
	gate   *httptest.Server
	srv    *Server
	seller common.Address
	log    syncBuffer
	// firstAnswers counts the burst's calls that got their first answer.
	firstAnswers atomic.Int64
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func startFaultRig(t *testing.T, facilitatorTimeout string) *faultRig {
	t.Helper()
	if testing.Short() {
		t.Skip("fault test skipped with -short")
	}
	ctx := context.Background()
	chain, err := devchain.Start(ctx, devchain.Config{Buyers: 1})
	if err != nil {
		t.Fatalf("start dev chain: %v", err)
	}
	t.Cleanup(func() { _ = chain.Close() })
	reg := evm.NewRegistry()
	chain.Register(reg)
	r := &faultRig{chain: chain, reg: reg, up: newUpstream(t), seller: chain.Seller.Address}
	r.rpc = newTCPGate(t, strings.TrimPrefix(chain.RPCURL, "http://"))
	r.fac = newRestartableFacilitator(t, chain, reg, r.rpc.URL())
	r.srv, err = New(Options{
		NewFacilitator: func(u string) (Facilitator, error) { return facilitator.NewClient(u) },
		Registry:       reg,
		Logger:         slog.New(slog.NewTextHandler(&r.log, &slog.HandlerOptions{Level: slog.LevelWarn})),
		ClassifyFacilitatorError: func(err error) bool {
			var fe *facilitator.Error
			return errors.As(err, &fe) && fe.Temporary
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	doc := `payTo: ` + r.seller.Hex() + `
chain: obol-dev
facilitatorURL: ` + r.fac.URL() + `
facilitatorTimeout: ` + facilitatorTimeout + `
maxTimeoutSeconds: 600
upstream: ` + r.up.URL + `
routes:
  - pattern: /joke
    price: "0.001"
`
	if err := r.srv.ApplyConfig(compileYAML(t, reg, doc)); err != nil {
		t.Fatal(err)
	}
	r.gate = httptest.NewServer(r.srv.Handler())
	t.Cleanup(r.gate.Close)
	return r
}

// burst runs n paid calls in parallel; during(i) is called as call i is
// about to be sent.
func (r *faultRig) burst(t *testing.T, n int) []paidCall {
	t.Helper()
	req := challenge(t, r.srv.Handler(), "/joke")
	b := &buyer{key: r.chain.Buyers[0].Key}
	calls := make([]paidCall, n)
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 5 * time.Minute}
	for i := range calls {
		name, value := b.pay(t, r.reg, x402.Version2, req)
		h := http.Header{}
		h.Set(name, value)
		p, err := x402.PaymentFromHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		auth, err := evm.AuthorizationFromWire(p.Exact.Authorization)
		if err != nil {
			t.Fatal(err)
		}
		calls[i].nonce = auth.Nonce
		wg.Add(1)
		go func(c *paidCall) {
			defer wg.Done()
			// A buyer asks again, with the same payment, while the
			// gate answers settlement_pending.
			for first := true; ; first = false {
				res, body, err := r.send(client, name, value)
				if first {
					r.firstAnswers.Add(1)
				}
				if err != nil {
					c.err = err
					return
				}
				c.status, c.body = res.StatusCode, string(body)
				if res.StatusCode == http.StatusServiceUnavailable && strings.Contains(c.body, ReasonSettlementPending) && c.pending < 100 {
					c.pending++
					time.Sleep(retryAfter(res)) // the buyer's pause, as the gate asked
					continue
				}
				if sr, err := x402.DecodeSettleResponse(x402.HeaderPaymentResponse, res.Header.Get(x402.HeaderPaymentResponse)); err == nil && !sr.Success {
					c.body += " (" + sr.ErrorMessage + ")"
				}
				c.served = res.StatusCode == http.StatusOK && string(body) == `{"weather":"sunny"}`
				return
			}
		}(&calls[i])
	}
	wg.Wait()
	return calls
}

// reconcile waits until the fee payer has no pending transaction, then
// checks every call's nonce on chain.
func (r *faultRig) reconcile(t *testing.T, calls []paidCall) (servedCharged, chargedNotServed, servedNotCharged, neither int) {
	t.Helper()
	ctx := context.Background()
	ec := r.chain.Client()
	wait.Until(t, 30*time.Second, "the fee payer's transactions to be mined", func() bool {
		p, err1 := ec.PendingNonceAt(ctx, r.chain.Facilitator.Address)
		l, err2 := ec.NonceAt(ctx, r.chain.Facilitator.Address, nil)
		return err1 == nil && err2 == nil && p == l
	})
	from := r.chain.Buyers[0].Address
	tokenAddr := r.chain.Token.Address
	for _, c := range calls {
		data, err := token.PackAuthorizationState(from, c.nonce)
		if err != nil {
			t.Fatal(err)
		}
		out, err := ec.CallContract(ctx, ethereum.CallMsg{To: &tokenAddr, Data: data}, nil)
		if err != nil {
			t.Fatal(err)
		}
		charged, err := token.UnpackBool(out)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case c.served && charged:
			servedCharged++
		case charged:
			chargedNotServed++
			t.Logf("charged, not served: nonce 0x%x: status %d err %v", c.nonce[:4], c.status, c.err)
		case c.served:
			servedNotCharged++
			t.Logf("served, not charged: nonce 0x%x", c.nonce[:4])
		default:
			neither++
		}
	}
	return
}

func reportFault(t *testing.T, name string, calls []paidCall, sc, cns, snc, neither int) {
	t.Helper()
	statuses := map[int]int{}
	pending, pendingCalls := 0, 0
	for _, c := range calls {
		pending += c.pending
		if c.pending > 0 {
			pendingCalls++
		}
		if statuses[c.status] == 0 && c.status != http.StatusOK {
			t.Logf("first %d: %s %v", c.status, c.body, c.err)
		}
		statuses[c.status]++
	}
	t.Logf("%s: %d calls: served+charged %d, charged-not-served %d, served-not-charged %d, neither %d; final statuses %v; %d calls answered settlement_pending first (%d such answers)",
		name, len(calls), sc, cns, snc, neither, statuses, pendingCalls, pending)
	if cns != 0 || snc != 0 {
		t.Errorf("%s: %d charged-not-served, %d served-not-charged: want 0 and 0", name, cns, snc)
	}
}

// sentTxs counts the settlement transactions the fee payer has sent (the
// node has them, pending or mined).
func (r *faultRig) sentTxs(t *testing.T) func() uint64 {
	ec := r.chain.Client()
	base, err := ec.PendingNonceAt(context.Background(), r.chain.Facilitator.Address)
	if err != nil {
		t.Fatal(err)
	}
	return func() uint64 {
		n, err := ec.PendingNonceAt(context.Background(), r.chain.Facilitator.Address)
		if err != nil {
			return 0
		}
		return n - base
	}
}

// waitSent waits until at least n settlement transactions were sent, for
// at most 30 s (a burst whose calls all fail sends fewer).
func waitSent(sent func() uint64, n uint64) {
	_ = wait.Poll(30*time.Second, func() error {
		if sent() < n {
			return errors.New("not yet")
		}
		return nil
	})
}

func TestFaultFacilitatorKilledMidBurst(t *testing.T) {
	r := startFaultRig(t, "20s")
	const n = 150
	sent := r.sentTxs(t)
	// Kill and restart the facilitator three times as settlement
	// transactions go out: those sent but not yet answered are cut.
	var killed int
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, at := range []uint64{10, 50, 90} {
			waitSent(sent, at)
			r.fac.restart()
			killed++
		}
	}()
	calls := r.burst(t, n)
	<-done
	sc, cns, snc, neither := r.reconcile(t, calls)
	reportFault(t, fmt.Sprintf("facilitator killed %d times", killed), calls, sc, cns, snc, neither)
}

func TestFaultChainRPCRefusedMidBurst(t *testing.T) {
	r := startFaultRig(t, "20s")
	const n = 120
	sent := r.sentTxs(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		waitSent(sent, 20)
		// The chain stays unreachable until the facilitator has given up
		// waiting for a receipt (10 s here, 45 s by default), as in the
		// field report.
		r.rpc.setRefuse(true)
		select {
		case <-r.fac.receiptGaveUp.Seen:
		case <-time.After(time.Minute):
			t.Error("the facilitator never gave up on a receipt while the chain refused: the fault was not exercised")
		}
		r.rpc.setRefuse(false)
	}()
	calls := r.burst(t, n)
	<-done
	sc, cns, snc, neither := r.reconcile(t, calls)
	reportFault(t, "chain RPC refused", calls, sc, cns, snc, neither)
	if t.Failed() {
		lines := strings.Split(r.log.String(), "\n")
		t.Logf("gate log (%d lines), first and last:\n%s\n...\n%s", len(lines), strings.Join(lines[:min(8, len(lines))], "\n"), strings.Join(lines[max(0, len(lines)-8):], "\n"))
	}
}

// A facilitator that holds its settle answer past the gate's first
// deadline: the gate asks again, learns the same transaction, and the buyer
// gets the answer once; exactly one transfer.
func TestFaultHeldSettleAnswer(t *testing.T) {
	r := startFaultRig(t, "2s")
	r.fac.holdFirst = true
	ctx := context.Background()
	sent := r.sentTxs(t)
	sellerBefore, err := r.chain.BalanceOf(ctx, r.seller)
	if err != nil {
		t.Fatal(err)
	}
	calls := r.burst(t, 1)
	c := calls[0]
	if !c.served {
		t.Fatalf("held settle answer: %d %s %v, want the answer once the transfer is confirmed", c.status, c.body, c.err)
	}
	if n := r.fac.settles.Load(); n < 2 {
		t.Fatalf("the gate asked %d times, want again after its first deadline", n)
	}
	sellerAfter, err := r.chain.BalanceOf(ctx, r.seller)
	if err != nil {
		t.Fatal(err)
	}
	if d := new(big.Int).Sub(sellerAfter, sellerBefore); d.Int64() != 1000 || sent() != 1 {
		t.Fatalf("seller received %s in %d transactions, want 1000 in exactly 1", d, sent())
	}
	sc, cns, snc, neither := r.reconcile(t, calls)
	reportFault(t, "settle answer held", calls, sc, cns, snc, neither)
}

// A facilitator that settles on chain but whose answers never reach the
// gate within its settle deadline (held, as a facilitator whose settle
// queue outlasts the deadline would): the gate keeps the answer pending,
// keeps asking, and the buyer who sends the same request with the same
// payment again gets it once the settlement is known. Served once,
// charged once, the upstream called once.
func TestFaultSettleOutcomeUnknownPastDeadline(t *testing.T) {
	r := startFaultRig(t, "1s") // settle deadline 4 s
	release := make(chan struct{})
	r.fac.holdAll.Store(&release)
	ctx := context.Background()
	sent := r.sentTxs(t)
	sellerBefore, err := r.chain.BalanceOf(ctx, r.seller)
	if err != nil {
		t.Fatal(err)
	}
	req := challenge(t, r.srv.Handler(), "/joke")
	name, value := (&buyer{key: r.chain.Buyers[0].Key}).pay(t, r.reg, x402.Version2, req)
	client := &http.Client{Timeout: time.Minute}

	res, body, err := r.send(client, name, value)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), `"reason":"`+ReasonSettlementPending+`"`) || res.Header.Get("Retry-After") == "" {
		t.Fatalf("outcome unknown past the deadline: %d Retry-After %q %s, want 503 settlement_pending with Retry-After", res.StatusCode, res.Header.Get("Retry-After"), body)
	}
	if n := sent(); n != 1 {
		t.Fatalf("%d settlement transactions sent, want 1 (the facilitator settled; only its answer is held)", n)
	}
	// Still unknown: asking again is answered the same, nothing served.
	res, body, err = r.send(client, name, value)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), ReasonSettlementPending) {
		t.Fatalf("asked again while unknown: %d %s, want 503 settlement_pending", res.StatusCode, body)
	}

	close(release) // the facilitator's answers reach the gate again
	var paid *http.Response
	wait.Until(t, time.Minute, "the pending payment to be answered", func() bool {
		res, body, err = r.send(client, name, value)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(body), ReasonSettlementPending) {
			return false
		}
		paid = res
		return true
	})
	if paid.StatusCode != http.StatusOK || string(body) != `{"weather":"sunny"}` {
		t.Fatalf("once settled: %d %s, want 200 and the kept answer", paid.StatusCode, body)
	}
	sr, err := x402.DecodeSettleResponse(x402.HeaderPaymentResponse, paid.Header.Get(x402.HeaderPaymentResponse))
	if err != nil || !sr.Success || sr.Transaction == "" {
		t.Fatalf("payment response of the collected answer: %+v %v, want success with the transaction", sr, err)
	}
	sellerAfter, err := r.chain.BalanceOf(ctx, r.seller)
	if err != nil {
		t.Fatal(err)
	}
	if d := new(big.Int).Sub(sellerAfter, sellerBefore); d.Int64() != 1000 || sent() != 1 {
		t.Fatalf("seller received %s in %d transactions, want 1000 in exactly 1", d, sent())
	}
	if hits := r.up.hits.Load(); hits != 1 {
		t.Fatalf("upstream called %d times, want once: the kept answer is served", hits)
	}
	// Answered once: the same payment again is a replay.
	res, body, err = r.send(client, name, value)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusPaymentRequired || r.up.hits.Load() != 1 {
		t.Fatalf("the collected payment again: %d %s (upstream hits %d), want 402 and no upstream call", res.StatusCode, body, r.up.hits.Load())
	}
	if n := r.srv.pending.unknown(); n != 0 {
		t.Fatalf("%d payments still pending, want 0", n)
	}
}

// The same for a burst: every settle answer is held past the deadline
// until every call got its first answer (settlement_pending for all that
// were verified), then released. Each buyer asks again with its payment
// until answered: served ⇔ charged for all of them.
func TestFaultSettleAnswersHeldPastDeadlineBurst(t *testing.T) {
	r := startFaultRig(t, "5s") // settle deadline 20 s
	release := make(chan struct{})
	r.fac.holdAll.Store(&release)
	const n = 40
	go func() {
		_ = wait.Poll(3*time.Minute, func() error {
			if k := r.firstAnswers.Load(); k < n {
				return fmt.Errorf("%d first answers", k)
			}
			return nil
		})
		close(release)
	}()
	calls := r.burst(t, n)
	sc, cns, snc, neither := r.reconcile(t, calls)
	reportFault(t, "settle answers held past the settle deadline", calls, sc, cns, snc, neither)
	pending := 0
	for _, c := range calls {
		if c.pending > 0 {
			pending++
			if !c.served {
				t.Errorf("a pending call ended %d %s, want served", c.status, c.body)
			}
		}
	}
	if pending == 0 {
		t.Error("no call was answered settlement_pending: the fault was not exercised")
	}
}

// The chain RPC refused for longer than the gate's settle deadline, once
// settlement transactions went out: the facilitator cannot learn their
// receipts, the gate keeps those payments pending, and once the chain is
// back every buyer who asks again gets the answer. Calls that arrive
// during the outage are refused at verify, not charged.
func TestFaultChainRPCRefusedPastSettleDeadline(t *testing.T) {
	r := startFaultRig(t, "2s") // settle deadline 8 s; the facilitator's receipt wait is 10 s
	const n = 40
	sent := r.sentTxs(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		waitSent(sent, 5)
		r.rpc.setRefuse(true)
		err := wait.Poll(2*time.Minute, func() error {
			if r.srv.pending.unknown() == 0 {
				return errors.New("no payment pending yet")
			}
			return nil
		})
		if err != nil {
			t.Error("no payment went pending while the chain refused: the fault was not exercised")
		}
		r.rpc.setRefuse(false)
	}()
	calls := r.burst(t, n)
	<-done
	sc, cns, snc, neither := r.reconcile(t, calls)
	reportFault(t, "chain RPC refused past the settle deadline", calls, sc, cns, snc, neither)
	for _, c := range calls {
		if c.pending > 0 && !c.served {
			t.Errorf("a pending call ended %d %s, want served", c.status, c.body)
		}
	}
}
