package stack

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chartutil"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	obolchart "github.com/obolstack/obol/charts/obol"
	"github.com/obolstack/obol/internal/verifier"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldenVersion stands in for buildinfo.Version so goldens do not depend on
// how the test binary was built.
const goldenVersion = "0.0.0-golden"

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden %s: %v (run go test ./internal/stack -run %s -update)", path, err, t.Name())
	}
	if string(want) != got {
		t.Errorf("render differs from %s (run with -update if the change is intended)\n%s", path, firstDiff(string(want), got))
	}
}

func firstDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return "line " + strconv.Itoa(i+1) + ":\n  want: " + w + "\n  got:  " + g
		}
	}
	return ""
}

func render(t *testing.T, opts RenderOptions) (*Rendered, []*unstructured.Unstructured) {
	t.Helper()
	if opts.Version == "" {
		opts.Version = goldenVersion
	}
	r, err := Render(opts)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	objs, err := SplitManifest(r.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	return r, objs
}

func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && (name == "" || o.GetName() == name) {
			return o
		}
	}
	return nil
}

func kinds(objs []*unstructured.Unstructured) map[string]int {
	m := map[string]int{}
	for _, o := range objs {
		m[o.GetKind()]++
	}
	return m
}

func TestRenderDefaultGolden(t *testing.T) {
	r, objs := render(t, RenderOptions{})
	checkGolden(t, "render-default.golden", r.Manifest)
	k := kinds(objs)
	for _, want := range []string{"Deployment", "Service", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ConfigMap", "PodDisruptionBudget"} {
		if k[want] == 0 {
			t.Errorf("default render has no %s", want)
		}
	}
	if k["Deployment"] != 3 {
		t.Errorf("want 3 Deployments (verifier, controller, buyer), got %d", k["Deployment"])
	}
	for _, mon := range []string{"ServiceMonitor", "PodMonitor", "PrometheusRule"} {
		if k[mon] != 0 {
			t.Errorf("%s rendered although monitoring.coreos.com/v1 is not available and monitoring.enabled=auto", mon)
		}
	}
	if len(r.Notes) != 1 || !strings.Contains(r.Notes[0], "monitoring.coreos.com/v1") {
		t.Errorf("want one note about skipped monitoring objects, got %q", r.Notes)
	}
	if k["Namespace"] != 0 {
		t.Errorf("namespace.create defaults to false, but a Namespace was rendered")
	}
}

func TestRenderMonitoringGolden(t *testing.T) {
	r, objs := render(t, RenderOptions{APIVersions: []string{MonitoringAPIVersion}})
	checkGolden(t, "render-monitoring.golden", r.Manifest)
	if len(r.Notes) != 0 {
		t.Errorf("unexpected notes %q", r.Notes)
	}
	sm := find(objs, "ServiceMonitor", "obol-verifier")
	if sm == nil {
		t.Fatal("no ServiceMonitor obol-verifier")
	}
	if sm.GetLabels()["release"] != "monitoring" {
		t.Errorf("ServiceMonitor labels %v lack release=monitoring", sm.GetLabels())
	}
	eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	if len(eps) != 1 {
		t.Fatalf("ServiceMonitor endpoints %v", eps)
	}
	ep := eps[0].(map[string]any)
	if ep["port"] != "http" || ep["path"] != "/metrics" || ep["interval"] != "30s" {
		t.Errorf("ServiceMonitor endpoint %v: want port http, path /metrics, interval 30s", ep)
	}
	pm := find(objs, "PodMonitor", "obol-buyer")
	if pm == nil || pm.GetLabels()["release"] != "monitoring" {
		t.Fatalf("PodMonitor obol-buyer missing or without release=monitoring: %v", pm)
	}
	pr := find(objs, "PrometheusRule", "")
	if pr == nil || pr.GetLabels()["release"] != "monitoring" {
		t.Fatalf("PrometheusRule missing or without release=monitoring")
	}
	names := ruleNames(t, pr)
	for _, want := range []string{
		"x402:revenue:24h_by_offer_chain", "x402:revenue:7d_by_offer_chain", "x402:revenue:lifetime_by_offer",
		"x402:settlement_rate:1h_by_offer_chain", "x402:revenue_atomic:24h_by_offer_chain_asset",
		"x402:revenue_atomic:7d_by_offer_chain_asset", "x402:revenue_atomic:lifetime_by_offer_chain_asset",
		"X402PaymentFailureRateHigh", "X402NoSettlementsAfterChallenge", "X402BuyerUnsettledConfirmations",
	} {
		if !names[want] {
			t.Errorf("PrometheusRule lacks %s", want)
		}
	}
	// The Service port the ServiceMonitor scrapes is named http.
	svc := find(objs, "Service", "obol-verifier")
	ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
	if p := ports[0].(map[string]any); p["name"] != "http" || p["port"] != float64(8080) {
		t.Errorf("verifier Service port %v: want name http, port 8080", p)
	}
}

