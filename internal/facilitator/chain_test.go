package facilitator

// Tests against the real development chain: a go-ethereum dev node in
// process, serving JSON-RPC over HTTP, with obol's EIP-3009 token deployed.

import (
	"context"
	"crypto/ecdsa"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/obolstack/obol/internal/devchain"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/x402"
)

var (
	dev        *devchain.Chain
	devOnce    sync.Once
	devErr     error
	devStarted bool
)

// needChain starts the package's development chain on first use (one per
// test binary; TestMain closes it).
func needChain(t testing.TB) {
	t.Helper()
	devOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		dev, devErr = devchain.Start(ctx, devchain.Config{Buyers: 5})
		devStarted = devErr == nil
	})
	if devErr != nil {
		t.Fatalf("start the dev chain: %v", devErr)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if devStarted {
		_ = dev.Close()
	}
	os.Exit(code)
}

const price = 1000 // 0.001 USDC

type chainEnv struct {
	srv    *Server
	url    string
	client *Client
	reg    *evm.Registry
	prom   *prometheus.Registry
}

func newChainEnv(t *testing.T, rpcURL string, mod func(*Config)) *chainEnv {
	t.Helper()
	needChain(t)
	reg := evm.NewRegistry()
	dev.Register(reg)
	prom := prometheus.NewRegistry()
	cfg := Config{RPCURL: rpcURL, Chain: "dev", Registry: reg, Key: dev.Facilitator.Key, Registerer: prom,
		RPCTimeout: 10 * time.Second, ReceiptTimeout: 45 * time.Second, ReceiptPoll: 20 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := NewServer(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
	})
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	cl, err := NewClient(hs.URL, WithHTTPClient(&http.Client{Transport: tr}))
	if err != nil {
		t.Fatal(err)
	}
	return &chainEnv{srv: srv, url: hs.URL, client: cl, reg: reg, prom: prom}
}

func devRequirement() x402.Requirement {
	return x402.Requirement{
		Scheme: x402.SchemeExact, Network: dev.CAIP2(), NetworkV1: evm.DevChainName,
		Amount: fmt.Sprint(price), Asset: dev.Token.Address.Hex(), PayTo: dev.Seller.Address.Hex(), MaxTimeoutSeconds: 120,
		Extra:    x402.Extra{Name: dev.Token.EIP712Name, Version: dev.Token.EIP712Version},
		Resource: x402.ResourceInfo{URL: "http://127.0.0.1/paid", Description: "test", MimeType: "application/json"},
	}
}

