package verifier

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"reflect"
	"sort"
	"strings"

	yaml "go.yaml.in/yaml/v3"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
	"github.com/obolstack/obol/internal/offer"
	"github.com/obolstack/obol/internal/x402"
)

// Discovery: the gate describes the routes it serves, from the config in
// force, so buyers and indexers (x402scan, x402 bazaar catalogs) can find
// them without anyone keeping a second list:
//
//	GET /openapi.json        OpenAPI 3.1, one operation per public route;
//	                         priced ones carry x-payment-info with the very
//	                         requirements their 402 carries
//	GET /.well-known/x402    the paid resources: URL, description, accepts
//
// and a route that declares schemas or an example sends the x402 "bazaar"
// extension in its 402. Everything is rendered from the Route the 402 path
// uses (Route.Requirement), so the documents cannot drift from the answers;
// a reload swaps both at once.

// Discovery endpoints, reserved in every mode like /healthz.
const (
	PathOpenAPI        = "/openapi.json"
	PathWellKnownX402  = "/.well-known/x402"
	pathWellKnownX402J = "/.well-known/x402.json" // the name the x402 draft manifest uses
)

// DiscoverySpec is a route's discovery block in the pricing file; the
// fields are those of a ServiceOffer's spec.discovery and are checked by
// the same rules (offer.ValidateDiscovery).
type DiscoverySpec struct {
	// Public lists the route in the discovery documents (default true);
	// false keeps it out while it still answers 402.
	Public *bool `yaml:"public" json:"public,omitempty"`
	// Method buyers call the route with (default GET).
	Method   string `yaml:"method" json:"method,omitempty"`
	Category string `yaml:"category" json:"category,omitempty"`
	// InputSchema, OutputSchema: JSON Schemas (draft 2020-12, no $ref),
	// written as YAML or JSON. InputSchema describes the query parameters
	// of GET/HEAD/DELETE and the JSON body of POST/PUT/PATCH.
	InputSchema   json.RawMessage `yaml:"inputSchema" json:"inputSchema,omitempty"`
	OutputSchema  json.RawMessage `yaml:"outputSchema" json:"outputSchema,omitempty"`
	OutputExample json.RawMessage `yaml:"outputExample" json:"outputExample,omitempty"`
}

// OfferDiscoverySpec is the pricing-file form of an offer's validated
// discovery block.
func OfferDiscoverySpec(d *offer.Discovery) *DiscoverySpec {
	pub := d.Public
	return &DiscoverySpec{Public: &pub, Method: d.Method, Category: d.Category,
		InputSchema: d.InputSchema, OutputSchema: d.OutputSchema, OutputExample: d.OutputExample}
}

var rawJSONType = reflect.TypeOf(json.RawMessage(nil))

// decodeJSON reads any YAML value (a mapping, a list, a scalar) into a
// json.RawMessage.
func (d *nodeDecoder) decodeJSON(n *yaml.Node, v reflect.Value, path string) {
	var x any
	if err := n.Decode(&x); err != nil {
		d.fail(n, path, "not a JSON value: %v", err)
		return
	}
	b, err := json.Marshal(x)
	if err != nil {
		d.fail(n, path, "not a JSON value (keys must be strings): %v", err)
		return
	}
	v.SetBytes(b)
}

// routeDiscovery is what a route's 402 and the documents carry beyond its
// requirement.
type routeDiscovery struct {
	// extensions is the 402's extensions ({"bazaar": ...}); nil when the
	// route declares no schema and no example.
	extensions map[string]json.RawMessage
	// v1OutputSchema is the v1 form: {input, output} in the requirement.
	v1OutputSchema json.RawMessage
}

