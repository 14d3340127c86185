package stack

import (
	"context"

	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Annotations that mark a StorageClass as the cluster's default.
const (
	defaultClassAnnotation     = "storageclass.kubernetes.io/is-default-class"
	defaultClassAnnotationBeta = "storageclass.beta.kubernetes.io/is-default-class"
)

// NoStorageClassNote is the install note when the buyer falls back to an
// emptyDir because nothing would bind its PersistentVolumeClaim.
const NoStorageClassNote = "buyer: the cluster has no default StorageClass, so the buyer keeps its state in an emptyDir " +
	"(lost when the pod is replaced; an authorization used before then may be tried again and is refused on-chain); " +
	"to keep it on a volume run `obol stack upgrade --set buyer.persistence.enabled=true " +
	"--set buyer.persistence.storageClassName=<class>` (see docs/install.md)"

// buyerStorage turns the buyer's persistence off when the user left it at
// the default and the cluster has no default StorageClass: a claim without a
// class would stay Pending and the buyer would never start. It changes vals
// and returns a note when it did. Any doubt (buyer disabled, persistence or
// a class set by the user, StorageClasses not readable) leaves vals alone.
func (s *Stack) buyerStorage(ctx context.Context, vals map[string]any) string {
	buyer, _ := vals["buyer"].(map[string]any)
	if enabled, set := buyer["enabled"]; set && !truthy(enabled) {
		return ""
	}
	pers, _ := buyer["persistence"].(map[string]any)
	if _, set := pers["enabled"]; set {
		return ""
	}
	if class, _ := pers["storageClassName"].(string); class != "" {
		return ""
	}
	cs, err := s.clientset()
	if err != nil {
		return ""
	}
	list, err := cs.StorageV1().StorageClasses().List(ctx, metav1.ListOptions{})
	if err != nil {
		s.log.Debug("cannot list StorageClasses; leaving buyer persistence as configured", "err", err)
		return ""
	}
	if hasDefaultClass(list.Items) {
		return ""
	}
	if buyer == nil {
		buyer = map[string]any{}
		vals["buyer"] = buyer
	}
	if pers == nil {
		pers = map[string]any{}
		buyer["persistence"] = pers
	}
	pers["enabled"] = false
	return NoStorageClassNote
}

func hasDefaultClass(classes []storagev1.StorageClass) bool {
	for _, c := range classes {
		if c.Annotations[defaultClassAnnotation] == "true" || c.Annotations[defaultClassAnnotationBeta] == "true" {
			return true
		}
	}
	return false
}

func truthy(v any) bool {
	switch b := v.(type) {
	case bool:
		return b
	case string:
		return b == "true"
	}
	return v != nil
}