// signed builds a request in which key pays the requirement; mutate may
// change the authorization and the domain before signing.
func signed(t testing.TB, version int, key *ecdsa.PrivateKey, req x402.Requirement, mutate func(*evm.Authorization, *evm.Domain)) x402.VerifyRequest {
	t.Helper()
	value, _ := new(big.Int).SetString(req.Amount, 10)
	a, err := evm.NewAuthorization(crypto.PubkeyToAddress(key.PublicKey), common.HexToAddress(req.PayTo), value, time.Now(), 120*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	d := dev.Domain()
	if mutate != nil {
		mutate(&a, &d)
	}
	sig, err := evm.Sign(key, d, a)
	if err != nil {
		t.Fatal(err)
	}
	return buildRequest(t, version, req, req, x402.ExactEVMPayload{Signature: hexutil.Encode(sig), Authorization: a.Wire()})
}

func balance(t testing.TB, addr common.Address) *big.Int {
	t.Helper()
	b, err := dev.BalanceOf(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func feePayerNonce(t testing.TB) uint64 {
	t.Helper()
	n, err := dev.Client().PendingNonceAt(context.Background(), dev.Facilitator.Address)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestVerifyAndSettleMoveBalancesBothVersions(t *testing.T) {
	needChain(t)
	env := newChainEnv(t, dev.RPCURL, nil)
	ctx := context.Background()
	for i, version := range []int{x402.Version1, x402.Version2} {
		buyer := dev.Buyers[i]
		vr := signed(t, version, buyer.Key, devRequirement(), nil)
		buyerBefore, sellerBefore := balance(t, buyer.Address), balance(t, dev.Seller.Address)

		v, err := env.client.Verify(ctx, vr)
		if err != nil {
			t.Fatal(err)
		}
		if !v.IsValid || v.Payer != buyer.Address.Hex() {
			t.Fatalf("v%d verify: %+v", version, v)
		}
		s, err := env.client.Settle(ctx, vr)
		if err != nil {
			t.Fatal(err)
		}
		wantNet := dev.CAIP2()
		if version == x402.Version1 {
			wantNet = evm.DevChainName
		}
		if !s.Success || s.Payer != buyer.Address.Hex() || s.Network != wantNet || len(s.Transaction) != 66 {
			t.Fatalf("v%d settle: %+v", version, s)
		}
		rcpt, err := dev.Client().TransactionReceipt(ctx, common.HexToHash(s.Transaction))
		if err != nil {
			t.Fatal(err)
		}
		if rcpt.Status != types.ReceiptStatusSuccessful {
			t.Errorf("receipt status %d", rcpt.Status)
		}
		tx, _, err := dev.Client().TransactionByHash(ctx, rcpt.TxHash)
		if err != nil {
			t.Fatal(err)
		}
		if from, _ := types.Sender(types.LatestSignerForChainID(big.NewInt(dev.ChainID)), tx); from != dev.Facilitator.Address || *tx.To() != dev.Token.Address {
			t.Errorf("tx from %s to %s, want the fee payer to the token", from, tx.To())
		}
		dBuyer := new(big.Int).Sub(buyerBefore, balance(t, buyer.Address))
		dSeller := new(big.Int).Sub(balance(t, dev.Seller.Address), sellerBefore)
		if dBuyer.Int64() != price || dSeller.Int64() != price {
			t.Errorf("v%d: buyer paid %s, seller got %s, want %d each", version, dBuyer, dSeller, price)
		}
	}
	if got := testutil.ToFloat64(env.srv.metrics.Settle.WithLabelValues(ResultSuccess, "")); got != 2 {
		t.Errorf("settle_total{success} = %v, want 2", got)
	}
}

func TestRepeatedSettleAnswersTheSameTransaction(t *testing.T) {
	needChain(t)
	env := newChainEnv(t, dev.RPCURL, nil)
	ctx := context.Background()
	vr := signed(t, x402.Version2, dev.Buyers[2].Key, devRequirement(), nil)
	first, err := env.client.Settle(ctx, vr)
	if err != nil || !first.Success {
		t.Fatalf("first settle: %+v %v", first, err)
	}
	nonce := feePayerNonce(t)
	sellerBefore := balance(t, dev.Seller.Address)

	// Same server (its ledger), then a fresh one, as after a restart (the
	// chain's record): the same transaction, nothing sent.
	other := newChainEnv(t, dev.RPCURL, nil)
	for i, e := range []*chainEnv{env, other} {
		s, err := e.client.Settle(ctx, vr)
		if err != nil {
			t.Fatal(err)
		}
		if !s.Success || s.Transaction != first.Transaction || s.Network != dev.CAIP2() {
			t.Errorf("repeat %d: %+v, want success with %s", i, s, first.Transaction)
		}
		// Verify still refuses it: it is no new payment.
		v, err := e.client.Verify(ctx, vr)
		if err != nil {
			t.Fatal(err)
		}
		if v.IsValid || v.InvalidReason != x402.ReasonNonceAlreadyUsed {
			t.Errorf("verify of a settled authorization: %+v", v)
		}
	}
	if n := feePayerNonce(t); n != nonce {
		t.Errorf("fee payer nonce moved from %d to %d: a transaction was sent for a repeat", nonce, n)
	}
	if balance(t, dev.Seller.Address).Cmp(sellerBefore) != 0 {
		t.Error("seller balance moved on a repeat")
	}
}

func TestSettleUnderAnotherKeyIsRefused(t *testing.T) {
	needChain(t)
	env := newChainEnv(t, dev.RPCURL, nil)
	vr := signed(t, x402.Version2, dev.Buyers[2].Key, devRequirement(), nil)
	k1 := x402.WithIdempotencyKey(context.Background(), "payment-1")
	k2 := x402.WithIdempotencyKey(context.Background(), "payment-2")
	first, err := env.client.Settle(k1, vr)
	if err != nil || !first.Success {
		t.Fatalf("first settle: %+v %v", first, err)
	}
	again, err := env.client.Settle(k1, vr)
	if err != nil || !again.Success || again.Transaction != first.Transaction {
		t.Fatalf("same key again: %+v %v, want %s", again, err, first.Transaction)
	}
	second, err := env.client.Settle(k2, vr)
	if err != nil {
		t.Fatal(err)
	}
	if second.Success || second.ErrorReason != x402.ReasonNonceAlreadyUsed || !strings.Contains(second.ErrorMessage, "another request") {
		t.Fatalf("another key: %+v, want nonce_already_used for another request", second)
	}
}

func TestSettleOfANonceUsedBySomeoneElse(t *testing.T) {
	needChain(t)
	env := newChainEnv(t, dev.RPCURL, nil)
	ctx := context.Background()
	key := dev.Buyers[1].Key
	vr := signed(t, x402.Version2, key, devRequirement(), nil)
	p, _, err := x402.ParseVerifyRequest(vr)
	if err != nil {
		t.Fatal(err)
	}
	nonce := common.HexToHash(p.Exact.Authorization.Nonce)
	// The payer spends the same nonce on a transfer to someone else first.
	elsewhere := devRequirement()
	elsewhere.PayTo = dev.Buyers[0].Address.Hex()
	ve := signed(t, x402.Version2, key, elsewhere, func(a *evm.Authorization, _ *evm.Domain) { a.Nonce = nonce })
	s, err := env.client.Settle(ctx, ve)
	if err != nil || !s.Success {
		t.Fatalf("the other transfer: %+v %v", s, err)
	}
	txs := feePayerNonce(t)
	for _, e := range []*chainEnv{env, newChainEnv(t, dev.RPCURL, nil)} {
		got, err := e.client.Settle(ctx, vr)
		if err != nil {
			t.Fatal(err)
		}
		if got.Success || got.ErrorReason != x402.ReasonNonceAlreadyUsed || !strings.Contains(got.ErrorMessage, s.Transaction) ||
			!strings.Contains(got.ErrorMessage, "not this payment") {
			t.Fatalf("settle of a nonce used elsewhere: %+v, want nonce_already_used naming %s", got, s.Transaction)
		}
	}
	if feePayerNonce(t) != txs {
		t.Error("a transaction was sent for a used nonce")
	}
}

func TestConcurrentDuplicateSettlesSendOneTransaction(t *testing.T) {
	needChain(t)
	env := newChainEnv(t, dev.RPCURL, nil)
	for _, keyed := range []bool{false, true} {
		vr := signed(t, x402.Version2, dev.Buyers[3].Key, devRequirement(), nil)
		nonce := feePayerNonce(t)
		const n = 8
		var wg sync.WaitGroup
		results := make([]*x402.SettleResponse, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				ctx := context.Background()
				if keyed {
					ctx = x402.WithIdempotencyKey(ctx, fmt.Sprint("payment-", i))
				}
				s, err := env.client.Settle(ctx, vr)
				if err != nil {
					t.Error(err)
					return
				}
				results[i] = s
			}(i)
		}
		wg.Wait()
		ok, hashes := 0, map[string]bool{}
		for _, s := range results {
			if s == nil {
				continue
			}
			if s.Success {
				ok++
				hashes[s.Transaction] = true
			} else if s.ErrorReason != x402.ReasonNonceAlreadyUsed && s.ErrorReason != x402.ReasonAuthorizationInFlight {
				t.Errorf("duplicate settle: %+v", s)
			}
		}
		// Without keys every request is the same caller asking again: all
		// learn the one transaction. Under distinct keys only one succeeds.
		want := n
		if keyed {
			want = 1
		}
		if ok != want || len(hashes) != 1 {
			t.Errorf("keyed=%v: %d of %d duplicate settles succeeded with %d hashes, want %d with 1", keyed, ok, n, len(hashes), want)
		}
		if got := feePayerNonce(t); got != nonce+1 {
			t.Errorf("keyed=%v: fee payer sent %d transactions, want 1", keyed, got-nonce)
		}
	}
}

func TestVerifyRejectsOnChain(t *testing.T) {
	needChain(t)
	env := newChainEnv(t, dev.RPCURL, nil)
	ctx := context.Background()
	buyer := dev.Buyers[4]
	poor, err := crypto.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	req := devRequirement()
	cases := []struct {
		name   string
		key    *ecdsa.PrivateKey
		req    func(*x402.Requirement)
		mutate func(*evm.Authorization, *evm.Domain)
		reason string
	}{
		{"wrong domain name", buyer.Key, nil, func(a *evm.Authorization, d *evm.Domain) { d.Name = "USD Coin" }, x402.ReasonInvalidSignature},
		{"wrong domain chain", buyer.Key, nil, func(a *evm.Authorization, d *evm.Domain) { d.ChainID = big.NewInt(84532) }, x402.ReasonInvalidSignature},
		{"expired", buyer.Key, nil, func(a *evm.Authorization, d *evm.Domain) {
			a.ValidBefore = big.NewInt(time.Now().Add(-time.Second).Unix())
		}, x402.ReasonValidBefore},
		{"not yet valid", buyer.Key, nil, func(a *evm.Authorization, d *evm.Domain) { a.ValidAfter = big.NewInt(time.Now().Add(time.Hour).Unix()) }, x402.ReasonValidAfter},
		{"amount above required", buyer.Key, nil, func(a *evm.Authorization, d *evm.Domain) { a.Value = big.NewInt(price + 1) }, x402.ReasonValueMismatch},
		{"amount below required", buyer.Key, nil, func(a *evm.Authorization, d *evm.Domain) { a.Value = big.NewInt(price - 1) }, x402.ReasonValueMismatch},
		{"recipient not payTo", buyer.Key, nil, func(a *evm.Authorization, d *evm.Domain) { a.To = buyer.Address }, x402.ReasonRecipientMismatch},
		{"insufficient balance", poor, nil, nil, x402.ReasonInsufficientFunds},
	}
	nonce := feePayerNonce(t)
	for _, c := range cases {
		for _, version := range []int{x402.Version1, x402.Version2} {
			t.Run(fmt.Sprintf("%s/v%d", c.name, version), func(t *testing.T) {
				r := req
				if c.req != nil {
					c.req(&r)
				}
				vr := signed(t, version, c.key, r, c.mutate)
				v, err := env.client.Verify(ctx, vr)
				if err != nil {
					t.Fatal(err)
				}
				if v.IsValid || v.InvalidReason != c.reason || v.Payer == "" {
					t.Fatalf("verify: %+v, want reason %s with payer", v, c.reason)
				}
				s, err := env.client.Settle(ctx, vr)
				if err != nil {
					t.Fatal(err)
				}
				if s.Success || s.ErrorReason != c.reason || s.Transaction != "" || s.Network == "" {
					t.Fatalf("settle: %+v, want reason %s", s, c.reason)
				}
			})
		}
	}
	if n := feePayerNonce(t); n != nonce {
		t.Errorf("rejected payments sent %d transactions", n-nonce)
	}
}

func TestFiftyConcurrentSettlements(t *testing.T) {
	needChain(t)
	env := newChainEnv(t, dev.RPCURL, nil)
	ctx := context.Background()
	// Ten payers: the five funded buyers and five fresh keys the deployer mints to.
	var keys []*ecdsa.PrivateKey
	for _, b := range dev.Buyers {
		keys = append(keys, b.Key)
	}
	for i := 0; i < 5; i++ {
		k, err := crypto.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		if err := dev.Mint(ctx, crypto.PubkeyToAddress(k.PublicKey), big.NewInt(100*price)); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	const n = 50
	reqs := make([]x402.VerifyRequest, n)
	for i := range reqs {
		reqs[i] = signed(t, 1+i%2, keys[i%len(keys)], devRequirement(), nil)
	}
	sellerBefore := balance(t, dev.Seller.Address)
	nonce := feePayerNonce(t)

	start := time.Now()
	var wg sync.WaitGroup
	results := make([]*x402.SettleResponse, n)
	errs := make([]error, n)
	for i := range reqs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i], errs[i] = env.client.Settle(ctx, reqs[i])
		}(i)
	}
	wg.Wait()
	took := time.Since(start)
	hashes := map[string]bool{}
	for i := range results {
		if errs[i] != nil {
			t.Errorf("settle %d: %v", i, errs[i])
			continue
		}
		if !results[i].Success {
			t.Errorf("settle %d: %+v", i, results[i])
			continue
		}
		hashes[results[i].Transaction] = true
	}
	if len(hashes) != n {
		t.Fatalf("%d distinct transactions, want %d", len(hashes), n)
	}
	nonces := map[uint64]bool{}
	for h := range hashes {
		tx, _, err := dev.Client().TransactionByHash(ctx, common.HexToHash(h))
		if err != nil {
			t.Fatal(err)
		}
		if nonces[tx.Nonce()] {
			t.Errorf("fee payer nonce %d used twice", tx.Nonce())
		}
		nonces[tx.Nonce()] = true
		r, err := dev.Client().TransactionReceipt(ctx, tx.Hash())
		if err != nil || r.Status != types.ReceiptStatusSuccessful {
			t.Errorf("tx %s: receipt %v %v", h, r, err)
		}
	}
	if got := feePayerNonce(t); got != nonce+n {
		t.Errorf("fee payer nonce moved by %d, want %d", got-nonce, n)
	}
	if d := new(big.Int).Sub(balance(t, dev.Seller.Address), sellerBefore); d.Int64() != n*price {
		t.Errorf("seller received %s, want %d", d, n*price)
	}
	t.Logf("%d concurrent settlements in %s", n, took.Round(time.Millisecond))
}

func TestFeePayerNonceResyncsAfterOutsideTransaction(t *testing.T) {
	needChain(t)
	env := newChainEnv(t, dev.RPCURL, nil)
	ctx := context.Background()
	vr := signed(t, x402.Version2, dev.Buyers[0].Key, devRequirement(), nil)
	if s, err := env.client.Settle(ctx, vr); err != nil || !s.Success {
		t.Fatalf("settle: %+v %v", s, err)
	}
	// Another user of the fee-payer key (a second facilitator) takes the
	// next nonce behind the server's back.
	other := newChainEnv(t, dev.RPCURL, nil)
	vr2 := signed(t, x402.Version2, dev.Buyers[1].Key, devRequirement(), nil)
	if s, err := other.client.Settle(ctx, vr2); err != nil || !s.Success {
		t.Fatalf("settle via the other server: %+v %v", s, err)
	}
	vr3 := signed(t, x402.Version2, dev.Buyers[0].Key, devRequirement(), nil)
	s, err := env.client.Settle(ctx, vr3)
	if err != nil || !s.Success {
		t.Fatalf("settle after an outside transaction: %+v %v (nonce too low must resync)", s, err)
	}
}

// RPC failures: the node is down (closed port) or hangs (accepts and never
// answers). Answers must be unexpected_* within the configured timeout,
// without panics or goroutines left behind.
func TestRPCDownOrHanging(t *testing.T) {
	needChain(t)
	const rpcTimeout = 400 * time.Millisecond
	for _, mode := range []string{"down", "hang"} {
		t.Run(mode, func(t *testing.T) {
			checkGoroutines(t)
			target := strings.TrimPrefix(dev.RPCURL, "http://")
			target = strings.TrimSuffix(target, "/")
			proxy := newRPCProxy(t, target)
			env := newChainEnv(t, proxy.URL(), func(c *Config) { c.RPCTimeout = rpcTimeout; c.ReceiptTimeout = 2 * time.Second })
			ctx := context.Background()
			good := signed(t, x402.Version2, dev.Buyers[1].Key, devRequirement(), nil)
			if v, err := env.client.Verify(ctx, good); err != nil || !v.IsValid {
				t.Fatalf("verify through the proxy: %+v %v", v, err)
			}
			switch mode {
			case "down":
				proxy.down()
			case "hang":
				proxy.hang()
				// The cut keep-alive connection would fail fast with EOF;
				// make the next call dial the hanging listener.
				env.srv.node.transport.CloseIdleConnections()
			}
			nonce := feePayerNonce(t)
			for _, op := range []string{OpVerify, OpSettle} {
				start := time.Now()
				var err error
				if op == OpVerify {
					_, err = env.client.Verify(ctx, good)
				} else {
					_, err = env.client.Settle(ctx, good)
				}
				took := time.Since(start)
				var fe *Error
				if !asError(err, &fe) {
					t.Fatalf("%s with the RPC %s: err %v, want *Error", op, mode, err)
				}
				want := x402.ReasonUnexpectedVerifyError
				if op == OpSettle {
					want = x402.ReasonUnexpectedSettleError
				}
				if fe.StatusCode != 500 || fe.Reason != want || !strings.Contains(fe.Message, "eth_") {
					t.Errorf("%s: %+v, want 500 %s naming the RPC method", op, fe, want)
				}
				if mode == "hang" && !strings.Contains(fe.Message, "RPC timeout") {
					t.Errorf("%s: message %q does not say the RPC timed out", op, fe.Message)
				}
				// Bounded by the RPC timeout, with room for a loaded machine.
				if took > rpcTimeout+5*time.Second {
					t.Errorf("%s took %s with an RPC timeout of %s", op, took, rpcTimeout)
				}
				t.Logf("%s, RPC %s: %s after %s", op, mode, fe.Message, took.Round(time.Millisecond))
			}
			if feePayerNonce(t) != nonce {
				t.Error("a transaction was sent")
			}
			if got := testutil.ToFloat64(env.srv.metrics.Settle.WithLabelValues(ResultError, x402.ReasonUnexpectedSettleError)); got != 1 {
				t.Errorf("settle_total{error} = %v", got)
			}
		})
	}
}

func TestNewServerFailsFastWhenRPCIsDownOrHangs(t *testing.T) {
	needChain(t)
	checkGoroutines(t)
	// closed port
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	// a listener that accepts and never answers
	hang, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	defer func() {
		hang.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	reg := evm.NewRegistry()
	dev.Register(reg)
	for _, u := range []string{closed, "http://" + hang.Addr().String()} {
		start := time.Now()
		_, err := NewServer(context.Background(), Config{RPCURL: u, Chain: "dev", Registry: reg, Key: dev.Facilitator.Key, RPCTimeout: 300 * time.Millisecond})
		if err == nil || !strings.Contains(err.Error(), "cannot reach") {
			t.Errorf("%s: err %v", u, err)
		}
		// The 300 ms RPC timeout must bound start-up; 5 s leaves room for a
		// loaded machine under -race while still failing a hang or a
		// default 30 s timeout.
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("%s: NewServer took %s, the RPC timeout is 300ms", u, took)
		}
	}
}

func asError(err error, target **Error) bool {
	fe, ok := err.(*Error)
	if ok {
		*target = fe
	}
	return ok
}

// A settle asked again after the authorization's validBefore (a gate that
// never got the first answer) learns that the payment settled, with its
// transaction, from the ledger and from the chain after a restart; an
// expired authorization that was never used is refused, nothing sent.
func TestSettleAskedAgainAfterValidBefore(t *testing.T) {
	needChain(t)
	var late atomic.Bool
	clock := func(c *Config) {
		c.Now = func() time.Time {
			if late.Load() {
				return time.Now().Add(10 * time.Minute)
			}
			return time.Now()
		}
	}
	env := newChainEnv(t, dev.RPCURL, clock)
	restarted := newChainEnv(t, dev.RPCURL, clock)
	ctx := x402.WithIdempotencyKey(context.Background(), "payment-late")
	vr := signed(t, x402.Version2, dev.Buyers[2].Key, devRequirement(), nil)
	first, err := env.client.Settle(ctx, vr)
	if err != nil || !first.Success {
		t.Fatalf("first settle: %+v %v", first, err)
	}
	unused := signed(t, x402.Version2, dev.Buyers[2].Key, devRequirement(), nil)
	nonce := feePayerNonce(t)

	late.Store(true) // both servers' clocks are now past validBefore
	for i, e := range []*chainEnv{env, restarted} {
		s, err := e.client.Settle(ctx, vr)
		if err != nil {
			t.Fatal(err)
		}
		if !s.Success || s.Transaction != first.Transaction {
			t.Errorf("asked again after validBefore (server %d): %+v, want success with %s", i, s, first.Transaction)
		}
	}
	s, err := env.client.Settle(ctx, unused)
	if err != nil {
		t.Fatal(err)
	}
	if s.Success || s.ErrorReason != x402.ReasonValidBefore {
		t.Errorf("an expired, unused authorization: %+v, want refused with %s", s, x402.ReasonValidBefore)
	}
	if n := feePayerNonce(t); n != nonce {
		t.Errorf("fee payer nonce moved from %d to %d: a transaction was sent after validBefore", nonce, n)
	}
}