func ruleNames(t *testing.T, pr *unstructured.Unstructured) map[string]bool {
	t.Helper()
	groups, _, _ := unstructured.NestedSlice(pr.Object, "spec", "groups")
	names := map[string]bool{}
	for _, g := range groups {
		rules, _ := g.(map[string]any)["rules"].([]any)
		for _, r := range rules {
			rm := r.(map[string]any)
			if n, ok := rm["record"].(string); ok {
				names[n] = true
			}
			if n, ok := rm["alert"].(string); ok {
				names[n] = true
			}
		}
	}
	return names
}

func TestRenderMonitoringModes(t *testing.T) {
	cases := []struct {
		name    string
		enabled any
		apis    []string
		want    bool
	}{
		{"auto without API", "auto", nil, false},
		{"auto with API", "auto", []string{MonitoringAPIVersion}, true},
		{"forced on without API", true, nil, true},
		{"forced on as string", "true", nil, true},
		{"forced off with API", false, []string{MonitoringAPIVersion}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, objs := render(t, RenderOptions{APIVersions: tc.apis, Values: map[string]any{"monitoring": map[string]any{"enabled": tc.enabled}}})
			k := kinds(objs)
			got := k["ServiceMonitor"] == 1 && k["PodMonitor"] == 1 && k["PrometheusRule"] == 1
			none := k["ServiceMonitor"]+k["PodMonitor"]+k["PrometheusRule"] == 0
			if tc.want && !got || !tc.want && !none {
				t.Errorf("monitoring objects %v, want rendered=%v", k, tc.want)
			}
			if tc.enabled != "auto" && len(r.Notes) != 0 {
				t.Errorf("notes %q for an explicit monitoring.enabled", r.Notes)
			}
		})
	}
	_, err := Render(RenderOptions{Values: map[string]any{"monitoring": map[string]any{"enabled": "maybe"}}})
	if err == nil || !strings.Contains(err.Error(), "auto, true or false") {
		t.Errorf("monitoring.enabled=maybe: want a clear error, got %v", err)
	}
}

func TestRenderImageAndArgs(t *testing.T) {
	_, objs := render(t, RenderOptions{Version: "v1.2.3"})
	want := map[string][]string{
		"obol-verifier":   {"verifier", "serve"},
		"obol-controller": {"controller"},
		"obol-buyer":      {"buyer", "serve"},
	}
	for name, prefix := range want {
		d := find(objs, "Deployment", name)
		if d == nil {
			t.Fatalf("no Deployment %s", name)
		}
		c := containers(t, d)[0]
		if c["image"] != "ghcr.io/obolstack/obol:v1.2.3" {
			t.Errorf("%s image %v, want ghcr.io/obolstack/obol:v1.2.3 (the binary's version)", name, c["image"])
		}
		args := c["args"].([]any)
		for i, p := range prefix {
			if args[i] != p {
				t.Errorf("%s args %v, want prefix %v", name, args, prefix)
			}
		}
	}
	v := containers(t, find(objs, "Deployment", "obol-verifier"))[0]
	if !containsArg(v["args"].([]any), "--route-source=kube") {
		t.Errorf("verifier args %v lack --route-source=kube", v["args"])
	}

	_, objs = render(t, RenderOptions{Version: "v1.2.3", Values: map[string]any{"image": map[string]any{"tag": "pinned", "repository": "example.com/obol"}}})
	if c := containers(t, find(objs, "Deployment", "obol-buyer"))[0]; c["image"] != "example.com/obol:pinned" {
		t.Errorf("image.tag/repository not honoured: %v", c["image"])
	}
}

