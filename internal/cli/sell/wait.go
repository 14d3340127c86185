package sell

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
)

// waitReady polls until the offer's Ready condition is True for its
// current generation, or the timeout passes (then it explains why not).
func waitReady(ctx context.Context, c client.Client, ns, name string, timeout time.Duration, ios *cmdutil.IOStreams) (*v1alpha1.ServiceOffer, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	fmt.Fprintf(ios.ErrOut, "Waiting up to %s for ServiceOffer %s/%s to become Ready...\n", timeout, ns, name)
	var last *v1alpha1.ServiceOffer
	for {
		o, err := getOffer(ctx, c, ns, name)
		if err == nil {
			last = o
			if r := meta.FindStatusCondition(o.Status.Conditions, v1alpha1.ConditionReady); r != nil &&
				r.Status == metav1.ConditionTrue && r.ObservedGeneration == o.Generation {
				fmt.Fprintf(ios.ErrOut, "Ready: %s\n", r.Message)
				return o, nil
			}
		}
		select {
		case <-ctx.Done():
			if last == nil {
				return nil, fmt.Errorf("ServiceOffer %s/%s: not ready after %s: %w", ns, name, timeout, err)
			}
			return last, fmt.Errorf("ServiceOffer %s/%s is not Ready after %s:\n%s", ns, name, timeout, explainBrief(last))
		case <-time.After(pollInterval):
		}
	}
}

// waitGone polls until the offer no longer exists.
func waitGone(ctx context.Context, c client.Client, ns, name string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		var o v1alpha1.ServiceOffer
		err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &o)
		if apierrors.IsNotFound(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			msg := fmt.Sprintf("ServiceOffer %s/%s still exists after %s", ns, name, timeout)
			if err == nil && len(o.Finalizers) > 0 {
				msg += fmt.Sprintf(" (finalizers %v: is `obol controller` running? It removes the route, then the finalizer)", o.Finalizers)
			}
			return fmt.Errorf("%s", msg)
		case <-time.After(pollInterval):
		}
	}
}
