// Package x402 is the wire protocol of x402 (versions 1 and 2, scheme
// "exact" on EVM): the JSON types, the header codec, the 402 answer and the
// reason codes. It does no I/O and knows no chain registry.
package x402

import "encoding/json"

// Header names.
const (
	HeaderPaymentRequired  = "PAYMENT-REQUIRED"   // v2 challenge
	HeaderPaymentSignature = "PAYMENT-SIGNATURE"  // v2 payment
	HeaderXPayment         = "X-PAYMENT"          // v1 payment
	HeaderPaymentResponse  = "PAYMENT-RESPONSE"   // v2 settlement result
	HeaderXPaymentResponse = "X-PAYMENT-RESPONSE" // v1 settlement result
)

// Protocol constants.
const (
	Version1 = 1
	Version2 = 2

	SchemeExact = "exact"

	// MaxHeaderBytes bounds every encoded header value this package decodes.
	MaxHeaderBytes = 16 << 10

	TransferMethodEIP3009 = "eip3009"
	TransferMethodPermit2 = "permit2"
)

// ResourceInfo describes the paid resource (v2 top level; v1 inlines it in
// each requirement).
type ResourceInfo struct {
	URL         string `json:"url"`
	Description string `json:"description,omitempty"`
	MimeType    string `json:"mimeType,omitempty"`
}

// Extra is the EVM "extra" object of a requirement: the token's EIP-712
// domain name and version, and optionally the transfer method. Unknown keys
// are kept in Other and written back out.
type Extra struct {
	Name                string                     `json:"-"`
	Version             string                     `json:"-"`
	AssetTransferMethod string                     `json:"-"`
	Other               map[string]json.RawMessage `json:"-"`
}

// PaymentRequirementsV1 is one entry of a v1 `accepts` list.
type PaymentRequirementsV1 struct {
	Scheme            string          `json:"scheme"`
	Network           string          `json:"network"`
	MaxAmountRequired string          `json:"maxAmountRequired"`
	Resource          string          `json:"resource"`
	Description       string          `json:"description"`
	MimeType          string          `json:"mimeType"`
	PayTo             string          `json:"payTo"`
	MaxTimeoutSeconds int             `json:"maxTimeoutSeconds"`
	Asset             string          `json:"asset"`
	OutputSchema      json.RawMessage `json:"outputSchema,omitempty"`
	Extra             *Extra          `json:"extra,omitempty"`
}

// PaymentRequirementsV2 is one entry of a v2 `accepts` list.
type PaymentRequirementsV2 struct {
	Scheme            string `json:"scheme"`
	Network           string `json:"network"`
	Amount            string `json:"amount"`
	Asset             string `json:"asset"`
	PayTo             string `json:"payTo"`
	MaxTimeoutSeconds int    `json:"maxTimeoutSeconds"`
	Extra             *Extra `json:"extra,omitempty"`
}

// PaymentRequiredV1 is the v1 402 body.
type PaymentRequiredV1 struct {
	X402Version int                     `json:"x402Version"`
	Error       string                  `json:"error"`
	Accepts     []PaymentRequirementsV1 `json:"accepts"`
}

// PaymentRequiredV2 is the v2 challenge (PAYMENT-REQUIRED header and body).
type PaymentRequiredV2 struct {
	X402Version int                        `json:"x402Version"`
	Error       string                     `json:"error,omitempty"`
	Resource    *ResourceInfo              `json:"resource,omitempty"`
	Accepts     []PaymentRequirementsV2    `json:"accepts"`
	Extensions  map[string]json.RawMessage `json:"extensions,omitempty"`
}

// EIP3009Authorization is the signed TransferWithAuthorization message.
// Numbers are decimal strings; Nonce is 0x + 32 bytes hex.
type EIP3009Authorization struct {
	From        string `json:"from"`
	To          string `json:"to"`
	Value       string `json:"value"`
	ValidAfter  string `json:"validAfter"`
	ValidBefore string `json:"validBefore"`
	Nonce       string `json:"nonce"`
}

// ExactEVMPayload is the `payload` of an exact/EIP-3009 payment.
// Signature is 0x + 65 bytes (r‖s‖v, v = 27/28) for an EOA.
type ExactEVMPayload struct {
	Signature     string               `json:"signature"`
	Authorization EIP3009Authorization `json:"authorization"`
}

// PaymentPayloadV1 is the decoded X-PAYMENT header.
type PaymentPayloadV1 struct {
	X402Version int             `json:"x402Version"`
	Scheme      string          `json:"scheme"`
	Network     string          `json:"network"`
	Payload     json.RawMessage `json:"payload"`
}