// A stopping verifier lets a paid request waiting for its settlement
// finish: its --shutdown-timeout covers the settle deadline at the default
// facilitatorTimeout, and the pod's grace period covers the shutdown.
func TestRenderVerifierDrainsSettlements(t *testing.T) {
	_, objs := render(t, RenderOptions{Version: "v1.2.3"})
	d := find(objs, "Deployment", "obol-verifier")
	v, _, _ := unstructured.NestedFieldNoCopy(d.Object, "spec", "template", "spec", "terminationGracePeriodSeconds")
	var grace int64
	switch n := v.(type) {
	case int64:
		grace = n
	case float64:
		grace = int64(n)
	}
	var shutdown time.Duration
	for _, a := range containers(t, d)[0]["args"].([]any) {
		if v, ok := strings.CutPrefix(a.(string), "--shutdown-timeout="); ok {
			var err error
			if shutdown, err = time.ParseDuration(v); err != nil {
				t.Fatal(err)
			}
		}
	}
	deadline := verifier.SettleDeadline(verifier.DefaultFacilitatorTimeout)
	if shutdown < deadline || time.Duration(grace)*time.Second <= shutdown {
		t.Fatalf("verifier --shutdown-timeout %s, grace period %d s: want shutdown ≥ the settle deadline %s and grace above it", shutdown, grace, deadline)
	}
}

func TestRenderVerifierConfig(t *testing.T) {
	vals, err := Values(nil, []string{"verifier.payTo=0x1111111111111111111111111111111111111111", "verifier.chain=eip155:8453", "verifier.facilitatorURL=https://facilitator.example"})
	if err != nil {
		t.Fatal(err)
	}
	_, objs := render(t, RenderOptions{Values: vals})
	cm := find(objs, "ConfigMap", "obol-verifier")
	cfg, _, _ := unstructured.NestedString(cm.Object, "data", "config.yaml")
	for _, want := range []string{`payTo: "0x1111111111111111111111111111111111111111"`, `chain: "eip155:8453"`, `facilitatorURL: "https://facilitator.example"`, `mode: "proxy"`} {
		if !strings.Contains(cfg, want) {
			t.Errorf("verifier config lacks %q:\n%s", want, cfg)
		}
	}
}

// Facilitator headers: the pricing file names an environment variable,
// which the Deployment fills from the Secret; no value is in the chart.
func TestRenderFacilitatorHeaders(t *testing.T) {
	vals := map[string]any{"verifier": map[string]any{"facilitatorHeaders": []any{
		map[string]any{"header": "Authorization", "secretName": "facilitator-auth", "secretKey": "token"}}}}
	_, objs := render(t, RenderOptions{Values: vals})
	cm := find(objs, "ConfigMap", "obol-verifier")
	cfg, _, _ := unstructured.NestedString(cm.Object, "data", "config.yaml")
	if !strings.Contains(cfg, `header: "Authorization"`) || !strings.Contains(cfg, `valueFromEnv: "OBOL_FACILITATOR_HEADER_0"`) {
		t.Fatalf("verifier config lacks the facilitator header:\n%s", cfg)
	}
	c := containers(t, find(objs, "Deployment", "obol-verifier"))[0]
	found := false
	for _, e := range c["env"].([]any) {
		env := e.(map[string]any)
		if env["name"] != "OBOL_FACILITATOR_HEADER_0" {
			continue
		}
		ref, _, _ := unstructured.NestedStringMap(env, "valueFrom", "secretKeyRef")
		found = ref["name"] == "facilitator-auth" && ref["key"] == "token"
	}
	if !found {
		t.Fatalf("no OBOL_FACILITATOR_HEADER_0 from the Secret in the verifier's env: %v", c["env"])
	}
}

func TestRenderRejectsBadPayTo(t *testing.T) {
	_, err := Render(RenderOptions{Values: map[string]any{"verifier": map[string]any{"payTo": "0x123"}}})
	if err == nil || !strings.Contains(err.Error(), "verifier.payTo") {
		t.Errorf("payTo 0x123: want an error naming verifier.payTo, got %v", err)
	}
}

