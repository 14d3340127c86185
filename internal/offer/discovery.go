package offer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
)

// Fields of an offer's discovery block.
const (
	FieldDiscovery              Field = "discovery"
	FieldDiscoveryMethod        Field = "discovery.method"
	FieldDiscoveryCategory      Field = "discovery.category"
	FieldDiscoveryInputSchema   Field = "discovery.inputSchema"
	FieldDiscoveryOutputSchema  Field = "discovery.outputSchema"
	FieldDiscoveryOutputExample Field = "discovery.outputExample"
)

// MaxDiscoveryBytes bounds an offer's schemas and example together
// (compact JSON). They travel in every 402 answer, whose PAYMENT-REQUIRED
// header buyers decode up to 16 KiB after base64; the bazaar extension
// carries the input schema and the example once more besides.
const MaxDiscoveryBytes = 3072

// MaxCategoryLen is the longest category, the bound catalogs apply to a
// tag (printable ASCII, at most 32 characters).
const MaxCategoryLen = 32

// Discovery is an offer's discovery block after validation, defaults
// applied and JSON compacted.
type Discovery struct {
	Public        bool
	Method        string // upper case
	Category      string
	InputSchema   json.RawMessage // nil when not declared
	OutputSchema  json.RawMessage
	OutputExample json.RawMessage
}

// Declared reports whether the offer declares a schema or an example, the
// condition for sending the bazaar extension in its 402.
func (d *Discovery) Declared() bool {
	return d.InputSchema != nil || d.OutputSchema != nil || d.OutputExample != nil
}

// BodyMethod reports whether the method carries its input in a body
// (POST, PUT, PATCH) rather than in query parameters.
func BodyMethod(m string) bool {
	switch m {
	case "POST", "PUT", "PATCH":
		return true
	}
	return false
}

// ValidateDiscovery checks an offer's discovery block (nil is the
// default: public, GET, nothing declared) for an offer of type typ: the
// method is one an x402 catalog knows, the category is a short printable
// tag, the schemas are JSON objects without $ref (catalogs embed them in
// other documents, where a reference would point elsewhere), and the
// schemas and example together stay small enough for a 402 header. The
// error is an *Error listing every problem.
func ValidateDiscovery(d *v1alpha1.OfferDiscovery, typ v1alpha1.OfferType) (*Discovery, error) {
	out := &Discovery{Public: true, Method: "GET"}
	if typ == v1alpha1.OfferTypeInference {
		out.Method = "POST"
	}
	if d == nil {
		return out, nil
	}
	var errs problems
	if d.Public != nil {
		out.Public = *d.Public
	}
	if d.Method != "" {
		m := strings.ToUpper(strings.TrimSpace(string(d.Method)))
		switch m {
		case "GET", "HEAD", "DELETE", "POST", "PUT", "PATCH":
			out.Method = m
		default:
			errs.addf(FieldDiscoveryMethod, "%q: use GET, HEAD, DELETE, POST, PUT or PATCH", d.Method)
		}
	}
	if c := strings.TrimSpace(d.Category); c != "" {
		if err := checkTag(c); err != nil {
			errs.add(FieldDiscoveryCategory, err)
		}
		out.Category = c
	}
	total := 0
	for _, f := range []struct {
		field  Field
		v      *apiextensionsv1.JSON
		dst    *json.RawMessage
		schema bool
	}{
		{FieldDiscoveryInputSchema, d.InputSchema, &out.InputSchema, true},
		{FieldDiscoveryOutputSchema, d.OutputSchema, &out.OutputSchema, true},
		{FieldDiscoveryOutputExample, d.OutputExample, &out.OutputExample, false},
	} {
		if f.v == nil || len(bytes.TrimSpace(f.v.Raw)) == 0 || string(bytes.TrimSpace(f.v.Raw)) == "null" {
			continue
		}
		raw, err := compactJSON(f.v.Raw)
		if err != nil {
			errs.add(f.field, err)
			continue
		}
		if f.schema {
			if err := checkSchema(raw); err != nil {
				errs.add(f.field, err)
				continue
			}
		}
		total += len(raw)
		*f.dst = raw
	}
	if out.OutputExample != nil && out.OutputSchema != nil {
		if err := validateAgainst(out.OutputSchema, out.OutputExample); err != nil {
			errs.addf(FieldDiscoveryOutputExample, "does not match outputSchema: %v", err)
		}
	}
	if total > MaxDiscoveryBytes {
		errs.addf(FieldDiscovery, "the schemas and the example take %d bytes of JSON, more than %d: they travel in every 402 answer; describe less (drop descriptions, shorten the example)", total, MaxDiscoveryBytes)
	}
	if len(errs) > 0 {
		return nil, errs.err()
	}
	return out, nil
}