// discovery compiles routes[i].discovery (path p) with the offer rules.
func (c *compiler) discovery(p string, ds *DiscoverySpec, mimeType string) (*offer.Discovery, routeDiscovery) {
	var od *v1alpha1.OfferDiscovery
	if ds != nil {
		od = &v1alpha1.OfferDiscovery{Public: ds.Public, Method: v1alpha1.HTTPMethod(ds.Method), Category: ds.Category}
		for _, f := range []struct {
			raw json.RawMessage
			dst **apiextensionsv1.JSON
		}{{ds.InputSchema, &od.InputSchema}, {ds.OutputSchema, &od.OutputSchema}, {ds.OutputExample, &od.OutputExample}} {
			if len(f.raw) > 0 {
				*f.dst = &apiextensionsv1.JSON{Raw: f.raw}
			}
		}
	}
	d, err := offer.ValidateDiscovery(od, "")
	if err != nil {
		var oe *offer.Error
		if errors.As(err, &oe) {
			for _, pr := range oe.Problems {
				c.fail(p+"."+string(pr.Field), "%v", pr.Err)
			}
		} else {
			c.fail(p+".discovery", "%v", err)
		}
		return &offer.Discovery{Public: true, Method: "GET"}, routeDiscovery{}
	}
	return d, newRouteDiscovery(d, mimeType)
}

func newRouteDiscovery(d *offer.Discovery, mimeType string) routeDiscovery {
	if d == nil || !d.Declared() {
		return routeDiscovery{}
	}
	info, schema := bazaar(d, mimeType)
	ext, err := json.Marshal(map[string]any{"info": info, "schema": schema})
	if err != nil {
		return routeDiscovery{}
	}
	v1 := map[string]any{"input": info["input"]}
	if out, ok := info["output"]; ok {
		v1["output"] = out
	}
	v1raw, _ := json.Marshal(v1)
	return routeDiscovery{extensions: map[string]json.RawMessage{"bazaar": ext}, v1OutputSchema: v1raw}
}

// bazaar builds the extension's info (an example call) and schema (a JSON
// Schema that info validates against), after the x402 bazaar extension:
// input {type: http, method, queryParams | bodyType+body}, output {type,
// example}.
func bazaar(d *offer.Discovery, mimeType string) (info, schema map[string]any) {
	in := map[string]any{"type": "http", "method": d.Method}
	inProps := map[string]any{
		"type":    map[string]any{"type": "string", "const": "http"},
		"headers": map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}},
	}
	required := []any{"type", "method"}
	input := decodeJSONValue(d.InputSchema)
	if offer.BodyMethod(d.Method) {
		inProps["method"] = map[string]any{"type": "string", "enum": []any{"POST", "PUT", "PATCH"}}
		inProps["bodyType"] = map[string]any{"type": "string", "enum": []any{"json", "form-data", "text"}}
		inProps["queryParams"] = map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}}
		body := any(map[string]any{"type": "object"})
		in["bodyType"] = "json"
		in["body"] = map[string]any{}
		if input != nil {
			body = input
			in["body"] = exampleOf(input, 0)
		}
		inProps["body"] = body
		required = append(required, "bodyType", "body")
	} else {
		inProps["method"] = map[string]any{"type": "string", "enum": []any{"GET", "HEAD", "DELETE"}}
		qp := any(map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}})
		if input != nil {
			qp = input
			in["queryParams"] = exampleOf(input, 0)
		}
		inProps["queryParams"] = qp
	}
	info = map[string]any{"input": in}
	props := map[string]any{
		"input": map[string]any{"type": "object", "properties": inProps, "required": required, "additionalProperties": false},
	}
	if d.OutputSchema != nil || d.OutputExample != nil {
		out := map[string]any{"type": outputType(mimeType)}
		exSchema := any(map[string]any{})
		if s := decodeJSONValue(d.OutputSchema); s != nil {
			exSchema = s
			out["example"] = exampleOf(s, 0)
		}
		if d.OutputExample != nil {
			out["example"] = decodeJSONValue(d.OutputExample)
		}
		info["output"] = out
		props["output"] = map[string]any{
			"type":       "object",
			"properties": map[string]any{"type": map[string]any{"type": "string"}, "example": exSchema},
			"required":   []any{"type"},
		}
	}
	schema = map[string]any{
		"$schema":    "https://json-schema.org/draft/2020-12/schema",
		"type":       "object",
		"properties": props,
		"required":   []any{"input"},
	}
	return info, schema
}