func TestRenderRefusesVerifyOnlyReplicas(t *testing.T) {
	v := map[string]any{"mode": "forwardAuth", "forwardAuth": "verify-only", "replicas": 2}
	_, err := Render(RenderOptions{Values: map[string]any{"verifier": v}})
	if err == nil || !strings.Contains(err.Error(), "once per replica") {
		t.Fatalf("verify-only with 2 replicas: want a refusal, got %v", err)
	}
	v["verifyOnlySettledElsewhere"] = true
	if _, err := Render(RenderOptions{Values: map[string]any{"verifier": v}}); err != nil {
		t.Fatalf("verify-only with 2 replicas, settled elsewhere: %v", err)
	}
	v["verifyOnlySettledElsewhere"], v["replicas"] = false, 1
	if _, err := Render(RenderOptions{Values: map[string]any{"verifier": v}}); err != nil {
		t.Fatalf("verify-only with 1 replica: %v", err)
	}
}

func containers(t *testing.T, d *unstructured.Unstructured) []map[string]any {
	t.Helper()
	cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	out := make([]map[string]any, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.(map[string]any))
	}
	return out
}

func containsArg(args []any, want string) bool {
	for _, a := range args {
		if a == want {
			return true
		}
	}
	return false
}

func TestRenderSecurityContexts(t *testing.T) {
	_, objs := render(t, RenderOptions{})
	_, devnet := render(t, RenderOptions{Values: map[string]any{"devnet": map[string]any{"enabled": true}}})
	for _, d := range append(objs, devnet...) {
		if d.GetKind() != "Deployment" {
			continue
		}
		pod, _, _ := unstructured.NestedMap(d.Object, "spec", "template", "spec", "securityContext")
		if pod["runAsNonRoot"] != true {
			t.Errorf("%s: pod runAsNonRoot %v", d.GetName(), pod["runAsNonRoot"])
		}
		if sp, _ := pod["seccompProfile"].(map[string]any); sp["type"] != "RuntimeDefault" {
			t.Errorf("%s: pod seccompProfile %v", d.GetName(), pod["seccompProfile"])
		}
		for _, c := range containers(t, d) {
			sc, _ := c["securityContext"].(map[string]any)
			if sc["readOnlyRootFilesystem"] != true || sc["allowPrivilegeEscalation"] != false || sc["runAsNonRoot"] != true {
				t.Errorf("%s/%s: securityContext %v", d.GetName(), c["name"], sc)
			}
			caps, _ := sc["capabilities"].(map[string]any)
			if drop, _ := caps["drop"].([]any); len(drop) != 1 || drop[0] != "ALL" {
				t.Errorf("%s/%s: capabilities %v, want drop [ALL]", d.GetName(), c["name"], caps)
			}
		}
	}
}

// The front end reads offers and purchase requests and patches offers
// (narrowed by the admission policy to the paused annotation): nothing else,
// and never secrets or status subresources.
func TestRenderFrontendRBACIsLeastPrivilege(t *testing.T) {
	_, objs := render(t, RenderOptions{Values: map[string]any{"frontend": map[string]any{"serviceAccount": map[string]any{"name": "earnings-ui", "namespace": "web"}}}})
	cr := find(objs, "ClusterRole", "obol-frontend")
	if cr == nil {
		t.Fatal("no ClusterRole obol-frontend")
	}
	rules, _, _ := unstructured.NestedSlice(cr.Object, "rules")
	for _, r := range rules {
		rm := r.(map[string]any)
		for _, res := range rm["resources"].([]any) {
			if res == "secrets" || strings.Contains(res.(string), "/") || res == "*" {
				t.Errorf("front-end ClusterRole grants %v", res)
			}
		}
		for _, v := range rm["verbs"].([]any) {
			if v == "patch" && len(rm["resources"].([]any)) == 1 && rm["resources"].([]any)[0] == "serviceoffers" {
				continue
			}
			if v != "get" && v != "list" && v != "watch" {
				t.Errorf("front-end ClusterRole grants verb %v on %v", v, rm["resources"])
			}
		}
	}
	// The patch is narrowed to the front end's account by the policy.
	vap := find(objs, "ValidatingAdmissionPolicy", "obol-frontend-pause-only")
	if vap == nil || find(objs, "ValidatingAdmissionPolicyBinding", "obol-frontend-pause-only") == nil {
		t.Fatal("no ValidatingAdmissionPolicy (and binding) obol-frontend-pause-only")
	}
	conds, _, _ := unstructured.NestedSlice(vap.Object, "spec", "matchConditions")
	if len(conds) != 1 || !strings.Contains(conds[0].(map[string]any)["expression"].(string), `"system:serviceaccount:web:earnings-ui"`) {
		t.Errorf("policy does not match the overridden account: %v", conds)
	}
	crb := find(objs, "ClusterRoleBinding", "obol-frontend")
	subj, _, _ := unstructured.NestedSlice(crb.Object, "subjects")
	if s := subj[0].(map[string]any); s["name"] != "earnings-ui" || s["namespace"] != "web" {
		t.Errorf("binding subject %v, want earnings-ui in web", s)
	}
	if sa := find(objs, "ServiceAccount", "earnings-ui"); sa != nil {
		t.Errorf("front-end ServiceAccount rendered although serviceAccount.create defaults to false")
	}
	// Defaults: the obol web front end's account, obol-frontend/obol-frontend.
	_, objs = render(t, RenderOptions{})
	subj, _, _ = unstructured.NestedSlice(find(objs, "ClusterRoleBinding", "obol-frontend").Object, "subjects")
	if s := subj[0].(map[string]any); s["name"] != "obol-frontend" || s["namespace"] != "obol-frontend" {
		t.Errorf("default binding subject %v, want obol-frontend in obol-frontend", s)
	}
	_, objs = render(t, RenderOptions{Values: map[string]any{"frontend": map[string]any{"serviceAccount": map[string]any{"create": true, "namespace": "web"}}}})
	if sa := find(objs, "ServiceAccount", "obol-frontend"); sa == nil || sa.GetNamespace() != "web" {
		t.Errorf("serviceAccount.create=true: ServiceAccount obol-frontend/web not rendered")
	}
}

