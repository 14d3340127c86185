package sell

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
)

// conditionMeaning says in words what each condition being True means.
var conditionMeaning = map[string]string{
	v1alpha1.ConditionUpstreamHealthy:  "the upstream Service exists and has the port",
	v1alpha1.ConditionPaymentGateReady: "the payment terms are valid and the verifier can charge",
	v1alpha1.ConditionRoutePublished:   "the route sending the path to the verifier is published",
	v1alpha1.ConditionReady:            "buyers can pay for and reach the offer",
}

// reasonHint says what to do about a condition reason.
var reasonHint = map[string]string{
	v1alpha1.ReasonPaused:              "the offer is paused; `obol sell resume NAME` sells it again",
	v1alpha1.ReasonGatewayAPIMissing:   "install the Gateway API CRDs (gateway.networking.k8s.io) in the cluster; the controller retries on its own",
	v1alpha1.ReasonInvalidPayment:      "fix spec.payment (delete and re-create with `obol sell create`)",
	v1alpha1.ReasonUpstreamNotFound:    "create the upstream Service or fix spec.upstream",
	v1alpha1.ReasonUpstreamPortMissing: "the Service does not expose that port; fix spec.upstream.port",
	v1alpha1.ReasonRouteError:          "the API server refused the route; see the message and the controller's log",
}

func mark(s metav1.ConditionStatus) string {
	switch s {
	case metav1.ConditionTrue:
		return "yes"
	case metav1.ConditionFalse:
		return "no"
	}
	return "unknown"
}

// explainBrief lists the conditions that are not True, with hints.
func explainBrief(o *v1alpha1.ServiceOffer) string {
	var b strings.Builder
	if len(o.Status.Conditions) == 0 {
		return "  no status yet: the controller has not processed this offer (is `obol controller` running?)"
	}
	for _, c := range o.Status.Conditions {
		if c.Status == metav1.ConditionTrue {
			continue
		}
		fmt.Fprintf(&b, "  %s: %s (%s)\n", c.Type, c.Message, c.Reason)
		if h := reasonHint[c.Reason]; h != "" {
			fmt.Fprintf(&b, "    what to do: %s\n", h)
		}
	}
	return strings.TrimRight(b.String(), "\n")
}
