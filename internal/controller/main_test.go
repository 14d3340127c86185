package controller_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/discovery"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/obolstack/obol/internal/controller"
	obolkube "github.com/obolstack/obol/internal/kube"
	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
	"github.com/obolstack/obol/internal/testenv"
	testwait "github.com/obolstack/obol/internal/testenv/wait" // "wait" is this package's timeout constant
)

const (
	crdDir        = "../../charts/obol/crds"
	gatewayCRDDir = "../../testdata/crds/gateway-api"
	testPayTo     = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
)

var (
	kube    *testenv.Kube
	kubeErr error
)

// One API server for the package. It starts without the Gateway API CRDs;
// tests that need them install them (ensureGatewayAPI).
func TestMain(m *testing.M) {
	kube, kubeErr = testenv.StartKube(testenv.WithCRDs(crdDir), testenv.WithScheme(obolkube.Scheme()))
	if kubeErr == nil {
		// The verifier's namespace, where the controller keeps the ReferenceGrant.
		kubeErr = kube.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "obol"}})
	}
	code := m.Run()
	kube.Stop()
	os.Exit(code)
}

var (
	gatewayMu        sync.Mutex
	gatewayInstalled bool
)

func gatewayCRDOptions() envtest.CRDInstallOptions {
	return envtest.CRDInstallOptions{Paths: []string{gatewayCRDDir}, ErrorIfPathMissing: true, MaxTime: time.Minute}
}

// ensureGatewayAPI installs the vendored Gateway API CRDs unless they are.
func ensureGatewayAPI(t *testing.T) {
	t.Helper()
	gatewayMu.Lock()
	defer gatewayMu.Unlock()
	if gatewayInstalled {
		return
	}
	if _, err := envtest.InstallCRDs(kube.Config, gatewayCRDOptions()); err != nil {
		t.Fatalf("install Gateway API CRDs: %v", err)
	}
	gatewayInstalled = true
}

// removeGatewayAPI uninstalls the Gateway API CRDs (and so every HTTPRoute
// and ReferenceGrant) and waits until the API server no longer serves them.
func removeGatewayAPI(t *testing.T) {
	t.Helper()
	gatewayMu.Lock()
	defer gatewayMu.Unlock()
	opts := gatewayCRDOptions()
	if err := envtest.UninstallCRDs(kube.Config, opts); err != nil {
		t.Fatalf("uninstall Gateway API CRDs: %v", err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(kube.Config)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "Gateway API CRDs gone", func() string {
		for _, crd := range opts.CRDs {
			got := &unstructured.Unstructured{}
			got.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
			if err := kube.Client.Get(context.Background(), client.ObjectKey{Name: crd.GetName()}, got); !apierrors.IsNotFound(err) {
				return fmt.Sprintf("CRD %s still there (%v)", crd.GetName(), err)
			}
		}
		for _, gv := range []string{"gateway.networking.k8s.io/v1", "gateway.networking.k8s.io/v1beta1"} {
			if _, err := dc.ServerResourcesForGroupVersion(gv); !apierrors.IsNotFound(err) {
				return fmt.Sprintf("%s still served (%v)", gv, err)
			}
		}
		return ""
	})
	gatewayInstalled = false
}

func setup(t *testing.T) (string, client.Client) {
	t.Helper()
	testenv.SkipOrFail(t, kubeErr)
	kube.LogOnFailure(t)
	return kube.NewNamespace(t), kube.Client
}

// newReconciler returns a reconciler with short retries, routing to a
// verifier in verifierNS.
func newReconciler(c client.Client, verifierNS string) *controller.ServiceOfferReconciler {
	return &controller.ServiceOfferReconciler{
		Client: c,
		Route: controller.RouteTarget{
			GatewayName: "obol-gw", GatewayNamespace: "gateway-system",
			VerifierService: "obol-verifier", VerifierNamespace: verifierNS, VerifierPort: 8080,
		},
		PublicBaseURL:        "https://obol.example.com",
		GatewayMissingRetry:  300 * time.Millisecond,
		UpstreamMissingRetry: 300 * time.Millisecond,
	}
}

// startManager runs a controller-runtime manager with r until the test ends.
func startManager(t *testing.T, r *controller.ServiceOfferReconciler) {
	t.Helper()
	mgr, err := ctrl.NewManager(kube.Config, ctrl.Options{
		Scheme:                 obolkube.Scheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatal(err)
	}
	r.Client = mgr.GetClient()
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
}

func createUpstream(t *testing.T, ns, name string, port int32) {
	t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: port}}},
	}
	if err := kube.Client.Create(context.Background(), svc); err != nil {
		t.Fatal(err)
	}
}