func TestRenderNamespaceAndDisable(t *testing.T) {
	_, objs := render(t, RenderOptions{Namespace: "payments", Values: map[string]any{"namespace": map[string]any{"create": true}}})
	if ns := find(objs, "Namespace", "payments"); ns == nil {
		t.Error("namespace.create=true: no Namespace payments")
	}
	for _, o := range objs {
		if o.GetKind() != "Namespace" && o.GetKind() != "CustomResourceDefinition" && !strings.HasPrefix(o.GetKind(), "Cluster") && !strings.HasPrefix(o.GetKind(), "ValidatingAdmissionPolicy") && o.GetNamespace() != "payments" {
			t.Errorf("%s %s in namespace %q, want payments", o.GetKind(), o.GetName(), o.GetNamespace())
		}
	}
	_, objs = render(t, RenderOptions{Values: map[string]any{"buyer": map[string]any{"enabled": false}, "controller": map[string]any{"enabled": false}}})
	if k := kinds(objs); k["Deployment"] != 1 {
		t.Errorf("with buyer and controller disabled: %d Deployments, want 1", k["Deployment"])
	}
}

func TestValuesFilesAndSets(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.yaml")
	b := filepath.Join(dir, "b.yaml")
	os.WriteFile(a, []byte("verifier:\n  payTo: \"0xaaa\"\n  chain: base\nmonitoring:\n  labels:\n    release: kps\n"), 0o644)
	os.WriteFile(b, []byte("verifier:\n  chain: base-sepolia\n"), 0o644)
	vals, err := Values([]string{a, b}, []string{"verifier.replicas=2", "monitoring.enabled=false"})
	if err != nil {
		t.Fatal(err)
	}
	v := vals["verifier"].(map[string]any)
	if v["payTo"] != "0xaaa" || v["chain"] != "base-sepolia" || v["replicas"] != int64(2) {
		t.Errorf("merged verifier values %v", v)
	}
	if m := vals["monitoring"].(map[string]any); m["enabled"] != false || m["labels"].(map[string]any)["release"] != "kps" {
		t.Errorf("merged monitoring values %v", m)
	}
	if _, err := Values([]string{filepath.Join(dir, "missing.yaml")}, nil); err == nil {
		t.Error("missing values file: no error")
	}
	if _, err := Values(nil, []string{"novalue"}); err == nil || !strings.Contains(err.Error(), "--set") {
		t.Errorf("bad --set: %v", err)
	}
}

