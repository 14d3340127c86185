package earnings

import (
	"testing"

	"github.com/obolstack/obol/internal/verifier"
)

// The queries read the series the verifier writes: the names come from one
// place, the verifier's exported constants, not from a second typing.
func TestQueriesReadTheVerifiersMetricNames(t *testing.T) {
	for ours, theirs := range map[string]string{
		mRequests:      verifier.MetricRequests,
		mRequired:      verifier.MetricPaymentRequired,
		mVerified:      verifier.MetricPaymentVerified,
		mFailed:        verifier.MetricPaymentFailed,
		mCharged:       verifier.MetricCharged,
		mChargedAtomic: verifier.MetricChargedAtomicUnits,
		mLastSuccess:   verifier.MetricLastPaymentSuccess,
	} {
		if ours != theirs {
			t.Errorf("earnings reads %s, the verifier writes %s", ours, theirs)
		}
	}
	if offerBy != verifier.LabelOfferNamespace+", "+verifier.LabelOfferName+", "+verifier.LabelChain {
		t.Errorf("earnings groups by %q, not by the verifier's offer labels", offerBy)
	}
}