// outputType is the bazaar output type for a MIME type: json unless the
// route says it answers text.
func outputType(mimeType string) string {
	if strings.HasPrefix(mimeType, "text/") {
		return "text"
	}
	return "json"
}

func decodeJSONValue(raw json.RawMessage) any {
	if raw == nil {
		return nil
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return nil
	}
	return v
}

// exampleOf makes a value a JSON Schema accepts, for the example call of
// the bazaar extension: the schema's own example, default, const or first
// enum value when it has one, else a value of its type, with the required
// properties of objects filled in (all properties when none is required).
func exampleOf(schema any, depth int) any {
	s, ok := schema.(map[string]any)
	if !ok || depth > 8 {
		return nil
	}
	if v, ok := s["example"]; ok {
		return v
	}
	if v, ok := s["examples"].([]any); ok && len(v) > 0 {
		return v[0]
	}
	for _, k := range []string{"default", "const"} {
		if v, ok := s[k]; ok {
			return v
		}
	}
	if v, ok := s["enum"].([]any); ok && len(v) > 0 {
		return v[0]
	}
	typ, _ := s["type"].(string)
	if list, ok := s["type"].([]any); ok {
		for _, t := range list {
			if ts, _ := t.(string); ts != "null" && ts != "" {
				typ = ts
				break
			}
		}
	}
	if typ == "" {
		if _, ok := s["properties"]; ok {
			typ = "object"
		}
	}
	switch typ {
	case "object":
		props, _ := s["properties"].(map[string]any)
		out := map[string]any{}
		names := map[string]bool{}
		if req, ok := s["required"].([]any); ok && len(req) > 0 {
			for _, n := range req {
				if ns, ok := n.(string); ok {
					names[ns] = true
				}
			}
		} else {
			for n := range props {
				names[n] = true
			}
		}
		for n := range names {
			out[n] = exampleOf(props[n], depth+1)
		}
		return out
	case "array":
		if items, ok := s["items"]; ok {
			if n, _ := s["minItems"].(float64); n > 0 {
				return []any{exampleOf(items, depth+1)}
			}
		}
		return []any{}
	case "string":
		return "example"
	case "integer", "number":
		if m, ok := s["minimum"].(float64); ok {
			return m
		}
		return 0
	case "boolean":
		return false
	}
	return nil
}

// docEntry is one public route as the documents show it.
type docEntry struct {
	route  *Route
	key    string // OpenAPI path (templated)
	probe  string // a concrete path the route answers
	params []pathParam
}

type pathParam struct {
	name, desc, example string
}

// discoveryEntries lists the public routes, in the config's order, each
// with an OpenAPI path and a concrete path that the first-match rule sends
// to that route. A route no concrete path reaches (shadowed by an earlier
// one) or that only reaches reserved paths is left out.
//
// Pattern to OpenAPI path:
//
//	/a/b     → /a/b
//	/a/*     → /a (the pattern matches /a itself and everything below);
//	           /a/{path} when /a belongs to another route
//	/*       → /
//	/a/*/c   → /a/{seg2}/c, a path parameter per glob segment, with an
//	           example that matches the glob
func (st *state) discoveryEntries() []docEntry {
	var out []docEntry
	used := map[string]bool{}
	for _, r := range st.cfg.Routes {
		if r.Discovery != nil && !r.Discovery.Public {
			continue
		}
		for _, e := range pathCandidates(r) {
			if used[e.key] || reservedPath(e.probe) || st.match(cleanRequestPath(e.probe)) != r {
				continue
			}
			used[e.key] = true
			out = append(out, e)
			break
		}
	}
	return out
}

func reservedPath(p string) bool {
	switch p {
	case PathHealthz, PathReadyz, PathMetrics, PathOpenAPI, PathWellKnownX402, pathWellKnownX402J:
		return true
	}
	return false
}

