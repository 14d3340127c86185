package x402

// Reason codes carried in invalidReason / errorReason.
const (
	ReasonInsufficientFunds          = "insufficient_funds"
	ReasonInvalidNetwork             = "invalid_network"
	ReasonInvalidPayload             = "invalid_payload"
	ReasonInvalidPaymentRequirements = "invalid_payment_requirements"
	ReasonInvalidScheme              = "invalid_scheme"
	ReasonInvalidX402Version         = "invalid_x402_version"
	ReasonInvalidSignature           = "invalid_exact_evm_payload_signature"
	ReasonRecipientMismatch          = "invalid_exact_evm_payload_recipient_mismatch"
	ReasonValueMismatch              = "invalid_exact_evm_payload_authorization_value_mismatch"
	ReasonValidAfter                 = "invalid_exact_evm_payload_authorization_valid_after"
	ReasonValidBefore                = "invalid_exact_evm_payload_authorization_valid_before"
	ReasonNonceAlreadyUsed           = "invalid_exact_evm_nonce_already_used"
	ReasonMissingEIP712Domain        = "invalid_exact_evm_missing_eip712_domain"
	ReasonTransactionFailed          = "invalid_exact_evm_transaction_failed"
	ReasonUnexpectedVerifyError      = "unexpected_verify_error"
	ReasonUnexpectedSettleError      = "unexpected_settle_error"
	ReasonPaymentRequired            = "payment_required"
	ReasonNoMatchingRequirement      = "no_matching_requirement"
	ReasonAuthorizationInFlight      = "authorization_in_flight"
	ReasonUnsupportedSignatureScheme = "invalid_exact_evm_payload_signature_unsupported"
)
