package testenv_test

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/obolstack/obol/internal/testenv"
)

var (
	kube    *testenv.Kube
	kubeErr error
)

func TestMain(m *testing.M) {
	kube, kubeErr = testenv.StartKube(testenv.WithCRDs("testdata/crds"))
	code := m.Run()
	kube.Stop()
	os.Exit(code)
}

// gadgetCRD is applied by the test itself, unlike Widget, which StartKube
// installs from testdata/crds.
func gadgetCRD() *apiextensionsv1.CustomResourceDefinition {
	minLen := int64(3)
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "gadgets.testenv.obol.dev"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "testenv.obol.dev",
			Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{
				Kind: "Gadget", ListKind: "GadgetList", Plural: "gadgets", Singular: "gadget",
			},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1alpha1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{
					OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
						Type: "object",
						Properties: map[string]apiextensionsv1.JSONSchemaProps{
							"spec": {
								Type:     "object",
								Required: []string{"price"},
								Properties: map[string]apiextensionsv1.JSONSchemaProps{
									"price": {Type: "string", MinLength: &minLen},
								},
							},
						},
					},
				},
			}},
		},
	}
}

func newObject(gvk schema.GroupVersionKind, ns, name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"spec": spec}}
	u.SetGroupVersionKind(gvk)
	u.SetNamespace(ns)
	u.SetName(name)
	return u
}

// TestKubeAppliesCRDAndRoundTripsObject proves the real API server runs:
// it applies a CRD, waits until it is established, creates an object of
// it, reads it back, and sees the CRD's schema enforced.
func TestKubeAppliesCRDAndRoundTripsObject(t *testing.T) {
	testenv.SkipOrFail(t, kubeErr)
	kube.LogOnFailure(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	crd := gadgetCRD()
	if err := kube.Client.Create(ctx, crd); err != nil {
		t.Fatalf("apply CRD: %v", err)
	}
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		if err := kube.Client.Get(ctx, client.ObjectKeyFromObject(crd), crd); err != nil {
			return false, err
		}
		for _, c := range crd.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("CRD %s never became Established: %v", crd.Name, err)
	}

	ns := kube.NewNamespace(t)
	gvk := schema.GroupVersionKind{Group: "testenv.obol.dev", Version: "v1alpha1", Kind: "Gadget"}
	obj := newObject(gvk, ns, "weather", map[string]any{"price": "0.001"})
	// Discovery of a just-established CRD may lag a moment: retry create.
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		if err := kube.Client.Create(ctx, obj.DeepCopy()); err != nil {
			t.Logf("create gadget: %v (retrying)", err)
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("create Gadget: %v", err)
	}

	got := &unstructured.Unstructured{}
	got.SetGroupVersionKind(gvk)
	if err := kube.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "weather"}, got); err != nil {
		t.Fatalf("read Gadget back: %v", err)
	}
	if price, _, _ := unstructured.NestedString(got.Object, "spec", "price"); price != "0.001" {
		t.Errorf("spec.price = %q, want %q", price, "0.001")
	}
	if got.GetUID() == "" || got.GetResourceVersion() == "" {
		t.Errorf("object has no uid/resourceVersion; not stored by the API server: %v", got.Object)
	}

	bad := newObject(gvk, ns, "too-short", map[string]any{"price": "1"})
	if err := kube.Client.Create(ctx, bad); !apierrors.IsInvalid(err) {
		t.Errorf("creating a Gadget that breaks the schema: got %v, want an Invalid error", err)
	}
}

// TestKubeInstallsCRDsAndWritesKubeconfig checks WithCRDs and that the
// kubeconfig file reaches the same API server, as --kubeconfig would.
func TestKubeInstallsCRDsAndWritesKubeconfig(t *testing.T) {
	testenv.SkipOrFail(t, kubeErr)
	kube.LogOnFailure(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	cfg, err := clientcmd.BuildConfigFromFlags("", kube.Kubeconfig)
	if err != nil {
		t.Fatalf("load %s: %v", kube.Kubeconfig, err)
	}
	c, err := client.New(cfg, client.Options{Scheme: kube.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	ns := kube.NewNamespace(t)
	gvk := schema.GroupVersionKind{Group: "testenv.obol.dev", Version: "v1", Kind: "Widget"}
	if err := c.Create(ctx, newObject(gvk, ns, "blue", map[string]any{"size": int64(3), "color": "blue"})); err != nil {
		t.Fatalf("create Widget through the kubeconfig file: %v", err)
	}
	got := &unstructured.Unstructured{}
	got.SetGroupVersionKind(gvk)
	if err := kube.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "blue"}, got); err != nil {
		t.Fatalf("read Widget back: %v", err)
	}
	if size, _, _ := unstructured.NestedInt64(got.Object, "spec", "size"); size != 3 {
		t.Errorf("spec.size = %d, want 3", size)
	}
}

// TestPrometheusScrapesHandler proves the real Prometheus runs: it scrapes
// an in-test /metrics handler, evaluates a recording rule, and the values
// come back through its HTTP API.
func TestPrometheusScrapesHandler(t *testing.T) {
	reg := prometheus.NewRegistry()
	paid := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "obol_testenv_proof_total",
		Help: "A counter the proof test sets to a known value.",
	})
	reg.MustRegister(paid)
	paid.Add(42)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()

	start := time.Now()
	prom := testenv.StartPrometheus(t, testenv.PromConfig{
		Targets:   []string{srv.URL},
		RuleFiles: []string{"testdata/rules.yaml"},
	})
	t.Logf("prometheus ready at %s after %s", prom.URL, time.Since(start).Round(time.Millisecond))

	prom.WaitForUp(t, "test", 1)
	prom.WaitForValue(t, `obol_testenv_proof_total{job="test"}`, 42)
	t.Logf("first sample after %s", time.Since(start).Round(time.Millisecond))

	paid.Add(8)
	prom.WaitForValue(t, `obol_testenv_proof_total`, 50)
	prom.WaitForValue(t, `job:obol_testenv_proof:sum{job="test"}`, 50)

	// Points fall at from + k*step; align from so the last one is exactly
	// end, after the sample the instant query above already saw.
	end := time.Now()
	from := end.Add(-end.Sub(start).Truncate(time.Second))
	m := prom.QueryRange(t, `obol_testenv_proof_total`, from, end, time.Second)
	if len(m) != 1 || len(m[0].Values) == 0 {
		t.Fatalf("range query: got %v, want one series with samples", m)
	}
	if last := m[0].Values[len(m[0].Values)-1].Value; last != 50 {
		t.Errorf("range query: last value %v, want 50", last)
	}
	if v, ok := prom.Value(t, `absent_metric_obol_testenv`); ok {
		t.Errorf("Value of a missing series = %v, want ok=false", v)
	}
}

// TestPromtoolChecksRules runs the real promtool on the rule file above.
func TestPromtoolChecksRules(t *testing.T) {
	out, err := exec.Command(testenv.Promtool(t), "check", "rules", filepath.Join("testdata", "rules.yaml")).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}