// pathCandidates are a route's OpenAPI paths, best first.
func pathCandidates(r *Route) []docEntry {
	p := r.Pattern
	var keySegs, probeSegs []string
	var params []pathParam
	for i, s := range p.segments {
		if !strings.ContainsAny(s, "*?[\\") {
			keySegs = append(keySegs, s)
			probeSegs = append(probeSegs, s)
			continue
		}
		name := fmt.Sprintf("seg%d", i+1)
		ex := globExample(s)
		keySegs = append(keySegs, "{"+name+"}")
		probeSegs = append(probeSegs, ex)
		params = append(params, pathParam{name: name, example: ex, desc: fmt.Sprintf("one path segment matching %q", s)})
	}
	key := "/" + strings.Join(keySegs, "/")
	probe := "/" + strings.Join(probeSegs, "/")
	out := []docEntry{{route: r, key: key, probe: probe, params: params}}
	if p.prefix {
		rest := pathParam{name: "path", example: "example", desc: fmt.Sprintf("the rest of the path: the route answers %s and every path below it", p.raw)}
		base := strings.TrimSuffix(key, "/")
		pbase := strings.TrimSuffix(probe, "/")
		out = append(out, docEntry{route: r, key: base + "/{path}", probe: pbase + "/example", params: append(append([]pathParam(nil), params...), rest)})
	}
	return out
}

// globExample is a segment that a path.Match glob accepts.
func globExample(glob string) string {
	var b strings.Builder
	for i := 0; i < len(glob); i++ {
		switch c := glob[i]; c {
		case '*', '?':
			b.WriteByte('x')
		case '\\':
			if i+1 < len(glob) {
				i++
				b.WriteByte(glob[i])
			}
		case '[':
			j := strings.IndexByte(glob[i:], ']')
			class := ""
			if j > 0 {
				class = glob[i+1 : i+j]
				i += j
			}
			switch {
			case class == "", class[0] == '^' || class[0] == '!':
				b.WriteByte('x')
			default:
				b.WriteByte(class[0])
			}
		default:
			b.WriteByte(c)
		}
	}
	ex := b.String()
	if ok, _ := path.Match(glob, ex); !ok {
		return "example"
	}
	return ex
}

// paymentInfo is the x-payment-info of a paid operation: the price in
// whole tokens as catalogs read it (fixed, currency, amount) and the x402
// requirements the route's 402 carries, in the v2 wire shape.
func paymentInfo(r *Route, req x402.Requirement) map[string]any {
	return map[string]any{
		"price": priceInfo(r),
		"asset": assetInfo(r, req),
		"protocols": []any{map[string]any{"x402": map[string]any{
			"x402Version": x402.Version2,
			"resource":    req.Resource,
			"accepts":     []x402.PaymentRequirementsV2{req.V2()},
		}}},
	}
}

// assetInfo names the token the route charges in, so that a buyer can show
// the price in whole tokens without knowing the token.
func assetInfo(r *Route, req x402.Requirement) map[string]any {
	return map[string]any{"address": req.Asset, "symbol": r.Token.Symbol, "decimals": r.Token.Decimals}
}

// priceInfo is the fixed price in whole tokens; catalogs price in USD, so
// a dollar stablecoin (a symbol starting with USD) is priced in USD, any
// other token in its symbol.
func priceInfo(r *Route) map[string]any {
	cur := r.Token.Symbol
	if strings.HasPrefix(strings.ToUpper(cur), "USD") {
		cur = "USD"
	}
	amount := r.Price
	if r.Amount != nil {
		amount = evm.FormatAmount(r.Amount, r.Token.Decimals)
	}
	return map[string]any{"mode": "fixed", "currency": cur, "amount": amount}
}

