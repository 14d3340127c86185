package v1alpha1_test

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

// TestDocsCoverEveryField demands that docs/crds.md names every field of
// both CRDs (as `spec.a.b`), so a new field cannot ship undocumented.
func TestDocsCoverEveryField(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "crds.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	var missing []string
	for _, tc := range fixtures {
		crd := loadCRD(t, filepath.Join(crdDir, tc.crd))
		root := crd.Spec.Versions[0].Schema.OpenAPIV3Schema
		var paths []string
		for _, top := range []string{"spec", "status"} {
			fieldPaths(top, root.Properties[top], &paths)
		}
		for _, p := range paths {
			if !strings.Contains(text, "`"+p+"`") {
				missing = append(missing, tc.name+" "+p)
			}
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("docs/crds.md does not document:\n  %s", strings.Join(missing, "\n  "))
	}
}

// fieldPaths lists every property path below s; standard conditions are
// documented as a whole.
func fieldPaths(path string, s apiextensionsv1.JSONSchemaProps, out *[]string) {
	switch s.Type {
	case "object":
		for name, sub := range s.Properties {
			p := path + "." + name
			*out = append(*out, p)
			fieldPaths(p, sub, out)
		}
	case "array":
		if strings.HasSuffix(path, ".conditions") || s.Items == nil || s.Items.Schema == nil {
			return
		}
		fieldPaths(path+"[]", *s.Items.Schema, out)
	}
}