// PaymentPayloadV2 is the decoded PAYMENT-SIGNATURE header.
type PaymentPayloadV2 struct {
	X402Version int                        `json:"x402Version"`
	Resource    *ResourceInfo              `json:"resource,omitempty"`
	Accepted    PaymentRequirementsV2      `json:"accepted"`
	Payload     json.RawMessage            `json:"payload"`
	Extensions  map[string]json.RawMessage `json:"extensions,omitempty"`
}

// Requirement is the version-neutral form of one way to pay, the form the
// verifier and buyer work with. It renders to either wire version.
type Requirement struct {
	Scheme string
	// Network is the canonical CAIP-2 id (eip155:84532), used by v2.
	Network string
	// NetworkV1 is the v1 network name (base-sepolia). When empty, v1
	// answers carry Network.
	NetworkV1         string
	Amount            string // atomic units, decimal
	Asset             string // token contract address
	PayTo             string
	MaxTimeoutSeconds int
	Extra             Extra
	Resource          ResourceInfo
	OutputSchema      json.RawMessage
	// Extensions are the v2 challenge's top-level extensions (bazaar)
	// this requirement is offered with; PaymentRequired sends those of
	// the first requirement. v1 has no extensions.
	Extensions map[string]json.RawMessage

	// echo keeps the JSON a v2 challenge carried for this requirement, so
	// a v2 payment can echo `accepted`, `resource` and `extensions` exactly
	// as the server sent them (servers match `accepted` by deep equality).
	echo *wireEcho
}

// Payment is a payment header decoded from a request, of either version.
type Payment struct {
	// Version is 1 or 2.
	Version int
	// Header is the header the payment arrived in.
	Header string
	// Scheme and Network as the buyer sent them (v2: from Accepted).
	Scheme  string
	Network string
	// V1 or V2 is set according to Version.
	V1 *PaymentPayloadV1
	V2 *PaymentPayloadV2
	// Exact is the parsed exact/EIP-3009 payload when Scheme is "exact".
	Exact *ExactEVMPayload
	// Raw is the decoded JSON of the header, forwarded verbatim to the
	// facilitator so fields this package does not know are not lost.
	Raw json.RawMessage
}

// VerifyRequest is the body of POST /verify and POST /settle. Payload and
// requirements are in the wire shape of X402Version.
type VerifyRequest struct {
	X402Version         int             `json:"x402Version"`
	PaymentPayload      json.RawMessage `json:"paymentPayload"`
	PaymentRequirements json.RawMessage `json:"paymentRequirements"`
}

// SettleRequest has the same shape as VerifyRequest.
type SettleRequest = VerifyRequest

// VerifyResponse is the answer of POST /verify.
type VerifyResponse struct {
	IsValid        bool   `json:"isValid"`
	InvalidReason  string `json:"invalidReason,omitempty"`
	InvalidMessage string `json:"invalidMessage,omitempty"`
	Payer          string `json:"payer,omitempty"`
}

// SettleResponse is the answer of POST /settle and, encoded, the
// PAYMENT-RESPONSE / X-PAYMENT-RESPONSE header. Transaction is "" on failure;
// Network is always set.
type SettleResponse struct {
	Success      bool   `json:"success"`
	ErrorReason  string `json:"errorReason,omitempty"`
	ErrorMessage string `json:"errorMessage,omitempty"`
	Payer        string `json:"payer,omitempty"`
	Transaction  string `json:"transaction"`
	Network      string `json:"network"`
}

// SupportedKind is one (version, scheme, network) a facilitator handles.
type SupportedKind struct {
	X402Version int             `json:"x402Version"`
	Scheme      string          `json:"scheme"`
	Network     string          `json:"network"`
	Extra       json.RawMessage `json:"extra,omitempty"`
}

// SupportedResponse is the answer of GET /supported.
type SupportedResponse struct {
	Kinds      []SupportedKind     `json:"kinds"`
	Extensions []string            `json:"extensions"`
	Signers    map[string][]string `json:"signers,omitempty"`
}

// MarshalJSON writes kinds, extensions and signers as arrays/objects even
// when empty: the v2 specification makes all three required, and clients
// that validate the answer refuse null.
func (s SupportedResponse) MarshalJSON() ([]byte, error) {
	type plain SupportedResponse
	out := plain(s)
	if out.Kinds == nil {
		out.Kinds = []SupportedKind{}
	}
	if out.Extensions == nil {
		out.Extensions = []string{}
	}
	if out.Signers == nil {
		out.Signers = map[string][]string{}
	}
	return json.Marshal(struct {
		plain
		Signers map[string][]string `json:"signers"`
	}{out, out.Signers})
}