// openAPIDocument renders the OpenAPI 3.1 document for an origin
// (scheme://host as the buyer reaches the gate).
func (st *state) openAPIDocument(origin string) map[string]any {
	paths := map[string]any{}
	entries := st.discoveryEntries()
	perOffer := map[Offer]int{}
	for _, e := range entries {
		perOffer[e.route.Offer]++
	}
	ids := map[string]int{}
	var fp []string
	for _, e := range entries {
		r := e.route
		// operationId: the offer (namespace_name), and the path when the
		// offer has several routes; unique in the document.
		id := r.Offer.Namespace + "_" + r.Offer.Name
		if perOffer[r.Offer] > 1 {
			id += "_" + e.key
		}
		id = operationIDChars.Replace(strings.TrimRight(id, "/"))
		ids[id]++
		if n := ids[id]; n > 1 {
			id = fmt.Sprintf("%s_%d", id, n)
		}
		op := operation(r, e, id, origin)
		method := "get"
		if r.Discovery != nil {
			method = strings.ToLower(r.Discovery.Method)
		}
		paths[e.key] = map[string]any{method: op}
		fp = append(fp, method+" "+e.key+" "+r.amountStr+" "+r.Chain.CAIP2+" "+r.payTo()+" "+r.asset())
	}
	sum := sha256.Sum256([]byte(strings.Join(fp, "\n")))
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{
			"title":   "Paid APIs at " + strings.TrimPrefix(strings.TrimPrefix(origin, "https://"), "http://"),
			"version": hex.EncodeToString(sum[:6]),
			"description": "Operations with x-payment-info are paid per request with x402: call them, read the 402 answer " +
				"(PAYMENT-REQUIRED header, JSON body) and retry with a signed PAYMENT-SIGNATURE (x402 v2) or X-PAYMENT (v1). " +
				"The live 402 is authoritative; this document is generated from the same routes. Paid resources: " + origin + PathWellKnownX402,
		},
		"servers": []any{map[string]any{"url": origin}},
		"paths":   paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{
				"x402": map[string]any{
					"type":        "apiKey",
					"in":          "header",
					"name":        x402.HeaderPaymentSignature,
					"description": "An x402 payment: base64 of the JSON payment payload (v2; v1 clients send X-PAYMENT). Unpaid requests are answered 402 with the requirements.",
				},
			},
		},
	}
}

var operationIDChars = strings.NewReplacer("-", "_", "/", "_", "{", "", "}", "", ".", "_", "*", "_")

// operation is one route's OpenAPI operation.
func operation(r *Route, e docEntry, id, origin string) map[string]any {
	summary := r.Description
	if summary == "" {
		summary = "Route " + r.Pattern.String()
	}
	op := map[string]any{
		"operationId": id,
		"summary":     summary,
		"x-obol-route": map[string]any{
			"pattern": r.Pattern.String(),
			"offer":   r.Offer.Namespace + "/" + r.Offer.Name,
		},
	}
	d := r.Discovery
	if d == nil {
		d = &offer.Discovery{Public: true, Method: "GET"}
	}
	if d.Category != "" {
		op["tags"] = []any{d.Category}
	}
	var params []any
	for _, p := range e.params {
		params = append(params, map[string]any{
			"name": p.name, "in": "path", "required": true, "description": p.desc,
			"schema": map[string]any{"type": "string"}, "example": p.example,
		})
	}
	input, _ := decodeJSONValue(d.InputSchema).(map[string]any)
	if input != nil {
		if offer.BodyMethod(d.Method) {
			op["requestBody"] = map[string]any{
				"required": true,
				"content":  map[string]any{"application/json": map[string]any{"schema": input}},
			}
		} else {
			params = append(params, queryParams(input)...)
		}
	}
	if len(params) > 0 {
		op["parameters"] = params
	}
	mime := r.MimeType
	if mime == "" {
		mime = "application/json"
	}
	ok := map[string]any{"description": "The answer, once paid."}
	if out := decodeJSONValue(d.OutputSchema); out != nil || d.OutputExample != nil {
		media := map[string]any{}
		if out != nil {
			media["schema"] = out
		}
		if d.OutputExample != nil {
			media["example"] = decodeJSONValue(d.OutputExample)
		}
		ok["content"] = map[string]any{mime: media}
	}
	if r.Free {
		ok["description"] = "The answer (free)."
		op["responses"] = map[string]any{"200": ok}
		op["security"] = []any{}
		return op
	}
	req := r.Requirement(origin + e.probe)
	op["responses"] = map[string]any{
		"200": ok,
		"402": map[string]any{
			"description": "Payment required: the requirements are in the PAYMENT-REQUIRED header (base64 JSON) and the JSON body.",
			"headers": map[string]any{
				x402.HeaderPaymentRequired: map[string]any{"description": "base64 of the x402 v2 PaymentRequired JSON", "schema": map[string]any{"type": "string"}},
			},
			"content": map[string]any{"application/json": map[string]any{"schema": map[string]any{"type": "object"}}},
		},
	}
	op["security"] = []any{map[string]any{"x402": []any{}}}
	op["x-payment-info"] = paymentInfo(r, req)
	return op
}

