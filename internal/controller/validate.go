package controller

import (
	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
	"github.com/obolstack/obol/internal/offer"
)

// PaymentTerms is the payment gate's verdict on an offer's terms: the
// rules of package offer, which the CLI and the verifier apply too, on this
// reconciler's chain registry.
func (r *ServiceOfferReconciler) PaymentTerms(p v1alpha1.OfferPayment) (*offer.Payment, error) {
	return offer.ValidatePayment(r.Registry, p)
}
