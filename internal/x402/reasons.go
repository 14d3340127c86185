package x402

import "encoding/json"

// Reason codes of the x402 specification, carried in invalidReason /
// errorReason (specs/x402-specification-v2.md, section 9 "Error Handling").
const (
	ReasonInsufficientFunds          = "insufficient_funds"
	ReasonValidAfter                 = "invalid_exact_evm_payload_authorization_valid_after"
	ReasonValidBefore                = "invalid_exact_evm_payload_authorization_valid_before"
	ReasonValueMismatch              = "invalid_exact_evm_payload_authorization_value_mismatch"
	ReasonInvalidSignature           = "invalid_exact_evm_payload_signature"
	ReasonRecipientMismatch          = "invalid_exact_evm_payload_recipient_mismatch"
	ReasonInvalidNetwork             = "invalid_network"
	ReasonInvalidPayload             = "invalid_payload"
	ReasonInvalidPaymentRequirements = "invalid_payment_requirements"
	ReasonInvalidScheme              = "invalid_scheme"
	ReasonUnsupportedScheme          = "unsupported_scheme"
	ReasonInvalidX402Version         = "invalid_x402_version"
	ReasonInvalidTransactionState    = "invalid_transaction_state"
	ReasonUnexpectedVerifyError      = "unexpected_verify_error"
	ReasonUnexpectedSettleError      = "unexpected_settle_error"
)

// Reason codes for faults the specification has no code for.
const (
	ReasonNonceAlreadyUsed           = "invalid_exact_evm_nonce_already_used"
	ReasonMissingEIP712Domain        = "invalid_exact_evm_missing_eip712_domain"
	ReasonUnsupportedSignatureScheme = "invalid_exact_evm_payload_signature_unsupported"
	ReasonPaymentRequired            = "payment_required"
	ReasonNoMatchingRequirement      = "no_matching_requirement"
	ReasonAuthorizationInFlight      = "authorization_in_flight"
	// A seller's 503 for a payment whose settlement outcome is not known
	// yet: the same request with the same payment, sent again after
	// Retry-After, gets the answer once it is.
	ReasonSettlementPending = "settlement_pending"
	// A seller's answer withheld because the settlement outcome stayed
	// unknown: the buyer may have been charged.
	ReasonSettlementUnknown = "settlement_unknown"
)

// SpecReasons are the codes the specification defines, in its order.
var SpecReasons = []string{
	ReasonInsufficientFunds, ReasonValidAfter, ReasonValidBefore, ReasonValueMismatch,
	ReasonInvalidSignature, ReasonRecipientMismatch, ReasonInvalidNetwork, ReasonInvalidPayload,
	ReasonInvalidPaymentRequirements, ReasonInvalidScheme, ReasonUnsupportedScheme,
	ReasonInvalidX402Version, ReasonInvalidTransactionState, ReasonUnexpectedVerifyError,
	ReasonUnexpectedSettleError,
}

// ExtensionReasons are the codes this implementation adds.
var ExtensionReasons = []string{
	ReasonNonceAlreadyUsed, ReasonMissingEIP712Domain, ReasonUnsupportedSignatureScheme,
	ReasonPaymentRequired, ReasonNoMatchingRequirement, ReasonAuthorizationInFlight,
	ReasonSettlementPending, ReasonSettlementUnknown,
}

// reasonAliases maps older spellings of a code to the one this package
// emits for the same fault.
var reasonAliases = map[string]string{
	// The x402 v1 specification's name for a wrong amount, still sent by
	// facilitators that implement v1.
	"invalid_exact_evm_payload_authorization_value": ReasonValueMismatch,
	// What obol sent for a reverted or failed transfer before it used the
	// specification's code.
	"invalid_exact_evm_transaction_failed": ReasonInvalidTransactionState,
}

// CanonicalReason returns the code this package uses for reason: the
// specification's name when reason is an older spelling of it, reason
// itself otherwise.
func CanonicalReason(reason string) string {
	if c, ok := reasonAliases[reason]; ok {
		return c
	}
	return reason
}

// UnmarshalJSON reads a verify answer, understanding older reason codes.
func (r *VerifyResponse) UnmarshalJSON(b []byte) error {
	type plain VerifyResponse
	if err := json.Unmarshal(b, (*plain)(r)); err != nil {
		return err
	}
	r.InvalidReason = CanonicalReason(r.InvalidReason)
	return nil
}

// UnmarshalJSON reads a settle answer, understanding older reason codes.
func (r *SettleResponse) UnmarshalJSON(b []byte) error {
	type plain SettleResponse
	if err := json.Unmarshal(b, (*plain)(r)); err != nil {
		return err
	}
	r.ErrorReason = CanonicalReason(r.ErrorReason)
	return nil
}