// queryParams turns an object schema's properties into query parameters.
func queryParams(schema map[string]any) []any {
	props, _ := schema["properties"].(map[string]any)
	req := map[string]bool{}
	if list, ok := schema["required"].([]any); ok {
		for _, n := range list {
			if s, ok := n.(string); ok {
				req[s] = true
			}
		}
	}
	names := make([]string, 0, len(props))
	for n := range props {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]any, 0, len(names))
	for _, n := range names {
		p := map[string]any{"name": n, "in": "query", "required": req[n], "schema": props[n]}
		if ps, ok := props[n].(map[string]any); ok {
			if desc, ok := ps["description"].(string); ok {
				p["description"] = desc
			}
		}
		out = append(out, p)
	}
	return out
}

// wellKnownDocument lists the paid public resources: the x402scan form
// (version 1, resources: URLs) together with one item per resource in the
// x402 discovery manifest's shape (resource, type, accepts, input, output).
func (st *state) wellKnownDocument(origin string) map[string]any {
	resources := []string{}
	items := []any{}
	for _, e := range st.discoveryEntries() {
		r := e.route
		if r.Free {
			continue
		}
		req := r.Requirement(origin + e.probe)
		d := r.Discovery
		if d == nil {
			d = &offer.Discovery{Public: true, Method: "GET"}
		}
		item := map[string]any{
			"resource": req.Resource,
			"type":     "http",
			"accepts":  []x402.PaymentRequirementsV2{req.V2()},
			"input":    map[string]any{"method": d.Method, "routeTemplate": e.key},
			"price":    priceInfo(r),
			"asset":    assetInfo(r, req),
		}
		if d.Category != "" {
			item["category"] = d.Category
		}
		if d.OutputSchema != nil || d.OutputExample != nil {
			out := map[string]any{"mimeType": req.Resource.MimeType}
			if d.OutputSchema != nil {
				out["schema"] = decodeJSONValue(d.OutputSchema)
			}
			if d.OutputExample != nil {
				out["example"] = decodeJSONValue(d.OutputExample)
			}
			item["output"] = out
		}
		resources = append(resources, req.Resource.URL)
		items = append(items, item)
	}
	return map[string]any{"version": 1, "x402Version": x402.Version2, "resources": resources, "items": items}
}

// serveDiscovery answers the discovery endpoints; false for other paths.
func (s *Server) serveDiscovery(w http.ResponseWriter, r *http.Request, st *state) bool {
	var doc func(string) map[string]any
	switch r.URL.Path {
	case PathOpenAPI:
		doc = st.openAPIDocument
	case PathWellKnownX402, pathWellKnownX402J:
		doc = st.wellKnownDocument
	default:
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		writeJSONError(w, r, http.StatusMethodNotAllowed, errorBody{Error: r.URL.Path + " answers GET"})
		return true
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc(resourceURL(r, ""))); err != nil {
		writeJSONError(w, r, http.StatusInternalServerError, errorBody{Error: "render " + r.URL.Path + ": " + err.Error()})
		return true
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-cache")
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return true
	}
	_, _ = w.Write(b.Bytes())
	return true
}
