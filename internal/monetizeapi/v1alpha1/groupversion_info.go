// Package v1alpha1 holds the obol.org/v1alpha1 custom resources: ServiceOffer
// (what a seller publishes) and PurchaseRequest (what a buyer pre-authorizes).
//
// The CRD YAML under charts/obol/crds/ and zz_generated.deepcopy.go are
// generated from these types by controller-gen (`make generate`); a test
// fails when the committed YAML differs from what the types generate.
//
// +kubebuilder:object:generate=true
// +groupName=obol.org
package v1alpha1

// `make generate` (go generate ./...) runs the pinned controller-gen from
// hack/tools/controller-gen/go.mod; its dependencies stay out of the main go.mod.
//go:generate go run -modfile=../../../hack/tools/controller-gen/go.mod sigs.k8s.io/controller-tools/cmd/controller-gen crd object paths=./ output:crd:artifacts:config=../../../charts/obol/crds

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Group and version of the obol resources.
const (
	Group   = "obol.org"
	Version = "v1alpha1"
)

var (
	// GroupVersion is obol.org/v1alpha1.
	GroupVersion = schema.GroupVersion{Group: Group, Version: Version}

	// SchemeBuilder registers the types of this package.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds ServiceOffer and PurchaseRequest (and their lists) to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// Resource names (plural, lower case) as the API server serves them.
const (
	ServiceOfferResource    = "serviceoffers"
	PurchaseRequestResource = "purchaserequests"
)

// GroupVersionResource and GroupVersionKind helpers for dynamic clients.
var (
	ServiceOfferGVR    = GroupVersion.WithResource(ServiceOfferResource)
	PurchaseRequestGVR = GroupVersion.WithResource(PurchaseRequestResource)
	ServiceOfferGVK    = GroupVersion.WithKind("ServiceOffer")
	PurchaseRequestGVK = GroupVersion.WithKind("PurchaseRequest")
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion,
		&ServiceOffer{}, &ServiceOfferList{},
		&PurchaseRequest{}, &PurchaseRequestList{},
	)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
