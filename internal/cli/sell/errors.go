package sell

import (
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
)

// describeErr turns an API error into a message that says what to do.
func describeErr(what string, err error) error {
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%s: not found (`obol sell list` shows the offers in a namespace; -n selects another): %w", what, err)
	case meta.IsNoMatchError(err):
		return fmt.Errorf("%s: the ServiceOffer CRD (obol.org/v1alpha1) is not installed in this cluster; install the obol chart first (`obol stack install`): %w", what, err)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%s: your kubeconfig user may not do this; ask for RBAC on serviceoffers.obol.org: %w", what, err)
	case apierrors.IsAlreadyExists(err):
		return fmt.Errorf("%s: an offer with that name exists; pick another name or `obol sell delete` it first: %w", what, err)
	case apierrors.IsInvalid(err):
		return fmt.Errorf("%s: the API server rejected the offer: %w", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
