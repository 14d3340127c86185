package controller_test

import (
	"context"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

func loadFixture(t *testing.T, name, ns string) *unstructured.Unstructured {
	t.Helper()
	raw, err := os.ReadFile("../monetizeapi/v1alpha1/testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(raw, &u.Object); err != nil {
		t.Fatal(err)
	}
	u.SetNamespace(ns)
	return u
}

// The real API server accepts the full fixtures (every field set) and
// returns every field: structural pruning would silently drop a field the
// CRD schema lacks, so spec and status must come back unchanged.
func TestCRDSchemaKeepsEveryField(t *testing.T) {
	ns, c := setup(t)
	ctx := context.Background()
	for _, f := range []string{"serviceoffer-full.yaml", "purchaserequest-full.yaml"} {
		want := loadFixture(t, f, ns)
		obj := want.DeepCopy()
		if err := c.Create(ctx, obj); err != nil {
			t.Fatalf("%s: create: %v", f, err)
		}
		obj.Object["status"] = want.Object["status"]
		if err := c.Status().Update(ctx, obj); err != nil {
			t.Fatalf("%s: status update: %v", f, err)
		}
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(want.GroupVersionKind())
		if err := c.Get(ctx, client.ObjectKeyFromObject(want), got); err != nil {
			t.Fatal(err)
		}
		for _, part := range []string{"spec", "status"} {
			if !reflect.DeepEqual(normalize(t, got.Object[part]), normalize(t, want.Object[part])) {
				g, _ := yaml.Marshal(got.Object[part])
				w, _ := yaml.Marshal(want.Object[part])
				t.Errorf("%s: the API server changed %s\n--- sent\n%s--- stored\n%s", f, part, w, g)
			}
		}
	}
}

// normalize round-trips v through JSON so numbers compare alike.
func normalize(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// The CRD's validation rejects what the types' markers forbid.
func TestCRDSchemaRejectsInvalidObjects(t *testing.T) {
	ns, c := setup(t)
	ctx := context.Background()
	for _, tc := range []struct {
		fixture string
		path    []string
		value   any
		want    string
	}{
		{"serviceoffer-full.yaml", []string{"spec", "payment", "payTo"}, "0x1234", "spec.payment.payTo"},
		{"serviceoffer-full.yaml", []string{"spec", "payment", "price", "perRequest"}, "1e3", "spec.payment.price.perRequest"},
		{"serviceoffer-full.yaml", []string{"spec", "payment", "price"}, map[string]any{}, "set at least one of perRequest, perMTok, perHour"},
		{"serviceoffer-full.yaml", []string{"spec", "type"}, "grpc", "spec.type"},
		{"serviceoffer-full.yaml", []string{"spec", "payment", "scheme"}, "upto", "spec.payment.scheme"},
		{"serviceoffer-full.yaml", []string{"spec", "upstream", "port"}, int64(0), "spec.upstream.port"},
		{"serviceoffer-full.yaml", []string{"spec", "path"}, "services/x", "spec.path"},
		{"purchaserequest-full.yaml", []string{"spec", "count"}, int64(0), "spec.count"},
		{"purchaserequest-full.yaml", []string{"spec", "count"}, int64(2501), "spec.count"},
		{"purchaserequest-full.yaml", []string{"spec", "autoRefill", "count"}, int64(2501), "spec.autoRefill.count"},
		{"purchaserequest-full.yaml", []string{"spec", "autoRefill", "maxSpendPerDay"}, "0.25", "spec.autoRefill.maxSpendPerDay"},
		{"purchaserequest-full.yaml", []string{"spec", "payment", "price"}, "0.001", "spec.payment.price"},
	} {
		obj := loadFixture(t, tc.fixture, ns)
		obj.SetName("invalid")
		delete(obj.Object, "status")
		if err := unstructured.SetNestedField(obj.Object, tc.value, tc.path...); err != nil {
			t.Fatal(err)
		}
		err := c.Create(ctx, obj)
		if err == nil {
			_ = c.Delete(ctx, obj)
			t.Errorf("%s %v=%v: accepted", tc.fixture, tc.path, tc.value)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %v=%v: %v (want it to name %q)", tc.fixture, tc.path, tc.value, err, tc.want)
		}
	}
}
