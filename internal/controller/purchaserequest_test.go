package controller_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/obolstack/obol/internal/buyer/buyertest"
	"github.com/obolstack/obol/internal/buyer/proxy"
	"github.com/obolstack/obol/internal/cli/buy"
	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/controller"
	"github.com/obolstack/obol/internal/evm"
	obolkube "github.com/obolstack/obol/internal/kube"
	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
	"github.com/obolstack/obol/internal/purchase"
	"github.com/obolstack/obol/internal/x402"
)

// The buy side end to end on a real API server: `obol buy create` makes a
// PurchaseRequest with caps, the controller writes the buyer's config, the
// proxy pays from it, the status counts move, a price change is flagged
// PricingMismatch and blocks refills, and deletion removes the config.
func TestPurchaseRequestLifecycle(t *testing.T) {
	ns, c := setup(t)
	ctx := context.Background()
	payTo := common.HexToAddress("0x209693Bc6afc0C5328bA36FaF03C514EF312287C")
	seller, sellerSrv := buyertest.New(t, x402.Version2, buyertest.USDCBaseSepolia("1000", payTo))

	keyFile := filepath.Join(t.TempDir(), "buyer.key")
	key, _ := crypto.GenerateKey()
	if err := evm.WriteKeyFile(keyFile, key); err != nil {
		t.Fatal(err)
	}

	// obol buy create weather --count 3 --max-total 4 --max-spend-per-day 0.002 ...
	f, ios := cmdutil.NewTestFactory()
	f.Global.Namespace = ns
	var created *buy.CreateOptions
	cmd := buy.NewCmdCreate(f, func(o *buy.CreateOptions) error { created = o; return nil })
	cmd.SetArgs([]string{"weather", "--endpoint", sellerSrv.URL, "--count", "3", "--key-file", keyFile,
		"--max-amount", "0.01", "--max-total", "4", "--max-spend-per-day", "0.002", "--auto-refill", "--threshold", "2", "--dev-stack", ""})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	created.Kube = obolkube.Options{Config: kube.Config, Namespace: ns}
	created.NewClient = func() (client.Client, error) { return c, nil }
	created.Registry = evm.NewRegistry()
	if err := buy.CreateRun(ctx, created); err != nil {
		t.Fatalf("buy create: %v\n%s", err, ios.ErrOut)
	}
	var pr v1alpha1.PurchaseRequest
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "weather"}, &pr); err != nil {
		t.Fatal(err)
	}
	if ar := pr.Spec.AutoRefill; ar == nil || ar.MaxTotal != 4 || ar.MaxSpendPerDay != "2000" || len(pr.Spec.PreSignedAuths) != 3 || pr.Spec.Payment.Price != "1000" {
		t.Fatalf("spec: %+v autoRefill %+v", pr.Spec.Payment, pr.Spec.AutoRefill)
	}

	// The buyer proxy, reading its ConfigMap through the API as in the
	// chart (obol buyer serve --config-map): the controller's write and its
	// POST /admin/reload reach it within the same reconcile.
	buyerNS := kube.NewNamespace(t)
	cs, err := kubernetes.NewForConfig(kube.Config)
	if err != nil {
		t.Fatal(err)
	}
	src := &proxy.ConfigMapSource{Client: cs, Namespace: buyerNS, Name: controller.DefaultBuyerConfigMap, Registry: evm.NewRegistry()}
	st, _ := proxy.LoadState(filepath.Join(t.TempDir(), "state.json"))
	px, err := proxy.New(proxy.Options{Load: src.Load, State: st, Registry: evm.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	buyerSrv := httptest.NewServer(px.Handler())
	defer buyerSrv.Close()
	r := &controller.PurchaseRequestReconciler{Client: c, Registry: evm.NewRegistry(), BuyerNamespace: buyerNS, BuyerURL: buyerSrv.URL}
	req := ctrl.Request{NamespacedName: client.ObjectKey{Namespace: ns, Name: "weather"}}
	reconcile := func() {
		t.Helper()
		if _, err := r.Reconcile(ctx, req); err != nil {
			t.Fatalf("reconcile: %v", err)
		}
		if err := c.Get(ctx, req.NamespacedName, &pr); err != nil && !strings.Contains(err.Error(), "not found") {
			t.Fatal(err)
		}
	}
	reconcile()
	if cond := meta.FindStatusCondition(pr.Status.Conditions, purchase.ConditionBuyerConfigured); cond == nil || cond.Reason != "Loaded" {
		t.Fatalf("after one reconcile the proxy must have loaded the request (reason Loaded): %+v", cond)
	}
	// Signed for the seller's maxTimeoutSeconds (60 s), which the status shows.
	if pr.Status.ValidUntil == nil || pr.Status.NextExpiry == nil || pr.Status.ValidUntil.Time.After(time.Now().Add(61*time.Second)) ||
		pr.Status.ValidUntil.Time.Before(time.Now().Add(30*time.Second)) {
		t.Fatalf("status validUntil %v nextExpiry %v: want about a minute ahead", pr.Status.ValidUntil, pr.Status.NextExpiry)
	}
	if !hasCond(pr.Status.Conditions, purchase.ConditionPricingMismatch, metav1.ConditionFalse) || !hasCond(pr.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionTrue) {
		t.Fatalf("conditions after create: %+v", pr.Status.Conditions)
	}
	if pr.Status.SignerAddress != evm.Address(key).Hex() || pr.Status.TotalSigned != 3 || pr.Status.ProbedPrice != "1000" {
		t.Fatalf("status: %+v", pr.Status)
	}

	// Two calls through the proxy; the daily cap (2000) refuses the third.
	for i := 0; i < 2; i++ {
		resp, err := http.Get(buyerSrv.URL + "/upstream/weather/forecast")
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("paid call %d: %v %v", i, err, resp)
		}
		resp.Body.Close()
	}
	resp, _ := http.Get(buyerSrv.URL + "/upstream/weather/forecast")
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third call in the day must hit the cap, got %d", resp.StatusCode)
	}
	resp.Body.Close()
	reconcile()
	if pr.Status.Remaining != 1 || pr.Status.Spent != 2 || pr.Status.TotalSpent != "2000" {
		t.Fatalf("counts: remaining %d spent %d totalSpent %s", pr.Status.Remaining, pr.Status.Spent, pr.Status.TotalSpent)
	}
	if len(seller.Payments()) != 2 {
		t.Fatalf("seller saw %d payments", len(seller.Payments()))
	}

	// Refill stops at maxTotal (4): one more, not autoRefill.count (3).
	ro := &buy.RefillOptions{ClusterOptions: buy.ClusterOptions{IO: ios, Kube: obolkube.Options{Config: kube.Config, Namespace: ns},
		NewClient: func() (client.Client, error) { return c, nil }, Now: time.Now},
		Name: "weather", KeyFile: keyFile, Registry: evm.NewRegistry()}
	if err := buy.RefillRun(ctx, ro); err != nil {
		t.Fatalf("refill: %v", err)
	}
	c.Get(ctx, req.NamespacedName, &pr)
	if got := purchase.TotalSigned(&pr); got != 4 || len(pr.Spec.PreSignedAuths) != 4 {
		t.Fatalf("after refill: total signed %d, %d in spec", got, len(pr.Spec.PreSignedAuths))
	}
	// The refill asked the seller: valid no longer than its maxTimeoutSeconds
	// (the verifier's and facilitator's rule), not the week it once signed for.
	for i, a := range pr.Spec.PreSignedAuths {
		auth, err := evm.AuthorizationFromWire(x402.EIP3009Authorization{From: a.From, To: a.To, Value: a.Value, ValidAfter: a.ValidAfter, ValidBefore: a.ValidBefore, Nonce: a.Nonce})
		if err != nil {
			t.Fatal(err)
		}
		if err := evm.CheckMaxValidity(auth, time.Now(), 60*time.Second); err != nil {
			t.Errorf("authorization %d after refill: %v", i, err)
		}
	}
	ro.Count = 5
	if err := buy.RefillRun(ctx, ro); err == nil || !strings.Contains(err.Error(), "maxTotal") {
		t.Fatalf("refill past maxTotal: %v", err)
	}

	// The seller raises its price.
	seller.Requirements = []x402.Requirement{buyertest.USDCBaseSepolia("5000", payTo)}
	r.ProbeInterval = time.Nanosecond
	reconcile()
	if !hasCond(pr.Status.Conditions, purchase.ConditionPricingMismatch, metav1.ConditionTrue) || !hasCond(pr.Status.Conditions, v1alpha1.ConditionReady, metav1.ConditionFalse) {
		t.Fatalf("conditions after a price change: %+v", pr.Status.Conditions)
	}
	before := len(seller.Payments())
	resp, _ = http.Get(buyerSrv.URL + "/upstream/weather/forecast")
	resp.Body.Close()
	if resp.StatusCode == 200 || len(seller.Payments()) != before {
		t.Fatalf("the proxy paid a changed price: %d", resp.StatusCode)
	}
	ro.Count = 0
	if err := buy.RefillRun(ctx, ro); err == nil || !strings.Contains(err.Error(), "not refilling") {
		t.Fatalf("refill during a price mismatch: %v", err)
	}

	// Delete: the finalizer removes the buyer config first.
	if err := c.Delete(ctx, &pr); err != nil {
		t.Fatal(err)
	}
	reconcile()
	var cm corev1.ConfigMap
	if err := c.Get(ctx, client.ObjectKey{Namespace: buyerNS, Name: controller.DefaultBuyerConfigMap}, &cm); err != nil {
		t.Fatal(err)
	}
	if _, ok := cm.Data[controller.ConfigKey(&pr)]; ok {
		t.Fatal("the deleted request's upstream is still configured")
	}
	if err := c.Get(ctx, req.NamespacedName, &pr); err == nil {
		t.Fatal("the request was not released after cleanup")
	}
}

func hasCond(conds []metav1.Condition, typ string, status metav1.ConditionStatus) bool {
	c := meta.FindStatusCondition(conds, typ)
	return c != nil && c.Status == status
}
