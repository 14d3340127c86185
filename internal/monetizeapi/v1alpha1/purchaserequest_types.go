package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PreSignedAuth is one pre-signed EIP-3009 TransferWithAuthorization the
// buyer proxy may spend, or a whole x402 payment payload. Amounts and times
// are decimal strings (uint256 does not fit a JSON number).
type PreSignedAuth struct {
	// Signature over the EIP-712 digest (0x + 130 hex digits, v = 27/28).
	// +optional
	// +kubebuilder:validation:Pattern=`^0x[0-9a-fA-F]{130}$`
	Signature string `json:"signature,omitempty"`
	// From is the payer's address.
	// +optional
	// +kubebuilder:validation:Pattern=`^0x[0-9a-fA-F]{40}$`
	From string `json:"from,omitempty"`
	// To is the payee's address (the offer's payTo).
	// +optional
	// +kubebuilder:validation:Pattern=`^0x[0-9a-fA-F]{40}$`
	To string `json:"to,omitempty"`
	// Value in atomic units of the asset.
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9]+$`
	// +kubebuilder:validation:MaxLength=78
	Value string `json:"value,omitempty"`
	// ValidAfter, unix seconds.
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9]+$`
	// +kubebuilder:validation:MaxLength=78
	ValidAfter string `json:"validAfter,omitempty"`
	// ValidBefore, unix seconds.
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9]+$`
	// +kubebuilder:validation:MaxLength=78
	ValidBefore string `json:"validBefore,omitempty"`
	// Nonce, 32 bytes (0x + 64 hex digits).
	// +optional
	// +kubebuilder:validation:Pattern=`^0x[0-9a-fA-F]{64}$`
	Nonce string `json:"nonce,omitempty"`
	// Payload is a whole x402 payment payload as sent in the payment header
	// (base64 of its JSON), used instead of the fields above.
	// +optional
	// +kubebuilder:validation:MaxLength=16384
	Payload string `json:"payload,omitempty"`
}

// PurchasePayment are the seller's terms the authorizations were signed for.
type PurchasePayment struct {
	// Network, CAIP-2 id (eip155:84532).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	Network string `json:"network"`
	// PayTo is the seller's address.
	// +kubebuilder:validation:Pattern=`^0x[0-9a-fA-F]{40}$`
	PayTo string `json:"payTo"`
	// Price of one request in atomic units of the asset (the 402's amount).
	// +kubebuilder:validation:Pattern=`^[0-9]+$`
	// +kubebuilder:validation:MaxLength=78
	Price string `json:"price"`
	// Asset is the token contract address.
	// +kubebuilder:validation:Pattern=`^0x[0-9a-fA-F]{40}$`
	Asset string `json:"asset"`
	// AssetSymbol, e.g. "USDC".
	// +optional
	// +kubebuilder:validation:MaxLength=32
	AssetSymbol string `json:"assetSymbol,omitempty"`
	// AssetDecimals of the token (6 for USDC).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=36
	AssetDecimals int32 `json:"assetDecimals,omitempty"`
	// EIP712Name is the token's EIP-712 domain name.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	EIP712Name string `json:"eip712Name,omitempty"`
	// EIP712Version is the token's EIP-712 domain version.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	EIP712Version string `json:"eip712Version,omitempty"`
}

// PurchaseAutoRefill lets the buyer sign more authorizations when few
// remain, under hard caps.
type PurchaseAutoRefill struct {
	// Enabled turns refilling on.
	// +optional
	Enabled bool `json:"enabled,omitempty"`
	// Threshold: refill when fewer than this many authorizations remain.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=2500
	Threshold int `json:"threshold,omitempty"`
	// Count of authorizations signed per refill.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=2500
	Count int `json:"count,omitempty"`
	// MaxTotal caps the authorizations ever signed for this request
	// (initial count included); 0 means no cap beyond maxSpendPerDay.
	// +optional
	// +kubebuilder:validation:Minimum=0
	MaxTotal int `json:"maxTotal,omitempty"`
	// MaxSpendPerDay caps the value of the authorizations the buyer proxy
	// sends for this request in any rolling 24 hours (not per calendar or
	// UTC day), in atomic units of the asset (a decimal integer string).
	// A call that would exceed it is answered 429 and nothing is spent.
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9]+$`
	// +kubebuilder:validation:MaxLength=78
	MaxSpendPerDay string `json:"maxSpendPerDay,omitempty"`
}