// ParseJSONValue reads a flag's JSON text (a schema or an example) into
// the CRD's form; "" is nil.
func ParseJSONValue(text string) (*apiextensionsv1.JSON, error) {
	if strings.TrimSpace(text) == "" {
		return nil, nil
	}
	raw, err := compactJSON([]byte(text))
	if err != nil {
		return nil, err
	}
	return &apiextensionsv1.JSON{Raw: raw}, nil
}

func compactJSON(b []byte) (json.RawMessage, error) {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return nil, fmt.Errorf("not valid JSON: %v", err)
	}
	return buf.Bytes(), nil
}

// checkSchema checks that raw is a JSON object usable as a JSON Schema
// inside another document: no $ref or $id anywhere.
func checkSchema(raw json.RawMessage) error {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return fmt.Errorf("not valid JSON: %v", err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("a JSON Schema is an object, such as {\"type\":\"object\",\"properties\":{...}}")
	}
	if t, ok := m["type"]; ok {
		if _, isStr := t.(string); !isStr {
			if _, isList := t.([]any); !isList {
				return fmt.Errorf("\"type\" must be a string or a list of strings")
			}
		}
	}
	if err := findRef(m, ""); err != nil {
		return err
	}
	if _, err := compileSchema(raw); err != nil {
		return fmt.Errorf("not a valid JSON Schema: %v", err)
	}
	return nil
}

// compileSchema compiles a JSON Schema (draft 2020-12 unless it says
// otherwise) without loading anything: checkSchema has refused references.
func compileSchema(raw json.RawMessage) (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(jsonschema.SchemeURLLoader{})
	if err := c.AddResource("mem:///schema.json", doc); err != nil {
		return nil, err
	}
	return c.Compile("mem:///schema.json")
}

// validateAgainst checks a JSON value against a JSON Schema.
func validateAgainst(schema, value json.RawMessage) error {
	sch, err := compileSchema(schema)
	if err != nil {
		return err
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(value))
	if err != nil {
		return err
	}
	if err := sch.Validate(v); err != nil {
		return errors.New(strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return nil
}

func findRef(v any, at string) error {
	switch x := v.(type) {
	case map[string]any:
		for k, sub := range x {
			if k == "$ref" || k == "$id" || k == "$dynamicRef" {
				return fmt.Errorf("%s at %s: references are not supported; write the schema out in full (catalogs embed it in other documents)", k, jsonPointer(at))
			}
			if err := findRef(sub, at+"/"+k); err != nil {
				return err
			}
		}
	case []any:
		for i, sub := range x {
			if err := findRef(sub, fmt.Sprintf("%s/%d", at, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

func jsonPointer(at string) string {
	if at == "" {
		return "the top"
	}
	return at
}

// checkTag accepts printable ASCII of at most MaxCategoryLen characters.
func checkTag(s string) error {
	if len(s) > MaxCategoryLen {
		return fmt.Errorf("%q is longer than %d characters", s, MaxCategoryLen)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return fmt.Errorf("%q: use printable ASCII (letters, digits, spaces, punctuation)", s)
		}
	}
	return nil
}
