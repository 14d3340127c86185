package verifier

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/x402"
)

// discoveryDoc prices every kind of pattern, declares schemas on two
// routes, keeps one route private and has a free route.
// The free route has an upstream of its own: the gate refuses a free path
// that could reach what a priced route sells.
func discoveryDoc(upstreamURL string) string {
	return discoveryDocFree(upstreamURL, "http://127.0.0.1:9")
}

func discoveryDocFree(upstreamURL, freeURL string) string {
	return `payTo: 0x209693Bc6afc0C5328bA36FaF03C514EF312287C
chain: base-sepolia
facilitatorURL: http://127.0.0.1:4021
upstream: ` + upstreamURL + `
routes:
  - pattern: /weather/today
    price: "0.002"
    description: Today's weather
    mimeType: application/json
    discovery:
      category: weather
      inputSchema:
        type: object
        properties:
          city: {type: string, example: Lisbon}
        required: [city]
      outputSchema:
        type: object
        properties:
          temp: {type: number}
        required: [temp]
      outputExample: {temp: 21.5}
  - pattern: /weather/*
    price: "0.001"
    description: Any weather
  - pattern: /v*/items/*/price
    price: "0.0005"
    description: Item prices by API version
  - pattern: /summarize
    price: "0.05"
    description: Summaries
    discovery:
      method: POST
      inputSchema: {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
  - pattern: /secret/*
    price: "1"
    description: Not listed
    discovery: {public: false}
  - pattern: /health
    price: "0"
    upstream: ` + freeURL + `
  - pattern: /*
    price: "0.0001"
    description: Everything else
`
}

// openAPIOps is the operations of an OpenAPI document: path → method → op.
func openAPIOps(t *testing.T, doc map[string]any) map[string]map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]map[string]any{}
	paths, ok := doc["paths"].(map[string]any)
	if !ok {
		t.Fatalf("no paths: %v", doc)
	}
	for p, item := range paths {
		out[p] = map[string]map[string]any{}
		for m, op := range item.(map[string]any) {
			out[p][m] = op.(map[string]any)
		}
	}
	return out
}

// concretePath fills an operation's path parameters with their examples.
func concretePath(t *testing.T, key string, op map[string]any) string {
	t.Helper()
	params, _ := op["parameters"].([]any)
	for _, p := range params {
		pm := p.(map[string]any)
		if pm["in"] != "path" {
			continue
		}
		ex, ok := pm["example"].(string)
		if !ok {
			t.Fatalf("%s: path parameter %v has no example", key, pm["name"])
		}
		key = strings.ReplaceAll(key, "{"+pm["name"].(string)+"}", ex)
	}
	if strings.Contains(key, "{") {
		t.Fatalf("unfilled path parameter in %s", key)
	}
	return key
}

func getJSON(t *testing.T, url string) map[string]any {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET %s: %d %s: %s", url, res.StatusCode, res.Header.Get("Content-Type"), b)
	}
	return decodeJSON(t, b)
}