// helm lint through the library, on the embedded chart written to disk.
func TestHelmLint(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "obol")
	files, err := obolchart.Files()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		p := filepath.Join(dir, f.Name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, vals := range []map[string]any{
		{},
		{"monitoring": map[string]any{"enabled": true}},
		{"devnet": map[string]any{"enabled": true}},
	} {
		lint := action.NewLint()
		lint.Strict = true
		lint.Namespace = DefaultNamespace
		kv, _ := chartutil.ParseKubeVersion(DefaultKubeVersion)
		lint.KubeVersion = kv
		res := lint.Run([]string{dir}, vals)
		if res.TotalChartsLinted != 1 {
			t.Fatalf("linted %d charts: %v", res.TotalChartsLinted, res.Errors)
		}
		for _, m := range res.Messages {
			t.Logf("lint: %s", m)
		}
		if len(res.Errors) > 0 {
			t.Errorf("helm lint (strict) with %v: %v", vals, res.Errors)
		}
	}
}

func TestDevImageNote(t *testing.T) {
	if devImageNote("v1.0.0", nil) != "" {
		t.Error("note for a released version")
	}
	if devImageNote("dev", map[string]any{"image": map[string]any{"tag": "v1.0.0"}}) != "" {
		t.Error("note although image.tag is set")
	}
	if n := devImageNote("dev", map[string]any{}); !strings.Contains(n, "image.tag") {
		t.Errorf("dev build without image.tag: note %q", n)
	}
}

// `make image` must tag the image the way the chart defaults to: the chart
// repository, and the VERSION the same make run stamps into the binary (the
// chart's default tag is the installing binary's version).
func TestMakeImageTagMatchesChartDefault(t *testing.T) {
	mk, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	var repo string
	for _, line := range strings.Split(string(mk), "\n") {
		if k, v, ok := strings.Cut(line, "?="); ok && strings.TrimSpace(k) == "IMAGE_REPO" {
			repo = strings.TrimSpace(v)
		}
	}
	if repo == "" {
		t.Fatal("Makefile has no IMAGE_REPO ?= line")
	}
	if !strings.Contains(string(mk), "--tag $(IMAGE_REPO):$(VERSION)") || !strings.Contains(string(mk), "$(BUILDINFO).Version=$(VERSION)") {
		t.Error("make image must tag $(IMAGE_REPO):$(VERSION), the VERSION stamped into buildinfo.Version")
	}
	_, objs := render(t, RenderOptions{Version: "v9.8.7"})
	c := containers(t, find(objs, "Deployment", "obol-verifier"))[0]
	if c["image"] != repo+":v9.8.7" {
		t.Errorf("chart default image %v, want %s:<binary version> as make image tags it", c["image"], repo)
	}
}

// verifier.discoveryRoute.enabled publishes the discovery documents on the
// controller's Gateway; off by default.
func TestRenderDiscoveryRoute(t *testing.T) {
	_, objs := render(t, RenderOptions{})
	if find(objs, "HTTPRoute", "") != nil {
		t.Fatal("an HTTPRoute is rendered by default")
	}
	_, objs = render(t, RenderOptions{Namespace: "obol", Values: map[string]any{"verifier": map[string]any{"discoveryRoute": map[string]any{"enabled": true}}}})
	r := find(objs, "HTTPRoute", "obol-verifier-discovery")
	if r == nil {
		t.Fatal("no HTTPRoute obol-verifier-discovery")
	}
	parents, _, _ := unstructured.NestedSlice(r.Object, "spec", "parentRefs")
	rules, _, _ := unstructured.NestedSlice(r.Object, "spec", "rules")
	if len(parents) != 1 || parents[0].(map[string]any)["name"] != "traefik-gateway" || parents[0].(map[string]any)["namespace"] != "traefik" || len(rules) != 1 {
		t.Fatalf("route spec %v", r.Object["spec"])
	}
	rule := rules[0].(map[string]any)
	var paths []string
	for _, m := range rule["matches"].([]any) {
		p := m.(map[string]any)["path"].(map[string]any)
		paths = append(paths, p["type"].(string)+" "+p["value"].(string))
	}
	if strings.Join(paths, ",") != "Exact /openapi.json,Exact /.well-known/x402,Exact /.well-known/x402.json" {
		t.Errorf("paths %v", paths)
	}
	be := rule["backendRefs"].([]any)[0].(map[string]any)
	if be["name"] != "obol-verifier" || fmt.Sprint(be["port"]) != "8080" {
		t.Errorf("backend %v", be)
	}
	if verifier.PathOpenAPI != "/openapi.json" || verifier.PathWellKnownX402 != "/.well-known/x402" {
		t.Error("the route's paths are not the verifier's")
	}
}
