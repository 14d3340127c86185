package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/obolstack/obol/internal/testenv"
)

var (
	kube    *testenv.Kube
	kubeErr error
)

// CRDs installed into the test API server besides the chart's own: the
// monitoring kinds the chart renders and the Gateway API the controller
// publishes HTTPRoutes to.
var extraCRDs = []string{
	"../../testdata/crds/prometheus-operator",
	"../../testdata/crds/gateway-api",
}

func TestMain(m *testing.M) {
	flagParse()
	if needsKube() {
		kube, kubeErr = testenv.StartKube(testenv.WithCRDs(extraCRDs...))
	}
	code := m.Run()
	kube.Stop()
	os.Exit(code)
}

func startKube(t *testing.T) *testenv.Kube {
	t.Helper()
	if !needsKube() {
		t.Skip("skipped by -run filter")
	}
	testenv.SkipOrFail(t, kubeErr)
	kube.LogOnFailure(t)
	return kube
}

func newStack(t *testing.T, ns, release string) (*Stack, *bytes.Buffer) {
	t.Helper()
	var progress bytes.Buffer
	s, err := New(Config{
		Kubeconfig:  kube.Kubeconfig,
		Namespace:   ns,
		ReleaseName: release,
		Version:     goldenVersion,
		CacheDir:    t.TempDir(),
		Progress:    &progress,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, &progress
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func objectKinds(objs []Object) map[string]int {
	m := map[string]int{}
	for _, o := range objs {
		m[o.Kind]++
	}
	return m
}

// Every object the chart renders (monitoring included) is sent to the real
// API server as a server-side dry run, with the prometheus-operator and
// Gateway API CRDs installed: zero rejections.
func TestServerSideDryRunEveryObject(t *testing.T) {
	k := startKube(t)
	ns := k.NewNamespace(t)
	s, _ := newStack(t, ns, "obol-dry")
	res, err := s.Install(ctx(t), InstallOptions{DryRun: true, Values: map[string]any{
		"frontend": map[string]any{"serviceAccount": map[string]any{"name": "earnings-ui-dry"}},
		// Set, so the buyer's claim is rendered although envtest has no
		// StorageClass (TestBuyerStorageFallback covers the fallback).
		"buyer": map[string]any{"persistence": map[string]any{"enabled": true}},
	}})
	if err != nil {
		t.Fatalf("install --dry-run: %v", err)
	}
	kinds := objectKinds(res.Objects)
	// auto mode saw monitoring.coreos.com/v1 on the server.
	for _, want := range []string{"CustomResourceDefinition", "ServiceMonitor", "PodMonitor", "PrometheusRule", "Deployment", "PodDisruptionBudget", "ClusterRole", "PersistentVolumeClaim"} {
		if kinds[want] == 0 {
			t.Errorf("dry run did not cover a %s (objects: %v)", want, kinds)
		}
	}
	if kinds["CustomResourceDefinition"] < 2 {
		t.Errorf("want the ServiceOffer and PurchaseRequest CRDs in the dry run, got %v", kinds)
	}
	if !res.DryRun || len(res.Notes) != 0 {
		t.Errorf("dry run result: dryRun=%v notes=%q", res.DryRun, res.Notes)
	}
	// Nothing was created.
	cs := clientset(t)
	if _, err := cs.AppsV1().Deployments(ns).Get(ctx(t), "obol-dry-verifier", metav1.GetOptions{}); err == nil {
		t.Error("the dry run created the verifier Deployment")
	}
	secrets, _ := cs.CoreV1().Secrets(ns).List(ctx(t), metav1.ListOptions{LabelSelector: "owner=helm"})
	if len(secrets.Items) != 0 {
		t.Errorf("the dry run stored a release: %d helm secrets", len(secrets.Items))
	}

	// The same objects, rendered client-side, applied one by one as a
	// server-side dry run: the render path must agree with the server too.
	// The verifier uses the facilitator fallback list here (its header
	// variables come from a Secret), the install above the default URL.
	vals := fallbackValues()
	vals["frontend"] = map[string]any{"serviceAccount": map[string]any{"namespace": ns}}
	r, err := Render(RenderOptions{Namespace: ns, ReleaseName: "obol-dry", Version: goldenVersion, APIVersions: []string{MonitoringAPIVersion},
		Values: vals})
	if err != nil {
		t.Fatal(err)
	}
	objs, err := SplitManifest(r.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.applier()
	if err != nil {
		t.Fatal(err)
	}
	rejected := 0
	for _, u := range objs {
		if err := a.apply(ctx(t), u, true); err != nil {
			rejected++
			t.Errorf("API server rejected %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}
	t.Logf("server-side dry run: %d objects, %d rejected", len(objs), rejected)
	var fallbackEnv bool
	for _, u := range objs {
		if u.GetKind() == "Deployment" && u.GetName() == "obol-dry-verifier" {
			fallbackEnv = strings.Contains(fmt.Sprint(u.Object), "OBOL_FACILITATOR_0_HEADER_0")
		}
	}
	if !fallbackEnv {
		t.Error("the dry-run verifier Deployment lacks the facilitator fallback's header variable")
	}
}

// A dry run into a namespace that does not exist yet says so instead of
// failing on every namespaced object.
func TestDryRunMissingNamespace(t *testing.T) {
	startKube(t)
	s, _ := newStack(t, "obol-not-created-yet", "obol-nons")
	res, err := s.Install(ctx(t), InstallOptions{DryRun: true, Values: map[string]any{
		"frontend": map[string]any{"rbac": map[string]any{"create": false}},
		"buyer":    map[string]any{"persistence": map[string]any{"enabled": false}},
	}})
	if err != nil {
		t.Fatalf("install --dry-run: %v", err)
	}
	if len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "does not exist yet") {
		t.Errorf("notes %q", res.Notes)
	}
}

func clientset(t *testing.T) *kubernetes.Clientset {
	t.Helper()
	cs, err := kubernetes.NewForConfig(kube.Config)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

type access struct {
	verb, group, resource, subresource, namespace string
	allowed                                       bool
}

func checkAccess(t *testing.T, cs *kubernetes.Clientset, ns, sa string, checks []access) {
	t.Helper()
	user := "system:serviceaccount:" + ns + ":" + sa
	for _, c := range checks {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   user,
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Verb: c.verb, Group: c.group, Resource: c.resource, Subresource: c.subresource, Namespace: c.namespace,
			},
		}}
		got, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx(t), sar, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("SubjectAccessReview: %v", err)
		}
		res := c.resource
		if c.subresource != "" {
			res += "/" + c.subresource
		}
		if got.Status.Allowed != c.allowed {
			t.Errorf("%s: %s %s.%s in %q: allowed=%v, want %v (%s)", sa, c.verb, res, c.group, c.namespace, got.Status.Allowed, c.allowed, got.Status.Reason)
		}
	}
}

// A real install (no --wait: envtest runs no kubelet), then RBAC proven with
// SubjectAccessReviews against the bindings the chart created, then status,
// upgrade and uninstall of the same release.
func TestInstallRBACUpgradeUninstall(t *testing.T) {
	startKube(t)
	ns := kube.NewNamespace(t)
	s, progress := newStack(t, ns, "obol")
	vals, err := Values(nil, []string{"verifier.payTo=0x2222222222222222222222222222222222222222"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Install(ctx(t), InstallOptions{Values: vals})
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	if res.Status != "deployed" || res.Revision != 1 {
		t.Errorf("install: status %q revision %d", res.Status, res.Revision)
	}
	if !strings.Contains(progress.String(), "applied CustomResourceDefinition serviceoffers.obol.org") {
		t.Errorf("progress lacks the CRD lines:\n%s", progress)
	}
	if _, err := s.Install(ctx(t), InstallOptions{}); err == nil || !strings.Contains(err.Error(), "obol stack upgrade") {
		t.Errorf("second install: want an error pointing at upgrade, got %v", err)
	}

	cs := clientset(t)
	other := "default"
	t.Run("frontend", func(t *testing.T) {
		// The default binding is the obol web front end's account.
		checkAccess(t, cs, "obol-frontend", "obol-frontend", []access{
			{"get", "obol.org", "purchaserequests", "", other, true},
			{"list", "obol.org", "purchaserequests", "", "", true},
			{"watch", "obol.org", "purchaserequests", "", other, true},
			{"get", "obol.org", "serviceoffers", "", other, true},
			{"list", "obol.org", "serviceoffers", "", "", true},
			{"watch", "obol.org", "serviceoffers", "", other, true},
			{"get", "", "secrets", "", ns, false},
			{"get", "", "secrets", "", other, false},
			{"list", "", "secrets", "", "", false},
			{"update", "obol.org", "purchaserequests", "status", other, false},
			{"patch", "obol.org", "purchaserequests", "status", other, false},
			{"get", "obol.org", "purchaserequests", "status", other, false},
			{"update", "obol.org", "purchaserequests", "", other, false},
			{"create", "obol.org", "purchaserequests", "", other, false},
			{"delete", "obol.org", "serviceoffers", "", other, false},
			{"update", "obol.org", "serviceoffers", "status", other, false},
			{"patch", "obol.org", "serviceoffers", "status", other, false},
			{"update", "obol.org", "serviceoffers", "", other, false},
			{"create", "obol.org", "serviceoffers", "", other, false},
			// Narrowed to the paused annotation by the admission policy.
			{"patch", "obol.org", "serviceoffers", "", other, true},
		})
		checkAccess(t, cs, ns, "obol-frontend", []access{
			{"list", "obol.org", "serviceoffers", "", "", false},
		})
	})
	t.Run("frontend pause only", func(t *testing.T) { checkFrontendPauseOnly(t, ns) })
	t.Run("verifier", func(t *testing.T) {
		checkAccess(t, cs, ns, "obol-verifier", []access{
			{"get", "obol.org", "serviceoffers", "", other, true},
			{"list", "obol.org", "serviceoffers", "", "", true},
			{"watch", "obol.org", "serviceoffers", "", "", true},
			{"update", "obol.org", "serviceoffers", "", other, false},
			{"patch", "obol.org", "serviceoffers", "", other, false},
			{"delete", "obol.org", "serviceoffers", "", other, false},
			{"create", "obol.org", "serviceoffers", "", other, false},
			{"update", "obol.org", "serviceoffers", "status", other, false},
			{"get", "", "secrets", "", ns, false},
			{"list", "", "secrets", "", "", false},
			{"get", "obol.org", "purchaserequests", "", other, false},
			{"list", "", "configmaps", "", ns, false},
			{"create", "gateway.networking.k8s.io", "httproutes", "", other, false},
		})
	})
	t.Run("controller", func(t *testing.T) {
		checkAccess(t, cs, ns, "obol-controller", []access{
			{"watch", "obol.org", "serviceoffers", "", "", true},
			{"update", "obol.org", "serviceoffers", "status", other, true},
			{"update", "obol.org", "serviceoffers", "finalizers", other, true},
			{"patch", "obol.org", "purchaserequests", "status", other, true},
			{"list", "", "services", "", "", true},
			{"create", "gateway.networking.k8s.io", "httproutes", "", other, true},
			{"delete", "gateway.networking.k8s.io", "httproutes", "", other, true},
			{"create", "", "events", "", other, true},
			{"create", "coordination.k8s.io", "leases", "", ns, true},
			{"create", "coordination.k8s.io", "leases", "", other, false},
			{"update", "", "configmaps", "", ns, true},
			{"update", "", "configmaps", "", other, false},
			{"create", "gateway.networking.k8s.io", "referencegrants", "", ns, true},
			{"create", "gateway.networking.k8s.io", "referencegrants", "", other, false},
			{"get", "", "secrets", "", ns, false},
			{"delete", "obol.org", "serviceoffers", "", other, false},
			{"delete", "", "services", "", other, false},
		})
	})

	t.Run("buyer", func(t *testing.T) { checkBuyerWatch(t, cs, ns) })

	st, err := s.Status(ctx(t))
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	if st.Status != "deployed" || len(st.Deployments) != 3 || !st.Monitoring || st.AppVersion != goldenVersion {
		t.Errorf("status %+v", st)
	}

	// Upgrade keeps the earlier values and applies the new ones.
	up, err := s.Upgrade(ctx(t), InstallOptions{Values: map[string]any{"verifier": map[string]any{"replicas": 2}}})
	if err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	if up.Revision != 2 || up.Status != "deployed" {
		t.Errorf("upgrade: revision %d status %q", up.Revision, up.Status)
	}
	d, err := cs.AppsV1().Deployments(ns).Get(ctx(t), "obol-verifier", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *d.Spec.Replicas != 2 {
		t.Errorf("verifier replicas %d after upgrade, want 2", *d.Spec.Replicas)
	}
	cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx(t), "obol-verifier", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(cm.Data["config.yaml"], "0x2222222222222222222222222222222222222222") {
		t.Errorf("upgrade dropped the install's payTo:\n%s", cm.Data["config.yaml"])
	}

	// --wait with a deadline: no kubelet runs pods here, so the rollout
	// never finishes; the progress lines say what is being waited for.
	progress.Reset()
	_, err = s.Upgrade(ctx(t), InstallOptions{Wait: true, Timeout: 5 * time.Second})
	if err == nil {
		t.Error("upgrade --wait finished although no pod can run in envtest")
	}
	if !strings.Contains(progress.String(), "deployment/obol-verifier: 0/2 ready") {
		t.Errorf("no rollout progress lines:\n%s", progress)
	}

	// A context that is already done uninstalls nothing.
	done, cancel := context.WithCancel(ctx(t))
	cancel()
	if _, err := s.Uninstall(done, UninstallOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("uninstall with a cancelled context: err = %v, want context.Canceled", err)
	}
	if _, err := cs.RbacV1().ClusterRoles().Get(ctx(t), "obol-frontend", metav1.GetOptions{}); err != nil {
		t.Errorf("uninstall with a cancelled context removed objects: %v", err)
	}

	un, err := s.Uninstall(ctx(t), UninstallOptions{})
	if err != nil {
		t.Fatalf("uninstall: %v", err)
	}
	if un.Status != "uninstalled" && !strings.Contains(strings.ToLower(un.Status), "uninstall") {
		t.Errorf("uninstall status %q", un.Status)
	}
	if _, err := cs.RbacV1().ClusterRoles().Get(ctx(t), "obol-frontend", metav1.GetOptions{}); err == nil {
		t.Error("ClusterRole obol-frontend still there after uninstall")
	}
	if _, err := s.Status(ctx(t)); err == nil || !strings.Contains(err.Error(), "obol stack install") {
		t.Errorf("status after uninstall: %v", err)
	}
}

// Monitoring forced on against a cluster that has the CRDs works; forced off
// leaves them out even though the cluster has them.
func TestMonitoringForcedOff(t *testing.T) {
	startKube(t)
	ns := kube.NewNamespace(t)
	s, _ := newStack(t, ns, "obol-nomon")
	res, err := s.Install(ctx(t), InstallOptions{DryRun: true, Values: map[string]any{
		"monitoring": map[string]any{"enabled": false},
		"frontend":   map[string]any{"rbac": map[string]any{"create": false}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if k := objectKinds(res.Objects); k["ServiceMonitor"]+k["PodMonitor"]+k["PrometheusRule"] != 0 {
		t.Errorf("monitoring.enabled=false rendered monitoring objects: %v", k)
	}
}

// Without a default StorageClass the buyer's claim would stay Pending and
// the buyer would never start: install falls back to an emptyDir and says
// so, unless the user chose persistence or a class.
func TestBuyerStorageFallback(t *testing.T) {
	startKube(t)
	ns := kube.NewNamespace(t)
	s, _ := newStack(t, ns, "obol-sc")
	cs := clientset(t)
	install := func(vals map[string]any) (claim, noted bool) {
		t.Helper()
		res, err := s.Install(ctx(t), InstallOptions{DryRun: true, Values: vals})
		if err != nil {
			t.Fatalf("install --dry-run: %v", err)
		}
		for _, n := range res.Notes {
			noted = noted || n == NoStorageClassNote
		}
		return objectKinds(res.Objects)["PersistentVolumeClaim"] == 1, noted
	}
	buyerPersistence := func(kv ...any) map[string]any {
		p := map[string]any{}
		for i := 0; i < len(kv); i += 2 {
			p[kv[i].(string)] = kv[i+1]
		}
		return map[string]any{"buyer": map[string]any{"persistence": p}}
	}
	newClass := func(name string, isDefault bool) {
		t.Helper()
		sc := &storagev1.StorageClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Provisioner: "kubernetes.io/no-provisioner"}
		if isDefault {
			sc.Annotations = map[string]string{defaultClassAnnotation: "true"}
		}
		if _, err := cs.StorageV1().StorageClasses().Create(ctx(t), sc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cs.StorageV1().StorageClasses().Delete(context.Background(), name, metav1.DeleteOptions{}) })
	}

	if claim, noted := install(nil); claim || !noted {
		t.Errorf("no StorageClass: claim=%v noted=%v, want an emptyDir and the note", claim, noted)
	}
	if claim, noted := install(buyerPersistence("enabled", true)); !claim || noted {
		t.Errorf("persistence.enabled=true: claim=%v noted=%v, want the claim as asked", claim, noted)
	}
	if claim, noted := install(buyerPersistence("storageClassName", "fast")); !claim || noted {
		t.Errorf("storageClassName set: claim=%v noted=%v, want the claim", claim, noted)
	}
	newClass("obol-test-other", false)
	if claim, noted := install(nil); claim || !noted {
		t.Errorf("only a non-default class: claim=%v noted=%v, want the fallback", claim, noted)
	}
	newClass("obol-test-default", true)
	if claim, noted := install(nil); !claim || noted {
		t.Errorf("default class: claim=%v noted=%v, want the claim", claim, noted)
	}
}
