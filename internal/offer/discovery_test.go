package offer

import (
	"errors"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
)

func js(s string) *apiextensionsv1.JSON { return &apiextensionsv1.JSON{Raw: []byte(s)} }

func TestValidateDiscoveryDefaults(t *testing.T) {
	d, err := ValidateDiscovery(nil, v1alpha1.OfferTypeHTTP)
	if err != nil || !d.Public || d.Method != "GET" || d.Declared() {
		t.Fatalf("nil block: %+v %v", d, err)
	}
	d, err = ValidateDiscovery(nil, v1alpha1.OfferTypeInference)
	if err != nil || d.Method != "POST" {
		t.Fatalf("inference default method: %+v %v", d, err)
	}
	f := false
	d, err = ValidateDiscovery(&v1alpha1.OfferDiscovery{Public: &f, Method: "post", Category: "weather",
		InputSchema: js(`{"type": "object"}`), OutputExample: js(`[1, 2]`)}, "")
	if err != nil || d.Public || d.Method != "POST" || string(d.InputSchema) != `{"type":"object"}` || !d.Declared() {
		t.Fatalf("full block: %+v %v", d, err)
	}
}

func TestValidateDiscoveryProblems(t *testing.T) {
	big := `{"description":"` + strings.Repeat("x", MaxDiscoveryBytes) + `"}`
	for _, c := range []struct {
		d     v1alpha1.OfferDiscovery
		field Field
		want  string
	}{
		{v1alpha1.OfferDiscovery{Method: "TRACE"}, FieldDiscoveryMethod, "use GET"},
		{v1alpha1.OfferDiscovery{Category: strings.Repeat("c", 33)}, FieldDiscoveryCategory, "longer than 32"},
		{v1alpha1.OfferDiscovery{Category: "wé"}, FieldDiscoveryCategory, "printable ASCII"},
		{v1alpha1.OfferDiscovery{InputSchema: js(`{"type":`)}, FieldDiscoveryInputSchema, "not valid JSON"},
		{v1alpha1.OfferDiscovery{InputSchema: js(`[1]`)}, FieldDiscoveryInputSchema, "is an object"},
		{v1alpha1.OfferDiscovery{InputSchema: js(`{"properties":{"a":{"$ref":"#/$defs/a"}}}`)}, FieldDiscoveryInputSchema, "$ref at /properties/a"},
		{v1alpha1.OfferDiscovery{OutputSchema: js(`{"type":"nope"}`)}, FieldDiscoveryOutputSchema, "not a valid JSON Schema"},
		{v1alpha1.OfferDiscovery{OutputSchema: js(`{"type":"object","required":["temp"]}`), OutputExample: js(`{"t":1}`)}, FieldDiscoveryOutputExample, "does not match outputSchema"},
		{v1alpha1.OfferDiscovery{InputSchema: js(big)}, FieldDiscovery, "more than"},
	} {
		_, err := ValidateDiscovery(&c.d, "")
		var oe *Error
		if !errors.As(err, &oe) || len(oe.Problems) != 1 || oe.Problems[0].Field != c.field || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want one problem in %s containing %q", c.d, err, c.field, c.want)
		}
	}
}