func newOffer(ns, name string) *v1alpha1.ServiceOffer {
	return &v1alpha1.ServiceOffer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.ServiceOfferSpec{
			Type:     v1alpha1.OfferTypeHTTP,
			Upstream: v1alpha1.OfferUpstream{Service: "weather-api", Port: 8080},
			Payment: v1alpha1.OfferPayment{
				Network: "eip155:84532",
				PayTo:   testPayTo,
				Price:   v1alpha1.OfferPrice{PerRequest: "0.001"},
			},
		},
	}
}

// eventually polls check until it returns "" or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, check func() string) {
	t.Helper()
	testwait.For(t, timeout, what, func() error {
		if last := check(); last != "" {
			return errors.New(last)
		}
		return nil
	})
}

func getOffer(t *testing.T, ns, name string) *v1alpha1.ServiceOffer {
	t.Helper()
	var o v1alpha1.ServiceOffer
	if err := kube.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &o); err != nil {
		t.Fatal(err)
	}
	return &o
}

// condIs reports "" when condition typ has status and reason for the
// offer's current generation, else what it found.
func condIs(o *v1alpha1.ServiceOffer, typ string, status metav1.ConditionStatus, reason string) string {
	c := meta.FindStatusCondition(o.Status.Conditions, typ)
	if c == nil {
		return typ + " not set"
	}
	if c.Status != status || (reason != "" && c.Reason != reason) || c.ObservedGeneration != o.Generation {
		return fmt.Sprintf("%s = %s/%s (gen %d of %d): %s", typ, c.Status, c.Reason, c.ObservedGeneration, o.Generation, c.Message)
	}
	return ""
}

func conds(o *v1alpha1.ServiceOffer, want map[string][2]string) string {
	var bad []string
	for typ, sr := range want {
		if m := condIs(o, typ, metav1.ConditionStatus(sr[0]), sr[1]); m != "" {
			bad = append(bad, m)
		}
	}
	return strings.Join(bad, "; ")
}

// Without the Gateway API the offer cannot be published; once the CRDs are
// installed, the controller's retry publishes it without a restart. The
// test removes the CRDs first when an earlier test installed them, so it
// does not depend on the order tests run in (-shuffle).
func TestGatewayAPIMissingThenInstalled(t *testing.T) {
	ns, c := setup(t)
	removeGatewayAPI(t)
	r := newReconciler(c, "obol")
	startManager(t, r)
	createUpstream(t, ns, "weather-api", 8080)
	if err := c.Create(context.Background(), newOffer(ns, "weather")); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, "GatewayAPIMissing", func() string {
		return conds(getOffer(t, ns, "weather"), map[string][2]string{
			v1alpha1.ConditionUpstreamHealthy:  {"True", v1alpha1.ReasonUpstreamFound},
			v1alpha1.ConditionPaymentGateReady: {"True", v1alpha1.ReasonPaymentValid},
			v1alpha1.ConditionRoutePublished:   {"False", v1alpha1.ReasonGatewayAPIMissing},
			v1alpha1.ConditionReady:            {"False", v1alpha1.ReasonNotReady},
		})
	})

	ensureGatewayAPI(t)
	eventually(t, wait, "route published after the Gateway API appeared", func() string {
		return conds(getOffer(t, ns, "weather"), map[string][2]string{
			v1alpha1.ConditionRoutePublished: {"True", v1alpha1.ReasonRoutePublished},
			v1alpha1.ConditionReady:          {"True", v1alpha1.ReasonReady},
		})
	})
	if _, err := getRoute(t, ns, "obol-offer-weather"); err != nil {
		t.Fatalf("HTTPRoute: %v", err)
	}
}
