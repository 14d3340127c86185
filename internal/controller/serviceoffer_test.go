package controller_test

import (
	"context"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/obolstack/obol/internal/controller"
	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
)

const wait = 30 * time.Second

func getRoute(t *testing.T, ns, name string) (*unstructured.Unstructured, error) {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(controller.HTTPRouteGVK)
	err := kube.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, u)
	return u, err
}

func TestPublishPauseResumeDelete(t *testing.T) {
	ns, c := setup(t)
	ensureGatewayAPI(t)
	r := newReconciler(c, "obol")
	startManager(t, r)
	ctx := context.Background()
	createUpstream(t, ns, "weather-api", 8080)
	offer := newOffer(ns, "weather")
	offer.Spec.Path = "/weather"
	if err := c.Create(ctx, offer); err != nil {
		t.Fatal(err)
	}

	allTrue := map[string][2]string{
		v1alpha1.ConditionUpstreamHealthy:  {"True", v1alpha1.ReasonUpstreamFound},
		v1alpha1.ConditionPaymentGateReady: {"True", v1alpha1.ReasonPaymentValid},
		v1alpha1.ConditionRoutePublished:   {"True", v1alpha1.ReasonRoutePublished},
		v1alpha1.ConditionReady:            {"True", v1alpha1.ReasonReady},
	}
	eventually(t, wait, "Ready", func() string { return conds(getOffer(t, ns, "weather"), allTrue) })

	o := getOffer(t, ns, "weather")
	if o.Status.Endpoint != "https://obol.example.com/weather" {
		t.Errorf("status.endpoint = %q", o.Status.Endpoint)
	}
	if o.Status.ObservedGeneration != o.Generation {
		t.Errorf("status.observedGeneration = %d, generation %d", o.Status.ObservedGeneration, o.Generation)
	}
	if len(o.Finalizers) != 1 || o.Finalizers[0] != v1alpha1.RouteCleanupFinalizer {
		t.Errorf("finalizers = %v", o.Finalizers)
	}

	route, err := getRoute(t, ns, "obol-offer-weather")
	if err != nil {
		t.Fatal(err)
	}
	parents, _, _ := unstructured.NestedSlice(route.Object, "spec", "parentRefs")
	rules, _, _ := unstructured.NestedSlice(route.Object, "spec", "rules")
	if len(parents) != 1 || len(rules) != 1 {
		t.Fatalf("route spec: %v", route.Object["spec"])
	}
	p := parents[0].(map[string]any)
	if p["name"] != "obol-gw" || p["namespace"] != "gateway-system" {
		t.Errorf("parentRef = %v", p)
	}
	rule := rules[0].(map[string]any)
	match := rule["matches"].([]any)[0].(map[string]any)["path"].(map[string]any)
	if match["type"] != "PathPrefix" || match["value"] != "/weather" {
		t.Errorf("match = %v", match)
	}
	be := rule["backendRefs"].([]any)[0].(map[string]any)
	if be["name"] != "obol-verifier" || be["namespace"] != "obol" || be["port"] != int64(8080) {
		t.Errorf("backendRef = %v", be)
	}
	owners := route.GetOwnerReferences()
	if len(owners) != 1 || owners[0].UID != o.UID || owners[0].Kind != "ServiceOffer" {
		t.Errorf("owner references = %v", owners)
	}
	if route.GetLabels()[controller.LabelOfferName] != "weather" {
		t.Errorf("labels = %v", route.GetLabels())
	}

	// The verifier's namespace grants this namespace's routes the backend.
	grant := &unstructured.Unstructured{}
	grant.SetGroupVersionKind(controller.ReferenceGrantGVK)
	if err := c.Get(ctx, client.ObjectKey{Namespace: "obol", Name: controller.ReferenceGrantName}, grant); err != nil {
		t.Fatalf("ReferenceGrant: %v", err)
	}
	from, _, _ := unstructured.NestedSlice(grant.Object, "spec", "from")
	granted := false
	for _, f := range from {
		m := f.(map[string]any)
		granted = granted || (m["namespace"] == ns && m["kind"] == "HTTPRoute")
	}
	to, _, _ := unstructured.NestedSlice(grant.Object, "spec", "to")
	if !granted || len(to) != 1 || to[0].(map[string]any)["name"] != "obol-verifier" {
		t.Errorf("ReferenceGrant spec = %v", grant.Object["spec"])
	}

	// Idempotent: another reconcile changes nothing.
	routeRV := route.GetResourceVersion()
	offerRV := o.ResourceVersion
	direct := newReconciler(c, "obol")
	if _, err := direct.Reconcile(ctx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: "weather"}}); err != nil {
		t.Fatal(err)
	}
	if route2, _ := getRoute(t, ns, "obol-offer-weather"); route2.GetResourceVersion() != routeRV {
		t.Errorf("a second reconcile rewrote the route")
	}
	grant2 := &unstructured.Unstructured{}
	grant2.SetGroupVersionKind(controller.ReferenceGrantGVK)
	if err := c.Get(ctx, client.ObjectKeyFromObject(grant), grant2); err != nil || grant2.GetResourceVersion() != grant.GetResourceVersion() {
		t.Errorf("a second reconcile rewrote the ReferenceGrant (%v)", err)
	}
	if getOffer(t, ns, "weather").ResourceVersion != offerRV {
		t.Errorf("a second reconcile rewrote the offer")
	}

	// Pause: route withdrawn, reason Paused.
	pause(t, ns, "weather", true)
	eventually(t, wait, "paused", func() string {
		return conds(getOffer(t, ns, "weather"), map[string][2]string{
			v1alpha1.ConditionPaymentGateReady: {"False", v1alpha1.ReasonPaused},
			v1alpha1.ConditionRoutePublished:   {"False", v1alpha1.ReasonPaused},
			v1alpha1.ConditionReady:            {"False", v1alpha1.ReasonPaused},
		})
	})
	if _, err := getRoute(t, ns, "obol-offer-weather"); !apierrors.IsNotFound(err) {
		t.Fatalf("route of a paused offer: err = %v, want NotFound", err)
	}

	// Resume: route back.
	pause(t, ns, "weather", false)
	eventually(t, wait, "resumed", func() string { return conds(getOffer(t, ns, "weather"), allTrue) })
	if _, err := getRoute(t, ns, "obol-offer-weather"); err != nil {
		t.Fatalf("route after resume: %v", err)
	}

	// Delete: the finalizer removes the route, then the offer goes.
	if err := c.Delete(ctx, getOffer(t, ns, "weather")); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, "offer gone", func() string {
		var o v1alpha1.ServiceOffer
		err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "weather"}, &o)
		if apierrors.IsNotFound(err) {
			return ""
		}
		return "still there: " + o.Status.Endpoint
	})
	if _, err := getRoute(t, ns, "obol-offer-weather"); !apierrors.IsNotFound(err) {
		t.Fatalf("route after delete: err = %v, want NotFound", err)
	}
}

