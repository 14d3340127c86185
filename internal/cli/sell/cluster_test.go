package sell

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/controller"
	"github.com/obolstack/obol/internal/kube"
	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
	"github.com/obolstack/obol/internal/testenv"
	"github.com/obolstack/obol/internal/testenv/wait"
)

var (
	env    *testenv.Kube
	envErr error
)

func TestMain(m *testing.M) {
	pollInterval = 100 * time.Millisecond
	env, envErr = testenv.StartKube(
		testenv.WithCRDs("../../../charts/obol/crds", "../../../testdata/crds/gateway-api"),
		testenv.WithScheme(kube.Scheme()))
	if envErr == nil {
		// The verifier's namespace, where the controller keeps the ReferenceGrant.
		envErr = env.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "obol"}})
	}
	code := m.Run()
	env.Stop()
	os.Exit(code)
}

// run executes `obol sell ARGS` the way the binary does, with the global
// flags pointing at the test API server, and returns stdout and stderr.
func run(t *testing.T, ns string, args ...string) (string, string, error) {
	t.Helper()
	f, ios := cmdutil.NewTestFactory()
	f.Global.Kubeconfig = env.Kubeconfig
	f.Global.Namespace = ns
	for i := 0; i < len(args); i++ {
		if args[i] == "-o" && i+1 < len(args) {
			f.Global.Output = args[i+1]
			args = append(args[:i:i], args[i+2:]...)
			break
		}
	}
	cmd := NewCmdSell(f)
	cmd.SetArgs(args)
	cmd.SetOut(ios.Out)
	cmd.SetErr(ios.ErrOut)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err := cmd.ExecuteContext(context.Background())
	return ios.Out.(*bytes.Buffer).String(), ios.ErrOut.(*bytes.Buffer).String(), err
}

func setup(t *testing.T) string {
	t.Helper()
	testenv.SkipOrFail(t, envErr)
	env.LogOnFailure(t)
	return env.NewNamespace(t)
}