// PurchaseRequestSpec is what a buyer pre-authorizes.
type PurchaseRequestSpec struct {
	// Endpoint is the seller's URL the authorizations pay for.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	Endpoint string `json:"endpoint"`
	// Model the buyer proxy maps to this endpoint (inference purchases).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Model string `json:"model,omitempty"`
	// Count of authorizations to sign up front.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=2500
	Count int `json:"count"`
	// PreSignedAuths are the signed authorizations the buyer proxy spends.
	// +optional
	// +kubebuilder:validation:MaxItems=2500
	// +listType=atomic
	PreSignedAuths []PreSignedAuth `json:"preSignedAuths,omitempty"`
	// Payment terms the authorizations were signed for.
	Payment PurchasePayment `json:"payment"`
	// AutoRefill signs more authorizations under caps.
	// +optional
	AutoRefill *PurchaseAutoRefill `json:"autoRefill,omitempty"`
}

// PurchaseRequestStatus is what the buyer side observed.
type PurchaseRequestStatus struct {
	// Conditions of the purchase (e.g. Ready).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Remaining authorizations not yet spent.
	// +optional
	Remaining int `json:"remaining,omitempty"`
	// Spent authorizations.
	// +optional
	Spent int `json:"spent,omitempty"`
	// TotalSigned authorizations ever signed (checked against autoRefill.maxTotal).
	// +optional
	TotalSigned int `json:"totalSigned,omitempty"`
	// TotalSpent value, atomic units of the asset.
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9]+$`
	TotalSpent string `json:"totalSpent,omitempty"`
	// SignerAddress is the buyer's wallet address.
	// +optional
	SignerAddress string `json:"signerAddress,omitempty"`
	// WalletBalance of the signer, atomic units of the asset.
	// +optional
	WalletBalance string `json:"walletBalance,omitempty"`
	// ValidUntil is when the last pre-signed authorization expires: after
	// it the proxy pays nothing until `obol buy refill` signs more.
	// +optional
	ValidUntil *metav1.Time `json:"validUntil,omitempty"`
	// NextExpiry is when the earliest authorization not yet expired
	// expires (a seller's maxTimeoutSeconds bounds each one's validity).
	// +optional
	NextExpiry *metav1.Time `json:"nextExpiry,omitempty"`
	// ProbedAt is when the endpoint's price was last probed.
	// +optional
	ProbedAt *metav1.Time `json:"probedAt,omitempty"`
	// ProbedPrice is the price the endpoint's 402 asked, atomic units.
	// +optional
	ProbedPrice string `json:"probedPrice,omitempty"`
	// ObservedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// PurchaseRequest pre-authorizes payments the buyer proxy makes on behalf
// of in-cluster callers.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=pr,categories=obol
// +kubebuilder:printcolumn:name="Endpoint",type=string,JSONPath=`.spec.endpoint`
// +kubebuilder:printcolumn:name="Model",type=string,JSONPath=`.spec.model`
// +kubebuilder:printcolumn:name="Remaining",type=integer,JSONPath=`.status.remaining`
// +kubebuilder:printcolumn:name="Spent",type=integer,JSONPath=`.status.spent`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type PurchaseRequest struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   PurchaseRequestSpec   `json:"spec"`
	Status PurchaseRequestStatus `json:"status,omitempty"`
}

// PurchaseRequestList is a list of PurchaseRequests.
//
// +kubebuilder:object:root=true
type PurchaseRequestList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PurchaseRequest `json:"items"`
}