func pause(t *testing.T, ns, name string, on bool) {
	t.Helper()
	o := getOffer(t, ns, name)
	patch := client.MergeFrom(o.DeepCopy())
	if on {
		if o.Annotations == nil {
			o.Annotations = map[string]string{}
		}
		o.Annotations[v1alpha1.PausedAnnotation] = "true"
	} else {
		delete(o.Annotations, v1alpha1.PausedAnnotation)
	}
	if err := kube.Client.Patch(context.Background(), o, patch); err != nil {
		t.Fatal(err)
	}
}

// The CRD pattern accepts any 0x+40 hex address and any decimal price;
// the controller checks what only it can: the EIP-55 checksum and the
// asset's precision. No route is published for invalid terms.
func TestInvalidPaymentPublishesNoRoute(t *testing.T) {
	ns, c := setup(t)
	ensureGatewayAPI(t)
	startManager(t, newReconciler(c, "obol"))
	createUpstream(t, ns, "weather-api", 8080)
	for name, mutate := range map[string]func(*v1alpha1.ServiceOffer){
		"bad-checksum":  func(o *v1alpha1.ServiceOffer) { o.Spec.Payment.PayTo = "0x70997970C51812dc3A010C7d01b50e0d17dc79c8" },
		"too-precise":   func(o *v1alpha1.ServiceOffer) { o.Spec.Payment.Price.PerRequest = "0.0000001" },
		"unknown-chain": func(o *v1alpha1.ServiceOffer) { o.Spec.Payment.Network = "eip155:5" },
	} {
		o := newOffer(ns, name)
		mutate(o)
		if err := c.Create(context.Background(), o); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	for _, name := range []string{"bad-checksum", "too-precise", "unknown-chain"} {
		eventually(t, wait, name, func() string {
			return conds(getOffer(t, ns, name), map[string][2]string{
				v1alpha1.ConditionPaymentGateReady: {"False", v1alpha1.ReasonInvalidPayment},
				v1alpha1.ConditionRoutePublished:   {"False", v1alpha1.ReasonInvalidPayment},
				v1alpha1.ConditionReady:            {"False", v1alpha1.ReasonNotReady},
			})
		})
		if _, err := getRoute(t, ns, "obol-offer-"+name); !apierrors.IsNotFound(err) {
			t.Errorf("%s: route exists for invalid payment terms (err %v)", name, err)
		}
	}
}

func TestUpstreamMissingThenCreated(t *testing.T) {
	ns, c := setup(t)
	ensureGatewayAPI(t)
	r := newReconciler(c, "obol")
	r.UpstreamMissingRetry = time.Hour // only the Service watch can notice the Service
	startManager(t, r)
	ctx := context.Background()
	if err := c.Create(ctx, newOffer(ns, "weather")); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, "UpstreamNotFound", func() string {
		return conds(getOffer(t, ns, "weather"), map[string][2]string{
			v1alpha1.ConditionUpstreamHealthy: {"False", v1alpha1.ReasonUpstreamNotFound},
			v1alpha1.ConditionReady:           {"False", v1alpha1.ReasonNotReady},
		})
	})
	createUpstream(t, ns, "weather-api", 9090)
	eventually(t, wait, "UpstreamPortMissing", func() string {
		return condIs(getOffer(t, ns, "weather"), v1alpha1.ConditionUpstreamHealthy, "False", v1alpha1.ReasonUpstreamPortMissing)
	})
	o := getOffer(t, ns, "weather")
	o.Spec.Upstream.Port = 9090
	if err := c.Update(ctx, o); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, "Ready at the new generation", func() string {
		return conds(getOffer(t, ns, "weather"), map[string][2]string{
			v1alpha1.ConditionUpstreamHealthy: {"True", v1alpha1.ReasonUpstreamFound},
			v1alpha1.ConditionReady:           {"True", v1alpha1.ReasonReady},
		})
	})
}