// The crawler: read /openapi.json as x402scan does, probe every advertised
// operation with its method, and check that each paid one answers a valid
// 402 whose requirements are exactly the advertised ones, and each free
// one is served without payment. Private routes are not advertised but
// still answer 402; /.well-known/x402 lists the same paid resources.
func TestDiscoveryCrawler(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	free := newUpstream(t)
	g := newGate(t, discoveryDocFree(up.URL, free.URL))
	ts := httptest.NewServer(g.h)
	defer ts.Close()

	doc := getJSON(t, ts.URL+PathOpenAPI)
	if doc["openapi"] != "3.1.0" {
		t.Fatalf("openapi = %v", doc["openapi"])
	}
	ops := openAPIOps(t, doc)
	// OpenAPI has no globs: the glob segments of /v*/items/*/price become
	// whole-segment parameters.
	wantKeys := []string{"/weather/today", "/weather", "/{seg1}/items/{seg3}/price", "/summarize", "/health", "/"}
	for _, k := range wantKeys {
		if _, ok := ops[k]; !ok {
			t.Errorf("path %s not advertised; have %v", k, keys(ops))
		}
	}
	if len(ops) != len(wantKeys) {
		t.Errorf("advertised paths %v, want %v", keys(ops), wantKeys)
	}
	for k := range ops {
		if strings.HasPrefix(k, "/secret") {
			t.Errorf("private route advertised at %s", k)
		}
	}

	paid := 0
	wantMethod := map[string]string{"/summarize": "post"}
	for key, byMethod := range ops {
		if len(byMethod) != 1 {
			t.Errorf("%s: %d operations, want one per route", key, len(byMethod))
		}
		for method, op := range byMethod {
			if want := wantMethod[key]; want != "" && method != want || want == "" && method != "get" {
				t.Errorf("%s: method %s", key, method)
			}
			target := ts.URL + concretePath(t, key, op)
			req, _ := http.NewRequest(strings.ToUpper(method), target, strings.NewReader(`{"text":"hi"}`))
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			info, isPaid := op["x-payment-info"].(map[string]any)
			if !isPaid {
				if res.StatusCode != http.StatusOK {
					t.Errorf("free %s %s: %d, want 200 without payment: %s", method, key, res.StatusCode, body)
				}
				if _, ok := op["responses"].(map[string]any)["402"]; ok {
					t.Errorf("free %s advertises a 402", key)
				}
				continue
			}
			paid++
			if res.StatusCode != http.StatusPaymentRequired {
				t.Fatalf("paid %s %s: %d, want 402: %s", method, target, res.StatusCode, body)
			}
			ch, err := x402.ParseChallenge(res.Header, body)
			if err != nil {
				t.Fatalf("%s: 402 does not parse: %v", key, err)
			}
			x := info["protocols"].([]any)[0].(map[string]any)["x402"].(map[string]any)
			advertised := mustJSON(t, x["accepts"])
			live := mustJSON(t, []x402.PaymentRequirementsV2{ch.Requirements[0].V2()})
			if !bytes.Equal(advertised, live) {
				t.Errorf("%s: advertised accepts\n  %s\nlive 402 accepts\n  %s", key, advertised, live)
			}
			if a, l := mustJSON(t, x["resource"]), mustJSON(t, ch.Resource); !bytes.Equal(a, l) {
				t.Errorf("%s: advertised resource %s, live %s", key, a, l)
			}
			if _, ok := op["responses"].(map[string]any)["402"]; !ok {
				t.Errorf("paid %s has no 402 response", key)
			}
			price := info["price"].(map[string]any)
			if price["mode"] != "fixed" || price["currency"] != "USD" || price["amount"] == "" {
				t.Errorf("%s: price %v", key, price)
			}
			_, hasBazaar := ch.Extensions["bazaar"]
			if declared := key == "/weather/today" || key == "/summarize"; hasBazaar != declared {
				t.Errorf("%s: bazaar extension in the 402 = %v, want %v", key, hasBazaar, declared)
			}
		}
	}
	if paid != 5 {
		t.Errorf("%d paid operations, want 5", paid)
	}
	if price := ops["/weather/today"]["get"]["x-payment-info"].(map[string]any)["price"].(map[string]any); price["amount"] != "0.002" {
		t.Errorf("/weather/today price %v, want 0.002", price)
	}
	// Query parameters from the input schema, a body for POST.
	if params := ops["/weather/today"]["get"]["parameters"].([]any); len(params) != 1 || params[0].(map[string]any)["name"] != "city" {
		t.Errorf("/weather/today parameters %v", params)
	}
	if _, ok := ops["/summarize"]["post"]["requestBody"]; !ok {
		t.Errorf("/summarize has no requestBody")
	}

	// The private route answers 402 all the same.
	if rec := g.do(httptest.NewRequest(http.MethodGet, "/secret/x", nil)); rec.Code != http.StatusPaymentRequired {
		t.Errorf("private route: %d, want 402", rec.Code)
	}

	// /.well-known/x402 lists the paid resources of the document.
	wk := getJSON(t, ts.URL+PathWellKnownX402)
	res := wk["resources"].([]any)
	items := wk["items"].([]any)
	if wk["version"] != float64(1) || len(res) != paid || len(items) != paid {
		t.Fatalf("/.well-known/x402: version %v, %d resources, %d items, want %d", wk["version"], len(res), len(items), paid)
	}
	for i, it := range items {
		item := it.(map[string]any)
		u := res[i].(string)
		if item["resource"].(map[string]any)["url"] != u {
			t.Errorf("item %d url %v, resources[%d] %s", i, item["resource"], i, u)
		}
		if strings.Contains(u, "/health") || strings.Contains(u, "/secret") {
			t.Errorf("free or private resource listed: %s", u)
		}
		method := item["input"].(map[string]any)["method"].(string)
		req, _ := http.NewRequest(method, u, nil)
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(r.Body)
		r.Body.Close()
		ch, err := x402.ParseChallenge(r.Header, body)
		if r.StatusCode != http.StatusPaymentRequired || err != nil {
			t.Fatalf("%s %s: %d %v", method, u, r.StatusCode, err)
		}
		if a, l := mustJSON(t, item["accepts"]), mustJSON(t, []x402.PaymentRequirementsV2{ch.Requirements[0].V2()}); !bytes.Equal(a, l) {
			t.Errorf("%s: listed accepts %s, live %s", u, a, l)
		}
	}
	if n, m := up.hits.Load(), free.hits.Load(); n != 0 || m != 1 {
		t.Errorf("upstream hits %d (paid) and %d (free), want 0 and 1: only the free /health is served unpaid", n, m)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	// Round-trip through any so that key order is canonical.
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var x any
	if err := json.Unmarshal(b, &x); err != nil {
		t.Fatal(err)
	}
	b, _ = json.Marshal(x)
	return b
}

// The document is a valid OpenAPI 3.1 document for kin-openapi's loader
// and validator, with and without routes.
func TestOpenAPIDocumentIsValid31(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	for name, doc := range map[string]string{"routes": discoveryDoc(up.URL), "gate_test": proxyDoc(up.URL)} {
		g := newGate(t, doc)
		rec := g.do(httptest.NewRequest(http.MethodGet, "https://seller.example"+PathOpenAPI, nil))
		loader := openapi3.NewLoader()
		d, err := loader.LoadFromData(rec.Body.Bytes())
		if err != nil {
			t.Fatalf("%s: load: %v", name, err)
		}
		if !d.IsOpenAPI31OrLater() {
			t.Errorf("%s: not 3.1: %s", name, d.OpenAPI)
		}
		if err := d.Validate(context.Background()); err != nil {
			t.Errorf("%s: invalid OpenAPI: %v\n%s", name, err, rec.Body)
		}
		if d.Servers[0].URL != "http://seller.example" && d.Servers[0].URL != "https://seller.example" {
			t.Errorf("%s: servers %v", name, d.Servers[0].URL)
		}
	}
}

// The bazaar extension's info validates against its own schema (what a
// facilitator checks before cataloging), and a v1 challenge carries the
// same input/output as outputSchema.
func TestBazaarInfoMatchesItsSchema(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	g := newGate(t, discoveryDoc(up.URL))
	for _, target := range []string{"/weather/today", "/summarize"} {
		rec := g.do(httptest.NewRequest(http.MethodGet, target, nil))
		ch, err := x402.ParseChallenge(rec.Header(), rec.Body.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		var ext struct {
			Info   json.RawMessage `json:"info"`
			Schema json.RawMessage `json:"schema"`
		}
		if err := json.Unmarshal(ch.Extensions["bazaar"], &ext); err != nil {
			t.Fatalf("%s: bazaar %s: %v", target, ch.Extensions["bazaar"], err)
		}
		schemaDoc, _ := jsonschema.UnmarshalJSON(bytes.NewReader(ext.Schema))
		info, _ := jsonschema.UnmarshalJSON(bytes.NewReader(ext.Info))
		c := jsonschema.NewCompiler()
		if err := c.AddResource("mem:///bazaar.json", schemaDoc); err != nil {
			t.Fatal(err)
		}
		sch, err := c.Compile("mem:///bazaar.json")
		if err != nil {
			t.Fatalf("%s: schema does not compile: %v", target, err)
		}
		if err := sch.Validate(info); err != nil {
			t.Errorf("%s: info does not validate against schema: %v\ninfo %s", target, err, ext.Info)
		}
		in := info.(map[string]any)["input"].(map[string]any)
		switch target {
		case "/weather/today":
			if in["method"] != "GET" || in["queryParams"].(map[string]any)["city"] != "Lisbon" {
				t.Errorf("weather input %v", in)
			}
			if out := info.(map[string]any)["output"].(map[string]any); out["type"] != "json" {
				t.Errorf("weather output %v", out)
			}
		case "/summarize":
			if in["method"] != "POST" || in["bodyType"] != "json" {
				t.Errorf("summarize input %v", in)
			}
		}
	}
	// v1 buyers: the requirement's outputSchema carries input and output.
	g2 := newGate(t, strings.Replace(discoveryDoc(up.URL), "chain: base-sepolia", "chain: base-sepolia\nchallengeVersion: 1", 1))
	rec := g2.do(httptest.NewRequest(http.MethodGet, "/weather/today", nil))
	var v1 x402.PaymentRequiredV1
	if err := json.Unmarshal(rec.Body.Bytes(), &v1); err != nil || v1.X402Version != 1 {
		t.Fatalf("v1 challenge: %v %s", err, rec.Body)
	}
	var os struct {
		Input  map[string]any `json:"input"`
		Output map[string]any `json:"output"`
	}
	if err := json.Unmarshal(v1.Accepts[0].OutputSchema, &os); err != nil || os.Input["method"] != "GET" || os.Output["type"] != "json" {
		t.Errorf("v1 outputSchema %s (%v)", v1.Accepts[0].OutputSchema, err)
	}
	// A route without schemas sends no extension and no outputSchema.
	rec = g2.do(httptest.NewRequest(http.MethodGet, "/weather/other", nil))
	if strings.Contains(rec.Body.String(), "outputSchema") {
		t.Errorf("undeclared route carries outputSchema: %s", rec.Body)
	}
}

// A route removed from the pricing file leaves both documents at the next
// reload, while the routes that stay remain.
func TestDiscoveryFollowsFileReload(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "pricing.yaml")
	doc := discoveryDoc(up.URL)
	if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	g := newGate(t, doc)
	applied := make(chan struct{}, 4)
	sink := &notifySink{srv: g.srv, applied: applied}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := &FileSource{Path: file, Registry: g.evm, Watch: true, Debounce: 20 * time.Millisecond}
	if err := src.Start(ctx, sink); err != nil {
		t.Fatal(err)
	}
	<-applied
	ts := httptest.NewServer(g.h)
	defer ts.Close()
	if _, ok := openAPIOps(t, getJSON(t, ts.URL+PathOpenAPI))["/summarize"]; !ok {
		t.Fatal("/summarize not advertised before the reload")
	}
	// Delete the /summarize route.
	i := strings.Index(doc, "  - pattern: /summarize")
	j := strings.Index(doc, "  - pattern: /secret/*")
	if err := os.WriteFile(file, []byte(doc[:i]+doc[j:]), 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case <-applied:
	case <-time.After(10 * time.Second):
		t.Fatal("the edited file was not applied")
	}
	ops := openAPIOps(t, getJSON(t, ts.URL+PathOpenAPI))
	if _, ok := ops["/summarize"]; ok {
		t.Error("/summarize still advertised after it was removed")
	}
	if _, ok := ops["/weather/today"]; !ok {
		t.Error("/weather/today lost from the document")
	}
	for _, u := range getJSON(t, ts.URL+PathWellKnownX402)["resources"].([]any) {
		if strings.HasSuffix(u.(string), "/summarize") {
			t.Error("/summarize still in /.well-known/x402")
		}
	}
}

type notifySink struct {
	srv     *Server
	applied chan struct{}
}

func (s *notifySink) ApplyConfig(cfg *Config) error {
	err := s.srv.ApplyConfig(cfg)
	s.applied <- struct{}{}
	return err
}

func (s *notifySink) ReportReloadFailure(err error) { s.srv.ReportReloadFailure(err) }

// Pattern forms map to OpenAPI paths whose example reaches the route.
func TestDiscoveryPathsOfPatterns(t *testing.T) {
	t.Parallel()
	up := newUpstream(t)
	doc := `payTo: 0x209693Bc6afc0C5328bA36FaF03C514EF312287C
chain: base-sepolia
facilitatorURL: http://127.0.0.1:4021
upstream: ` + up.URL + `
routes:
  - pattern: /a
    price: "0.001"
  - pattern: /a/*
    price: "0.002"
    offerName: a-below
  - pattern: /b/[xy]z/*
    price: "0.003"
  - pattern: /c/*
    price: "0.004"
  - pattern: /c/*
    price: "0.005"
    offerName: never
`
	spec, err := ParseSpec("p.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Compile(spec, evm.NewRegistry(), Environment{}); err == nil {
		t.Fatal("duplicate pattern compiled")
	}
	g := newGate(t, strings.Replace(doc, "  - pattern: /c/*\n    price: \"0.005\"\n    offerName: never\n", "", 1))
	ops := openAPIOps(t, decodeJSON(t, g.do(httptest.NewRequest(http.MethodGet, PathOpenAPI, nil)).Body.Bytes()))
	got := keys(ops)
	want := map[string]bool{"/a": true, "/a/{path}": true, "/b/{seg2}": true, "/c": true}
	if len(got) != len(want) {
		t.Errorf("paths %v, want %v", got, want)
	}
	for _, k := range got {
		if !want[k] {
			t.Errorf("unexpected path %s", k)
		}
	}
	if p := concretePath(t, "/b/{seg2}", ops["/b/{seg2}"]["get"]); p != "/b/xz" {
		t.Errorf("/b example path %s, want /b/xz", p)
	}
}

// A bad discovery block in a pricing file is reported with its field path
// and line, like every other field.
func TestDiscoveryErrorsNameFieldAndLine(t *testing.T) {
	t.Parallel()
	_, err := ParseAndCompile("pricing.yaml", []byte(`payTo: 0x209693Bc6afc0C5328bA36FaF03C514EF312287C
chain: base-sepolia
facilitatorURL: http://127.0.0.1:4021
upstream: http://127.0.0.1:9
routes:
  - pattern: /a
    price: "0.001"
    discovery:
      method: TRACE
      inputSchema: {properties: {x: {$ref: "#/x"}}}
      colour: red
`), evm.NewRegistry(), Environment{})
	for _, want := range []string{
		"pricing.yaml:9:15: routes[0].discovery.method:",
		"pricing.yaml:10:20: routes[0].discovery.inputSchema: $ref at /properties/x",
		"pricing.yaml:11:7: routes[0].discovery.colour: unknown field",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
