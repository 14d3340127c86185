package e2e

import (
	"encoding/hex"
	"fmt"
	"math/big"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/crypto"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

var (
	nonceLine = regexp.MustCompile(`(?m)^\s*nonce\s+(0x[0-9a-fA-F]{64})\s*$`)
	payerLine = regexp.MustCompile(`(?m)^\s*payer\s+(0x[0-9a-fA-F]{40})\s*$`)
)

// paidCall is one `obol buy pay` of the load.
type paidCall struct {
	ok           bool   // exit 0: answered 200 with the content
	nonce, payer string // "" when nothing was signed
	err          string
}

// stepVerifierPodDelete: paid calls one after another through the
// verifier Service (two replicas); one verifier pod is deleted mid-stream.
// For every call that signed an authorization, answered 200 ⇔ its nonce is
// used on chain (authorizationState), and the seller's balance moved by
// exactly 200s × price: no call was answered 200 without settlement, and
// none was charged without a 200.
func stepVerifierPodDelete(t *testing.T, e *env) {
	verifier := e.serviceURL(t, e.ns, "obol-verifier")
	rpc := e.serviceURL(t, e.ns, "obol-devchain")
	var victim string
	eventually(t, 2*time.Minute, "two running verifier pods (none terminating)", func() error {
		pods, err := e.cluster.Clientset.CoreV1().Pods(e.ns).List(ctx(t), metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=verifier"})
		if err != nil {
			return err
		}
		var live []string
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil {
				live = append(live, p.Name)
			}
		}
		if len(live) != 2 || len(pods.Items) != 2 {
			return fmt.Errorf("%d pods, %d live", len(pods.Items), len(live))
		}
		victim = live[0]
		return nil
	})
	before := balanceOf(t, rpc, sellerAddr)

	var mu sync.Mutex
	var calls []paidCall
	okCount := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, c := range calls {
			if c.ok {
				n++
			}
		}
		return n
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // bounded: at most 200 calls
		defer close(done)
		for i := 0; i < 200; i++ {
			select {
			case <-stop:
				return
			default:
			}
			out, errOut, err := e.obolTry(time.Minute, "buy", "pay", verifier+offerPath+paidCallPath, "--key-file", filepath.Join(e.keyDir, "buyer-3.key"),
				"--chain", "obol-dev", "--max-amount", "0.01")
			c := paidCall{ok: err == nil}
			if m := nonceLine.FindStringSubmatch(errOut); m != nil {
				c.nonce = m[1]
			}
			if m := payerLine.FindStringSubmatch(errOut); m != nil {
				c.payer = m[1]
			}
			if err != nil {
				c.err = fmt.Sprintf("%v: %s", err, strings.TrimSpace(errOut))
			} else if !strings.Contains(out, `"city":"`+paidCity+`"`) {
				c.ok, c.err = false, "exit 0 but not the weather: "+out
			}
			mu.Lock()
			calls = append(calls, c)
			mu.Unlock()
		}
	}()
	waitCalls := func(what string, n int) {
		t.Helper()
		target := okCount() + n
		eventually(t, 2*time.Minute, what, func() error {
			select {
			case <-done:
				return nil
			default:
			}
			if got := okCount(); got < target {
				return fmt.Errorf("%d paid calls so far", got)
			}
			return nil
		})
	}
	waitCalls("5 paid calls before the deletion", 5)
	t.Logf("deleting verifier pod %s with paid calls in flight", victim)
	if err := e.cluster.Clientset.CoreV1().Pods(e.ns).Delete(ctx(t), victim, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Minute, "the deleted pod to be gone and the verifier back to 2 ready", func() error {
		if _, err := e.cluster.Clientset.CoreV1().Pods(e.ns).Get(ctx(t), victim, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("pod %s still there (%v)", victim, err)
		}
		d, err := e.cluster.Clientset.AppsV1().Deployments(e.ns).Get(ctx(t), "obol-verifier", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if d.Status.ReadyReplicas != 2 {
			return fmt.Errorf("%d ready", d.Status.ReadyReplicas)
		}
		return nil
	})
	waitCalls("5 paid calls after the replacement pod is ready", 5)
	close(stop)
	<-done

	after := balanceOf(t, rpc, sellerAddr)
	delta := new(big.Int).Sub(after, before)
	var ok, failedSigned, failedUnsigned, mismatched int
	for i, c := range calls {
		switch {
		case c.ok:
			ok++
		case c.nonce != "":
			failedSigned++
		default:
			failedUnsigned++
		}
		if c.nonce == "" {
			if c.ok {
				t.Errorf("call %d answered 200 but printed no nonce", i)
			}
			continue
		}
		used := authorizationUsed(t, rpc, c.payer, c.nonce)
		if used != c.ok {
			mismatched++
			t.Errorf("call %d: answered 200 = %v but its authorization %s used on chain = %v (%s)", i, c.ok, c.nonce, used, c.err)
		}
	}
	for _, c := range calls {
		if !c.ok {
			t.Logf("failed call: %s", c.err)
		}
	}
	t.Logf("verifier pod deleted under load: %d calls, %d answered 200, %d failed after signing, %d failed before signing; 200 ⇔ settled on chain for all %d signed calls (%d mismatches)",
		len(calls), ok, failedSigned, failedUnsigned, ok+failedSigned, mismatched)
	t.Logf("seller balance %s -> %s: moved %s atomic units = %d × %d", before, after, delta, ok, priceAtomic)
	if delta.Cmp(big.NewInt(int64(ok*priceAtomic))) != 0 {
		t.Errorf("the seller gained %s atomic units for %d calls answered 200, want exactly %d", delta, ok, ok*priceAtomic)
	}
	e.paidCalls += ok
}

// authorizationUsed asks the token whether payer's EIP-3009 nonce is used.
func authorizationUsed(t *testing.T, rpcURL, payer, nonce string) bool {
	t.Helper()
	sel := crypto.Keccak256([]byte("authorizationState(address,bytes32)"))[:4]
	data := "0x" + hex.EncodeToString(sel) + strings.Repeat("0", 24) + strings.ToLower(strings.TrimPrefix(payer, "0x")) + strings.TrimPrefix(nonce, "0x")
	return tokenCall(t, rpcURL, data, "eth_call authorizationState").Sign() != 0
}
