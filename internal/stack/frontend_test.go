package stack

import (
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/obolstack/obol/internal/testenv/wait"
)

var serviceOffers = schema.GroupVersionResource{Group: "obol.org", Version: "v1alpha1", Resource: "serviceoffers"}

// frontendUser is the obol web front end's identity, the chart's default.
const frontendUser = "system:serviceaccount:obol-frontend:obol-frontend"

// checkFrontendPauseOnly drives the installed chart's front-end RBAC and
// admission policy with real requests impersonating the front end: it may
// pause and resume an offer (the obol.org/paused annotation) and nothing else.
func checkFrontendPauseOnly(t *testing.T, ns string) {
	admin, err := dynamic.NewForConfig(kube.Config)
	if err != nil {
		t.Fatal(err)
	}
	fcfg := rest.CopyConfig(kube.Config)
	fcfg.Impersonate = rest.ImpersonationConfig{
		UserName: frontendUser,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:obol-frontend", "system:authenticated"},
	}
	fe, err := dynamic.NewForConfig(fcfg)
	if err != nil {
		t.Fatal(err)
	}
	feCS, err := kubernetes.NewForConfig(fcfg)
	if err != nil {
		t.Fatal(err)
	}

	offer := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "obol.org/v1alpha1",
		"kind":       "ServiceOffer",
		"metadata": map[string]any{
			"name":        "weather",
			"namespace":   ns,
			"labels":      map[string]any{"team": "a"},
			"annotations": map[string]any{"owner": "ops"},
		},
		"spec": map[string]any{
			"type":     "http",
			"upstream": map[string]any{"service": "weather-api", "port": int64(8080)},
			"payment": map[string]any{
				"network": "eip155:84532",
				"payTo":   "0x2222222222222222222222222222222222222222",
				"price":   map[string]any{"perRequest": "0.001"},
			},
		},
	}}
	if _, err := admin.Resource(serviceOffers).Namespace(ns).Create(ctx(t), offer, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create offer as admin: %v", err)
	}
	offers := fe.Resource(serviceOffers).Namespace(ns)
	patch := func(body string, opts metav1.PatchOptions) error {
		_, err := offers.Patch(ctx(t), "weather", types.MergePatchType, []byte(body), opts)
		return err
	}
	const priceChange = `{"spec":{"payment":{"price":{"perRequest":"0"}}}}`

	// The API server loads a new policy asynchronously: wait until a dry
	// run of a forbidden change is denied by it before asserting anything.
	wait.For(t, 30*time.Second, "the front-end policy to deny a price change", func() error {
		err := patch(priceChange, metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil && strings.Contains(err.Error(), "spec is not its to change") {
			return nil
		}
		return fmt.Errorf("a dry-run price change got %v", err)
	})

	paused := func() string {
		o, err := admin.Resource(serviceOffers).Namespace(ns).Get(ctx(t), "weather", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		v, ok := o.GetAnnotations()["obol.org/paused"]
		if !ok {
			return "<none>"
		}
		return v
	}

	// Allowed: exactly what the front end's pause/resume PATCH sends.
	if err := patch(`{"metadata":{"annotations":{"obol.org/paused":"true"}}}`, metav1.PatchOptions{}); err != nil {
		t.Errorf("pause as the front end: %v", err)
	}
	if got := paused(); got != "true" {
		t.Errorf("after pause: obol.org/paused=%s, want true", got)
	}
	if err := patch(`{"metadata":{"annotations":{"obol.org/paused":null}}}`, metav1.PatchOptions{}); err != nil {
		t.Errorf("resume as the front end: %v", err)
	}
	if got := paused(); got != "<none>" {
		t.Errorf("after resume: obol.org/paused=%s, want it removed", got)
	}
	if _, err := offers.List(ctx(t), metav1.ListOptions{}); err != nil {
		t.Errorf("list offers as the front end: %v", err)
	}

	// Refused by the admission policy, with a message saying why.
	for _, c := range []struct{ what, body, msg string }{
		{"change the price", priceChange, "spec is not its to change"},
		{"pause and change the price at once", `{"metadata":{"annotations":{"obol.org/paused":"true"}},"spec":{"payment":{"price":{"perRequest":"0"}}}}`, "spec is not its to change"},
		{"add a label", `{"metadata":{"labels":{"team":"b"}}}`, "labels are not its to change"},
		{"remove a label", `{"metadata":{"labels":{"team":null}}}`, "labels are not its to change"},
		{"change another annotation", `{"metadata":{"annotations":{"owner":"me"}}}`, "obol.org/paused alone"},
		{"remove another annotation", `{"metadata":{"annotations":{"owner":null}}}`, "obol.org/paused alone"},
		{"add a finalizer", `{"metadata":{"finalizers":["example.com/hold"]}}`, "finalizers are not its to change"},
	} {
		err := patch(c.body, metav1.PatchOptions{})
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("front end may not %s: got %v, want a denial containing %q", c.what, err, c.msg)
		}
	}
	if got := paused(); got != "<none>" {
		t.Errorf("a refused patch still paused the offer: obol.org/paused=%s", got)
	}

	// Refused by RBAC.
	forbidden := func(what string, err error) {
		t.Helper()
		if !apierrors.IsForbidden(err) {
			t.Errorf("front end may not %s: got %v, want 403", what, err)
		}
	}
	forbidden("delete an offer", offers.Delete(ctx(t), "weather", metav1.DeleteOptions{}))
	_, err = offers.Patch(ctx(t), "weather", types.MergePatchType, []byte(`{"status":{"observedGeneration":9}}`), metav1.PatchOptions{}, "status")
	forbidden("write an offer's status", err)
	cur, err := offers.Get(ctx(t), "weather", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = offers.Update(ctx(t), cur, metav1.UpdateOptions{})
	forbidden("update (PUT) an offer", err)
	cur.SetResourceVersion("")
	cur.SetName("weather-copy")
	_, err = offers.Create(ctx(t), cur, metav1.CreateOptions{})
	forbidden("create an offer", err)
	_, err = feCS.CoreV1().Secrets(ns).List(ctx(t), metav1.ListOptions{})
	forbidden("list Secrets", err)
	_, err = feCS.CoreV1().Secrets("obol-frontend").Get(ctx(t), "any", metav1.GetOptions{})
	forbidden("read a Secret", err)

	// The policy is the front end's alone: an admin changes the price.
	if _, err := admin.Resource(serviceOffers).Namespace(ns).Patch(ctx(t), "weather", types.MergePatchType, []byte(priceChange), metav1.PatchOptions{}); err != nil {
		t.Errorf("admin price change refused: %v", err)
	}
}
