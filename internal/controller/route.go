package controller

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
)

// HTTPRouteGVK is the Gateway API kind the controller publishes. It is
// handled as unstructured data, so no Gateway API Go module is needed.
var HTTPRouteGVK = schema.GroupVersionKind{Group: "gateway.networking.k8s.io", Version: "v1", Kind: "HTTPRoute"}

// Labels on every HTTPRoute the controller publishes.
const (
	LabelManagedBy      = "app.kubernetes.io/managed-by"
	ManagedByValue      = "obol-controller"
	LabelOfferName      = "obol.org/offer-name"
	LabelOfferNamespace = "obol.org/offer-namespace"
)

// RouteTarget says where published routes attach and where they send traffic.
type RouteTarget struct {
	GatewayName       string
	GatewayNamespace  string // "" = the route's (offer's) namespace
	GatewaySection    string // optional listener name
	VerifierService   string
	VerifierNamespace string
	VerifierPort      int32
}

// RouteName is the HTTPRoute name for an offer (same namespace as the offer).
func RouteName(offer *v1alpha1.ServiceOffer) string { return "obol-offer-" + offer.Name }

// BuildHTTPRoute returns the HTTPRoute that sends the offer's path (and
// everything under it) to the verifier Service, owned by the offer.
func BuildHTTPRoute(offer *v1alpha1.ServiceOffer, t RouteTarget) *unstructured.Unstructured {
	parent := map[string]any{
		"group": "gateway.networking.k8s.io",
		"kind":  "Gateway",
		"name":  t.GatewayName,
	}
	if t.GatewayNamespace != "" {
		parent["namespace"] = t.GatewayNamespace
	}
	if t.GatewaySection != "" {
		parent["sectionName"] = t.GatewaySection
	}
	backend := map[string]any{
		"group": "",
		"kind":  "Service",
		"name":  t.VerifierService,
		"port":  int64(t.VerifierPort),
	}
	if t.VerifierNamespace != "" && t.VerifierNamespace != offer.Namespace {
		backend["namespace"] = t.VerifierNamespace
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"spec": map[string]any{
			"parentRefs": []any{parent},
			"rules": []any{map[string]any{
				"matches": []any{map[string]any{
					"path": map[string]any{"type": "PathPrefix", "value": offer.EffectivePath()},
				}},
				"backendRefs": []any{backend},
			}},
		},
	}}
	u.SetGroupVersionKind(HTTPRouteGVK)
	u.SetName(RouteName(offer))
	u.SetNamespace(offer.Namespace)
	u.SetLabels(map[string]string{
		LabelManagedBy:      ManagedByValue,
		LabelOfferName:      offer.Name,
		LabelOfferNamespace: offer.Namespace,
	})
	return u
}

// ReferenceGrantGVK is the Gateway API kind that lets routes in other
// namespaces send traffic to the verifier Service. v1beta1 is served by
// every Gateway API release that has ReferenceGrant.
var ReferenceGrantGVK = schema.GroupVersionKind{Group: "gateway.networking.k8s.io", Version: "v1beta1", Kind: "ReferenceGrant"}

// ReferenceGrantName is the grant the controller keeps in the verifier's
// namespace, listing every namespace whose offers route to the verifier.
const ReferenceGrantName = "obol-offer-routes"

// referenceGrantFrom returns the grant's spec.from entries as namespaces.
func referenceGrantFrom(u *unstructured.Unstructured) []string {
	from, _, _ := unstructured.NestedSlice(u.Object, "spec", "from")
	var out []string
	for _, f := range from {
		if m, ok := f.(map[string]any); ok {
			if ns, ok := m["namespace"].(string); ok {
				out = append(out, ns)
			}
		}
	}
	return out
}

// BuildReferenceGrant returns the grant allowing HTTPRoutes in namespaces
// to reference the verifier Service.
func BuildReferenceGrant(t RouteTarget, namespaces []string) *unstructured.Unstructured {
	from := make([]any, 0, len(namespaces))
	for _, ns := range namespaces {
		from = append(from, map[string]any{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "namespace": ns})
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"spec": map[string]any{
			"from": from,
			"to":   []any{map[string]any{"group": "", "kind": "Service", "name": t.VerifierService}},
		},
	}}
	u.SetGroupVersionKind(ReferenceGrantGVK)
	u.SetNamespace(t.VerifierNamespace)
	u.SetName(ReferenceGrantName)
	u.SetLabels(map[string]string{LabelManagedBy: ManagedByValue})
	return u
}
