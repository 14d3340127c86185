package v1alpha1_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
)

const crdDir = "../../../charts/obol/crds"

var fixtures = []struct {
	name    string
	fixture string
	crd     string
	newObj  func() any
}{
	{"ServiceOffer", "testdata/serviceoffer-full.yaml", "obol.org_serviceoffers.yaml", func() any { return &v1alpha1.ServiceOffer{} }},
	{"PurchaseRequest", "testdata/purchaserequest-full.yaml", "obol.org_purchaserequests.yaml", func() any { return &v1alpha1.PurchaseRequest{} }},
}

// TestCRDFormRoundTrip decodes a CRD-form object with every field set into
// the Go types (strictly: an unknown field fails) and encodes it back; the
// two must be equal as generic maps. A field the CRD accepts but the types
// do not read (the anchor's maxTotal/maxSpendPerDay bug) fails here.
func TestCRDFormRoundTrip(t *testing.T) {
	for _, tc := range fixtures {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := os.ReadFile(tc.fixture)
			if err != nil {
				t.Fatal(err)
			}
			obj := tc.newObj()
			if err := yaml.UnmarshalStrict(raw, obj); err != nil {
				t.Fatalf("fixture does not decode strictly into the Go type: %v", err)
			}
			back, err := json.Marshal(obj)
			if err != nil {
				t.Fatal(err)
			}
			var got, want map[string]any
			if err := json.Unmarshal(back, &got); err != nil {
				t.Fatal(err)
			}
			js, err := yaml.YAMLToJSON(raw)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(js, &want); err != nil {
				t.Fatal(err)
			}
			// ObjectMeta adds a null creationTimestamp; it is not ours.
			if md, ok := got["metadata"].(map[string]any); ok && md["creationTimestamp"] == nil {
				delete(md, "creationTimestamp")
			}
			if !reflect.DeepEqual(got, want) {
				g, _ := yaml.Marshal(got)
				w, _ := yaml.Marshal(want)
				t.Fatalf("round trip lost or changed data\n--- fixture\n%s\n--- after Go types\n%s", w, g)
			}
		})
	}
}

// TestFixturesCoverCRDSchema walks the committed CRD schema and demands
// that every spec and status property appears in the full fixture, so the
// round trip above really exercises every field, including new ones.
func TestFixturesCoverCRDSchema(t *testing.T) {
	for _, tc := range fixtures {
		t.Run(tc.name, func(t *testing.T) {
			crd := loadCRD(t, filepath.Join(crdDir, tc.crd))
			raw, err := os.ReadFile(tc.fixture)
			if err != nil {
				t.Fatal(err)
			}
			var obj map[string]any
			if err := yaml.Unmarshal(raw, &obj); err != nil {
				t.Fatal(err)
			}
			if len(crd.Spec.Versions) != 1 || crd.Spec.Versions[0].Name != v1alpha1.Version {
				t.Fatalf("expected exactly one version %s in %s", v1alpha1.Version, tc.crd)
			}
			root := crd.Spec.Versions[0].Schema.OpenAPIV3Schema
			var missing []string
			for _, top := range []string{"spec", "status"} {
				s, ok := root.Properties[top]
				if !ok {
					t.Fatalf("CRD has no %s", top)
				}
				walkSchema(top, s, []any{obj[top]}, &missing)
			}
			sort.Strings(missing)
			if len(missing) > 0 {
				t.Fatalf("the fixture %s does not set these CRD fields (add them):\n  %s", tc.fixture, strings.Join(missing, "\n  "))
			}
		})
	}
}

// walkSchema records every leaf path of s that none of vals sets.
func walkSchema(path string, s apiextensionsv1.JSONSchemaProps, vals []any, missing *[]string) {
	var present []any
	for _, v := range vals {
		if v != nil {
			present = append(present, v)
		}
	}
	if len(present) == 0 {
		*missing = append(*missing, path)
		return
	}
	switch s.Type {
	case "object":
		for name, sub := range s.Properties {
			var next []any
			for _, v := range present {
				if m, ok := v.(map[string]any); ok {
					next = append(next, m[name])
				}
			}
			walkSchema(path+"."+name, sub, next, missing)
		}
	case "array":
		if s.Items == nil || s.Items.Schema == nil {
			return
		}
		var next []any
		for _, v := range present {
			if l, ok := v.([]any); ok {
				next = append(next, l...)
			}
		}
		walkSchema(path+"[]", *s.Items.Schema, next, missing)
	}
}

func loadCRD(t *testing.T, path string) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read committed CRD: %v (run `make generate`)", err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.UnmarshalStrict(raw, &crd); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return &crd
}

// TestCRDContract checks the names, short names, printer columns and
// subresources users and scripts depend on.
func TestCRDContract(t *testing.T) {
	so := loadCRD(t, filepath.Join(crdDir, "obol.org_serviceoffers.yaml"))
	pr := loadCRD(t, filepath.Join(crdDir, "obol.org_purchaserequests.yaml"))
	for _, c := range []struct {
		crd        *apiextensionsv1.CustomResourceDefinition
		kind       string
		short      string
		columns    []string
		statusPath string
	}{
		{so, "ServiceOffer", "so", []string{"Type", "Model", "Price", "Network", "Ready", "URL", "Age"}, ""},
		{pr, "PurchaseRequest", "pr", nil, ""},
	} {
		if c.crd.Spec.Group != v1alpha1.Group || c.crd.Spec.Names.Kind != c.kind {
			t.Errorf("%s: group/kind = %s/%s", c.kind, c.crd.Spec.Group, c.crd.Spec.Names.Kind)
		}
		if c.crd.Spec.Scope != apiextensionsv1.NamespaceScoped {
			t.Errorf("%s: scope %s, want Namespaced", c.kind, c.crd.Spec.Scope)
		}
		if !reflect.DeepEqual(c.crd.Spec.Names.ShortNames, []string{c.short}) {
			t.Errorf("%s: short names %v, want [%s]", c.kind, c.crd.Spec.Names.ShortNames, c.short)
		}
		v := c.crd.Spec.Versions[0]
		if v.Subresources == nil || v.Subresources.Status == nil {
			t.Errorf("%s: no status subresource", c.kind)
		}
		if c.columns != nil {
			var got []string
			for _, col := range v.AdditionalPrinterColumns {
				got = append(got, col.Name)
			}
			if !reflect.DeepEqual(got, c.columns) {
				t.Errorf("%s: printer columns %v, want %v", c.kind, got, c.columns)
			}
		}
	}
	count := pr.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["count"]
	if count.Minimum == nil || *count.Minimum != 1 || count.Maximum == nil || *count.Maximum != 2500 {
		t.Errorf("PurchaseRequest spec.count bounds = %v..%v, want 1..2500", count.Minimum, count.Maximum)
	}
	ar := pr.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties["autoRefill"]
	if ar.Properties["maxTotal"].Type != "integer" || ar.Properties["maxSpendPerDay"].Type != "string" {
		t.Errorf("autoRefill.maxTotal must be integer and maxSpendPerDay string, got %s/%s",
			ar.Properties["maxTotal"].Type, ar.Properties["maxSpendPerDay"].Type)
	}
}
