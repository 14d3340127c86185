package x402

import (
	"encoding/json"
	"testing"
)

// specErrorCodes is the list of section 9 "Error Handling" of the x402
// specification, v2 (specs/x402-specification-v2.md in x402-foundation/x402),
// in its order.
var specErrorCodes = []string{
	"insufficient_funds",
	"invalid_exact_evm_payload_authorization_valid_after",
	"invalid_exact_evm_payload_authorization_valid_before",
	"invalid_exact_evm_payload_authorization_value_mismatch",
	"invalid_exact_evm_payload_signature",
	"invalid_exact_evm_payload_recipient_mismatch",
	"invalid_network",
	"invalid_payload",
	"invalid_payment_requirements",
	"invalid_scheme",
	"unsupported_scheme",
	"invalid_x402_version",
	"invalid_transaction_state",
	"unexpected_verify_error",
	"unexpected_settle_error",
}

func TestSpecReasonsAreTheSpecificationsList(t *testing.T) {
	if len(SpecReasons) != len(specErrorCodes) {
		t.Fatalf("SpecReasons has %d codes, the specification %d", len(SpecReasons), len(specErrorCodes))
	}
	for i, code := range specErrorCodes {
		if SpecReasons[i] != code {
			t.Errorf("SpecReasons[%d] = %q, the specification says %q", i, SpecReasons[i], code)
		}
		if got := CanonicalReason(code); got != code {
			t.Errorf("CanonicalReason(%q) = %q: a specification code must stay as it is", code, got)
		}
	}
}

func TestOurOwnCodesDoNotShadowTheSpecification(t *testing.T) {
	spec := map[string]bool{}
	for _, c := range specErrorCodes {
		spec[c] = true
	}
	seen := map[string]bool{}
	for _, c := range ExtensionReasons {
		if spec[c] || seen[c] {
			t.Errorf("extension code %q repeats a code", c)
		}
		seen[c] = true
		if CanonicalReason(c) != c {
			t.Errorf("extension code %q is an alias", c)
		}
	}
}

// Older spellings, from the x402 v1 specification and from what obol sent
// before it used the specification's codes, read as today's code.
func TestOlderReasonCodesAreUnderstood(t *testing.T) {
	for _, tc := range []struct{ old, want string }{
		{"invalid_exact_evm_payload_authorization_value", ReasonValueMismatch},
		{"invalid_exact_evm_transaction_failed", ReasonInvalidTransactionState},
		{"something_else", "something_else"},
		{"", ""},
	} {
		if got := CanonicalReason(tc.old); got != tc.want {
			t.Errorf("CanonicalReason(%q) = %q, want %q", tc.old, got, tc.want)
		}
		var v VerifyResponse
		if err := json.Unmarshal([]byte(`{"isValid":false,"invalidReason":"`+tc.old+`","payer":"0x1"}`), &v); err != nil || v.InvalidReason != tc.want || v.Payer != "0x1" {
			t.Errorf("verify answer with %q: %v %+v", tc.old, err, v)
		}
		var s SettleResponse
		if err := json.Unmarshal([]byte(`{"success":false,"errorReason":"`+tc.old+`","transaction":"","network":"eip155:1"}`), &s); err != nil || s.ErrorReason != tc.want || s.Network != "eip155:1" {
			t.Errorf("settle answer with %q: %v %+v", tc.old, err, s)
		}
		if tc.old == "" {
			continue
		}
		h, err := EncodeSettleResponse(SettleResponse{ErrorReason: tc.old, Network: "eip155:1"})
		if err != nil {
			t.Fatal(err)
		}
		if d, err := DecodeSettleResponse(HeaderPaymentResponse, h); err != nil || d.ErrorReason != tc.want {
			t.Errorf("payment response header with %q: %v %+v", tc.old, err, d)
		}
	}
}
