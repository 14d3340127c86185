package buy

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
)

func TestValidityTextSaysWhenAndWhatToRun(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	auth := func(in time.Duration) v1alpha1.PreSignedAuth {
		return v1alpha1.PreSignedAuth{ValidBefore: strconv.FormatInt(now.Add(in).Unix(), 10)}
	}
	pr := &v1alpha1.PurchaseRequest{}
	pr.Name = "weather"
	pr.Spec.PreSignedAuths = []v1alpha1.PreSignedAuth{auth(-time.Minute), auth(45 * time.Second), auth(2 * time.Minute)}
	pr.Status.ObservedGeneration, pr.Status.Remaining = 1, 2
	got := validityText(pr, now)
	for _, want := range []string{"2 in the spec not expired", "the next expires at 2027-01-15T08:00:45Z (in 45s)", "the last at 2027-01-15T08:02:00Z (in 2m0s)", "obol buy refill weather"} {
		if !strings.Contains(got, want) {
			t.Errorf("validity %q lacks %q", got, want)
		}
	}
	got = validityText(pr, now.Add(3*time.Minute))
	if !strings.Contains(got, "every authorization expired") || !strings.Contains(got, "run `obol buy refill weather --key-file KEY --count N`") {
		t.Errorf("all expired: %q", got)
	}
	pr.Status.Remaining = 0
	if got := validityText(pr, now); !strings.Contains(got, "none remains to pay with") {
		t.Errorf("all spent: %q", got)
	}
}
