package stack

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/verifier"
)

// fallbackValues is an ordered list of two facilitators, the first with an
// API key from a Secret.
func fallbackValues() map[string]any {
	return map[string]any{"verifier": map[string]any{"facilitators": []any{
		map[string]any{"name": "hosted", "url": "https://facilitator.example.com", "headers": []any{
			map[string]any{"header": "X-Api-Key", "secretName": "facilitator-auth", "secretKey": "api-key"}}},
		map[string]any{"url": "https://x402.org/facilitator"},
	}}}
}

// verifier.facilitators renders the pricing file's ordered facilitators
// list (names, URLs, headers read from the environment), which the verifier
// compiles in that order, and the Deployment fills each header's variable
// from its Secret; no secret value is in the chart.
func TestRenderFacilitatorFallback(t *testing.T) {
	_, objs := render(t, RenderOptions{Values: fallbackValues()})
	cm := find(objs, "ConfigMap", "obol-verifier")
	data, _, _ := unstructured.NestedString(cm.Object, "data", "config.yaml")
	if strings.Contains(data, "facilitatorURL:") {
		t.Errorf("with verifier.facilitators the pricing file still has facilitatorURL:\n%s", data)
	}
	spec, err := verifier.ParseSpec("config.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	env := verifier.Environment{Getenv: func(k string) string {
		if k == "OBOL_FACILITATOR_0_HEADER_0" {
			return "key-from-secret"
		}
		return ""
	}}
	cfg, err := verifier.Compile(spec.WithRoutes("test", []verifier.RouteSpec{{Pattern: "/weather", Price: "0.001",
		PayTo: "0x1111111111111111111111111111111111111111", Upstream: "http://weather.default.svc:8080"}}), evm.NewRegistry(), env)
	if err != nil {
		t.Fatalf("rendered verifier config does not compile: %v\n%s", err, data)
	}
	var got []string
	for _, f := range cfg.Facilitators {
		got = append(got, f.Name+"="+f.URL+" key="+f.Header.Get("X-Api-Key"))
	}
	want := []string{"hosted=https://facilitator.example.com key=key-from-secret", "x402.org=https://x402.org/facilitator key="}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("facilitators = %q, want %q\n%s", got, want, data)
	}

	c := containers(t, find(objs, "Deployment", "obol-verifier"))[0]
	var refs []string
	for _, e := range c["env"].([]any) {
		env := e.(map[string]any)
		if name := env["name"].(string); strings.HasPrefix(name, "OBOL_FACILITATOR") {
			ref, _, _ := unstructured.NestedStringMap(env, "valueFrom", "secretKeyRef")
			refs = append(refs, name+"="+ref["name"]+"/"+ref["key"])
		}
	}
	if strings.Join(refs, " ") != "OBOL_FACILITATOR_0_HEADER_0=facilitator-auth/api-key" {
		t.Errorf("verifier facilitator env = %q, want OBOL_FACILITATOR_0_HEADER_0 from facilitator-auth/api-key", refs)
	}
}

// Mistakes in verifier.facilitators fail the render with the value's path.
func TestRenderFacilitatorFallbackRejectsMistakes(t *testing.T) {
	for name, tc := range map[string]struct {
		mutate func(v map[string]any)
		want   string
	}{
		"no url": {func(v map[string]any) {
			v["facilitators"].([]any)[1].(map[string]any)["url"] = ""
		}, "verifier.facilitators[1].url is required"},
		"no secret": {func(v map[string]any) {
			v["facilitators"].([]any)[0].(map[string]any)["headers"].([]any)[0].(map[string]any)["secretName"] = ""
		}, "verifier.facilitators[0].headers[0].secretName is required"},
		"both": {func(v map[string]any) {
			v["facilitatorHeaders"] = []any{map[string]any{"header": "Authorization", "secretName": "s", "secretKey": "k"}}
		}, "verifier.facilitatorHeaders applies to verifier.facilitatorURL"},
	} {
		vals := fallbackValues()
		tc.mutate(vals["verifier"].(map[string]any))
		_, err := Render(RenderOptions{Values: vals})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to say %q", name, err, tc.want)
		}
	}
}