func startController(t *testing.T) {
	t.Helper()
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 kube.Scheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := &controller.ServiceOfferReconciler{
		Client: mgr.GetClient(),
		Route: controller.RouteTarget{GatewayName: "gw", GatewayNamespace: "gateway-system",
			VerifierService: "obol-verifier", VerifierNamespace: "obol", VerifierPort: 8080},
		UpstreamMissingRetry: 200 * time.Millisecond,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func countOffers(t *testing.T, ns string) int {
	t.Helper()
	var list v1alpha1.ServiceOfferList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	return len(list.Items)
}

func TestCreateRejectsBadInputAndCreatesNothing(t *testing.T) {
	ns := setup(t)
	for _, args := range [][]string{
		{"create", "weather", "--upstream", "weather-api:8080", "--price", "0.001", "--chain", "base-sepolia", "--pay-to", "0x70997970C51812dc3A010C7d01b50e0d17dc79c8"},
		{"create", "weather", "--upstream", "weather-api:8080", "--price", "0.0000001", "--chain", "base-sepolia", "--pay-to", payTo},
		{"create", "weather", "--upstream", "weather-api:8080", "--price", "0.001", "--chain", "dogechain", "--pay-to", payTo},
	} {
		_, _, err := run(t, ns, args...)
		if err == nil || !strings.Contains(err.Error(), "nothing was created") {
			t.Errorf("%v: err = %v", args, err)
		}
	}
	if n := countOffers(t, ns); n != 0 {
		t.Fatalf("%d offers exist after rejected creates", n)
	}
}

// The dry-run manifest is accepted by the real API server's schema.
func TestDryRunManifestPassesServerValidation(t *testing.T) {
	ns := setup(t)
	out, _, err := run(t, ns, "create", "weather", "--upstream", "weather-api.other:8080", "--price", "0.001",
		"--chain", "base-sepolia", "--pay-to", payTo, "--description", "Weather", "--dry-run", "-o", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(out), &u.Object); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Create(context.Background(), u, client.DryRunAll); err != nil {
		t.Fatalf("API server rejects the dry-run manifest: %v\n%s", err, out)
	}
	if n := countOffers(t, ns); n != 0 {
		t.Fatalf("--dry-run created %d offers", n)
	}
}

func TestSellLifecycle(t *testing.T) {
	ns := setup(t)
	startController(t)
	ctx := context.Background()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "weather-api"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 8080}}}}
	if err := env.Client.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}

	// create --wait: the object has the given spec and becomes Ready.
	out, errOut, err := run(t, ns, "create", "weather", "--upstream", "weather-api:8080", "--price", "0.001",
		"--chain", "base-sepolia", "--pay-to", strings.ToLower(payTo), "--description", "Weather", "--wait", "--timeout", "60s")
	if err != nil {
		t.Fatalf("create: %v\n%s%s", err, out, errOut)
	}
	if !strings.Contains(out, "Created ServiceOffer "+ns+"/weather") {
		t.Errorf("create output: %s", out)
	}
	var o v1alpha1.ServiceOffer
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "weather"}, &o); err != nil {
		t.Fatal(err)
	}
	if o.Spec.Upstream.Service != "weather-api" || o.Spec.Upstream.Port != 8080 || o.Spec.Payment.Network != "eip155:84532" ||
		o.Spec.Payment.PayTo != payTo || o.Spec.Payment.Price.PerRequest != "0.001" || o.Spec.Path != "/services/weather" ||
		o.Spec.Description != "Weather" || o.Spec.Payment.Asset.Decimals != 6 {
		t.Errorf("spec = %+v", o.Spec)
	}
	route := func() error {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(controller.HTTPRouteGVK)
		return env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "obol-offer-weather"}, u)
	}
	if err := route(); err != nil {
		t.Fatalf("HTTPRoute after Ready: %v", err)
	}

	// list: the printer columns.
	out, _, err = run(t, ns, "list")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[0]), " ") != "NAME TYPE MODEL PRICE NETWORK SETTLE READY AGE URL" ||
		!strings.HasPrefix(strings.Join(strings.Fields(lines[1]), " "), "weather http <none> 0.001 eip155:84532 after-response True ") {
		t.Errorf("list table:\n%s", out)
	}
	out, _, err = run(t, ns, "list", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Kind  string                  `json:"kind"`
		Items []v1alpha1.ServiceOffer `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || list.Kind != "ServiceOfferList" || len(list.Items) != 1 {
		t.Errorf("list -o json (%v):\n%s", err, out)
	}

	// status: conditions in words and the endpoint.
	out, _, err = run(t, ns, "status", "weather")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Endpoint:  /services/weather", "UpstreamHealthy   yes", "PaymentGateReady  yes",
		"RoutePublished    yes", "Ready             yes: buyers can pay for and reach the offer", "0.001 USDC per request on base-sepolia"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	out, _, err = run(t, ns, "status", "weather", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var st v1alpha1.ServiceOffer
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Status.Endpoint != "/services/weather" || len(st.Status.Conditions) != 4 {
		t.Errorf("status -o json (%v):\n%s", err, out)
	}

	// pause: route withdrawn, reason Paused.
	if _, _, err := run(t, ns, "pause", "weather"); err != nil {
		t.Fatal(err)
	}
	wait.Until(t, 60*time.Second, "the offer to be paused and its route withdrawn", func() bool {
		var o v1alpha1.ServiceOffer
		_ = env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "weather"}, &o)
		c := meta.FindStatusCondition(o.Status.Conditions, v1alpha1.ConditionRoutePublished)
		g := meta.FindStatusCondition(o.Status.Conditions, v1alpha1.ConditionPaymentGateReady)
		return c != nil && c.Reason == v1alpha1.ReasonPaused && c.Status == metav1.ConditionFalse &&
			g != nil && g.Reason == v1alpha1.ReasonPaused && apierrors.IsNotFound(route())
	})
	out, _, _ = run(t, ns, "status", "weather")
	if !strings.Contains(out, "Paused:    yes") || !strings.Contains(out, "reason Paused") || !strings.Contains(out, "obol sell resume") {
		t.Errorf("status of a paused offer:\n%s", out)
	}

	// resume: route back.
	if _, _, err := run(t, ns, "resume", "weather"); err != nil {
		t.Fatal(err)
	}
	wait.Until(t, 60*time.Second, "the offer to be Ready again with its route", func() bool {
		var o v1alpha1.ServiceOffer
		_ = env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "weather"}, &o)
		return meta.IsStatusConditionTrue(o.Status.Conditions, v1alpha1.ConditionReady) && o.Annotations[v1alpha1.PausedAnnotation] == "" && route() == nil
	})

	// delete --wait: the finalizer cleans the route, the object is gone.
	out, _, err = run(t, ns, "delete", "weather", "--wait", "--timeout", "60s")
	if err != nil {
		t.Fatalf("delete: %v", err)
	}
	if !strings.Contains(out, "Deleted ServiceOffer") {
		t.Errorf("delete output: %s", out)
	}
	if err := route(); !apierrors.IsNotFound(err) {
		t.Errorf("route after delete: %v", err)
	}
	if n := countOffers(t, ns); n != 0 {
		t.Errorf("%d offers after delete", n)
	}
	if _, _, err := run(t, ns, "status", "weather"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("status of a deleted offer: %v", err)
	}
}

// --settle reaches the API server (which accepts the value), and `obol sell
// list` shows the mode in effect, also for an offer written without
// spec.settle (an inference offer: on-headers), in the table and in -o json.
func TestSettleModeCreatedAndListed(t *testing.T) {
	ns := setup(t)
	ctx := context.Background()
	if out, errOut, err := run(t, ns, "create", "events", "--upstream", "events-api:8080", "--price", "0.01",
		"--chain", "base-sepolia", "--pay-to", payTo, "--settle", "on-headers"); err != nil {
		t.Fatalf("create: %v\n%s%s", err, out, errOut)
	}
	var o v1alpha1.ServiceOffer
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "events"}, &o); err != nil {
		t.Fatal(err)
	}
	if o.Spec.Settle != v1alpha1.SettleOnHeaders {
		t.Fatalf("spec.settle = %q, want on-headers", o.Spec.Settle)
	}
	if _, _, err := run(t, ns, "create", "bad", "--upstream", "events-api:8080", "--price", "0.01",
		"--chain", "base-sepolia", "--pay-to", payTo, "--settle", "later"); err == nil || !strings.Contains(err.Error(), "--settle") {
		t.Fatalf("--settle later: err = %v", err)
	}
	// Written without spec.settle, as kubectl apply of an older manifest would.
	bare := &v1alpha1.ServiceOffer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "qwen"}, Spec: v1alpha1.ServiceOfferSpec{
		Type: v1alpha1.OfferTypeInference, Model: &v1alpha1.OfferModel{Name: "qwen3:8b"},
		Upstream: v1alpha1.OfferUpstream{Service: "ollama", Port: 11434},
		Payment: v1alpha1.OfferPayment{Scheme: v1alpha1.SchemeExact, Network: "eip155:84532", PayTo: payTo,
			Price: v1alpha1.OfferPrice{PerRequest: "0.002"}}}}
	if err := env.Client.Create(ctx, bare); err != nil {
		t.Fatal(err)
	}
	out, _, err := run(t, ns, "list")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
		f := strings.Fields(l)
		rows[f[0]] = f[5]
	}
	if rows["events"] != "on-headers" || rows["qwen"] != "on-headers" {
		t.Errorf("SETTLE column %v:\n%s", rows, out)
	}
	out, _, err = run(t, ns, "list", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Items []v1alpha1.ServiceOffer `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Items) != 2 {
		t.Fatalf("list -o json (%v):\n%s", err, out)
	}
	for _, it := range list.Items {
		if it.Spec.Settle != v1alpha1.SettleOnHeaders {
			t.Errorf("%s: spec.settle = %q in -o json, want on-headers", it.Name, it.Spec.Settle)
		}
	}
}
