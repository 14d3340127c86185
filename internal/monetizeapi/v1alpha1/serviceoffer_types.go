package v1alpha1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// OfferType says what kind of API an offer sells.
// +kubebuilder:validation:Enum=http;inference
type OfferType string

// Offer types.
const (
	// OfferTypeHTTP is any HTTP API, priced per request.
	OfferTypeHTTP OfferType = "http"
	// OfferTypeInference is a model-serving API (OpenAI-compatible), which
	// may also carry a per-million-token or per-hour price.
	OfferTypeInference OfferType = "inference"
)

// SettleMode is when the verifier settles a paid request.
// +kubebuilder:validation:Enum=after-response;on-headers
type SettleMode string

// Settlement modes.
const (
	// SettleAfterResponse: read the whole upstream answer, settle when its
	// status is below 400, then send it.
	SettleAfterResponse SettleMode = "after-response"
	// SettleOnHeaders: settle when the upstream's status and headers
	// arrive with a status below 400, then stream the body as it comes
	// (event streams, streamed chat completions).
	SettleOnHeaders SettleMode = "on-headers"
)

// PaymentScheme is the x402 payment scheme. Only "exact" exists today.
// +kubebuilder:validation:Enum=exact
type PaymentScheme string

// SchemeExact is the x402 "exact" scheme (an EIP-3009 transfer of the exact price).
const SchemeExact PaymentScheme = "exact"

// TransferMethod is how the asset moves on chain.
// +kubebuilder:validation:Enum=eip3009;permit2
type TransferMethod string

// Transfer methods.
const (
	TransferEIP3009 TransferMethod = "eip3009"
	TransferPermit2 TransferMethod = "permit2"
)

// Annotations, finalizers, condition types and reasons of ServiceOffer.
const (
	// PausedAnnotation set to "true" withdraws an offer's route without
	// deleting the offer; removing it (or any other value) resumes.
	PausedAnnotation = "obol.org/paused"
	// RouteCleanupFinalizer keeps an offer until its published route is gone.
	RouteCleanupFinalizer = "obol.org/route-cleanup"

	// ConditionUpstreamHealthy: the upstream Service exists and has the port.
	ConditionUpstreamHealthy = "UpstreamHealthy"
	// ConditionPaymentGateReady: the payment terms are valid and the offer is
	// not paused, so the verifier can charge for it.
	ConditionPaymentGateReady = "PaymentGateReady"
	// ConditionRoutePublished: the HTTPRoute sending the path to the verifier exists.
	ConditionRoutePublished = "RoutePublished"
	// ConditionReady: all of the above; buyers can reach and pay the offer.
	ConditionReady = "Ready"

	ReasonPaused              = "Paused"
	ReasonGatewayAPIMissing   = "GatewayAPIMissing"
	ReasonInvalidPayment      = "InvalidPayment"
	ReasonPaymentValid        = "PaymentValid"
	ReasonUpstreamNotFound    = "UpstreamNotFound"
	ReasonUpstreamPortMissing = "UpstreamPortMissing"
	ReasonUpstreamFound       = "UpstreamFound"
	ReasonRouteError          = "RouteError"
	ReasonRoutePublished      = "RoutePublished"
	ReasonNotReady            = "NotReady"
	ReasonReady               = "Ready"
)

// OfferModel names the model an inference offer serves.
type OfferModel struct {
	// Name of the model as buyers request it, e.g. "qwen3:8b".
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Runtime serving the model, e.g. "ollama", "vllm", "litellm".
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Runtime string `json:"runtime,omitempty"`
}

// OfferUpstream is the in-cluster Service that answers paid requests.
type OfferUpstream struct {
	// Service name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Service string `json:"service"`
	// Namespace of the Service; empty means the offer's namespace.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespace string `json:"namespace,omitempty"`
	// Port of the Service (its port, not the target port).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port"`
	// HealthPath is an HTTP path on the upstream that answers 2xx when it is
	// healthy, e.g. "/healthz".
	// +optional
	// +kubebuilder:validation:Pattern=`^/`
	// +kubebuilder:validation:MaxLength=1024
	HealthPath string `json:"healthPath,omitempty"`
}

// OfferAsset is the token buyers pay in. `obol sell create` fills it from
// the chain registry.
type OfferAsset struct {
	// Address of the token contract (0x + 40 hex digits).
	// +kubebuilder:validation:Pattern=`^0x[0-9a-fA-F]{40}$`
	Address string `json:"address"`
	// Symbol, e.g. "USDC".
	// +optional
	// +kubebuilder:validation:MaxLength=32
	Symbol string `json:"symbol,omitempty"`
	// Decimals of the token (6 for USDC); prices are converted to atomic
	// units with it.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=36
	Decimals int32 `json:"decimals"`
	// TransferMethod: eip3009 (transferWithAuthorization) or permit2.
	// +optional
	TransferMethod TransferMethod `json:"transferMethod,omitempty"`
	// EIP712Name is the token's EIP-712 domain name ("USDC", "USD Coin").
	// +optional
	// +kubebuilder:validation:MaxLength=128
	EIP712Name string `json:"eip712Name,omitempty"`
	// EIP712Version is the token's EIP-712 domain version ("2" for USDC).
	// +optional
	// +kubebuilder:validation:MaxLength=32
	EIP712Version string `json:"eip712Version,omitempty"`
}

// OfferPrice holds decimal prices in whole tokens ("0.001" USDC is 1000
// atomic units). At least one is set; perRequest is what the verifier charges.
// +kubebuilder:validation:XValidation:rule="has(self.perRequest) || has(self.perMTok) || has(self.perHour)",message="set at least one of perRequest, perMTok, perHour"
type OfferPrice struct {
	// PerRequest is the price of one request.
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9]+(\.[0-9]+)?$`
	// +kubebuilder:validation:MaxLength=80
	PerRequest string `json:"perRequest,omitempty"`
	// PerMTok is the price of one million tokens (inference offers).
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9]+(\.[0-9]+)?$`
	// +kubebuilder:validation:MaxLength=80
	PerMTok string `json:"perMTok,omitempty"`
	// PerHour is the price of one hour of access.
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9]+(\.[0-9]+)?$`
	// +kubebuilder:validation:MaxLength=80
	PerHour string `json:"perHour,omitempty"`
}

// OfferPayment are the x402 terms of an offer.
type OfferPayment struct {
	// Scheme is the x402 scheme; only "exact".
	// +optional
	// +kubebuilder:default=exact
	Scheme PaymentScheme `json:"scheme,omitempty"`
	// Network is the chain, stored as its CAIP-2 id (eip155:84532).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	Network string `json:"network"`
	// PayTo is the seller's address that receives payments.
	// +kubebuilder:validation:Pattern=`^0x[0-9a-fA-F]{40}$`
	PayTo string `json:"payTo"`
	// MaxTimeoutSeconds is how long a signed payment stays acceptable;
	// unset means the verifier's default.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=86400
	MaxTimeoutSeconds int32 `json:"maxTimeoutSeconds,omitempty"`
	// Asset is the token; unset means the chain's USDC.
	// +optional
	Asset *OfferAsset `json:"asset,omitempty"`
	// Price of the offer.
	Price OfferPrice `json:"price"`
}

// HTTPMethod is the method buyers call an offer with.
// +kubebuilder:validation:Enum=GET;HEAD;DELETE;POST;PUT;PATCH
type HTTPMethod string

// OfferDiscovery is how an offer presents itself to buyers and indexers:
// its entry in the verifier's /openapi.json and /.well-known/x402, and the
// x402 "bazaar" extension of its 402 answer (sent when a schema or an
// example is declared).
type OfferDiscovery struct {
	// Public lists the offer in the verifier's discovery documents; false
	// keeps it out of them (it still answers 402 to whoever calls it).
	// Unset means true.
	// +optional
	Public *bool `json:"public,omitempty"`
	// Method buyers call the offer with. Unset means GET (POST for an
	// inference offer).
	// +optional
	Method HTTPMethod `json:"method,omitempty"`
	// Category groups the offer in catalogs, e.g. "weather".
	// +optional
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9][ -~]*$`
	Category string `json:"category,omitempty"`
	// InputSchema is a JSON Schema (draft 2020-12, no $ref) of the
	// request: its query parameters for GET, HEAD and DELETE, its JSON
	// body for the other methods.
	// +optional
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Type=object
	InputSchema *apiextensionsv1.JSON `json:"inputSchema,omitempty"`
	// OutputSchema is a JSON Schema (draft 2020-12, no $ref) of a
	// successful answer.
	// +optional
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Type=object
	OutputSchema *apiextensionsv1.JSON `json:"outputSchema,omitempty"`
	// OutputExample is an example of a successful answer (any JSON value).
	// +optional
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	OutputExample *apiextensionsv1.JSON `json:"outputExample,omitempty"`
}

// ServiceOfferSpec is what a seller publishes.
type ServiceOfferSpec struct {
	// Type is http (default) or inference.
	// +optional
	// +kubebuilder:default=http
	Type OfferType `json:"type,omitempty"`
	// Model served, for inference offers.
	// +optional
	Model *OfferModel `json:"model,omitempty"`
	// Upstream Service that answers paid requests.
	Upstream OfferUpstream `json:"upstream"`
	// Payment terms.
	Payment OfferPayment `json:"payment"`
	// Path buyers call, routed to the verifier; unset means
	// /services/<name>. Requests under it (path/...) belong to the offer.
	// +optional
	// +kubebuilder:validation:Pattern=`^/[^?#\s]*$`
	// +kubebuilder:validation:MaxLength=1024
	Path string `json:"path,omitempty"`
	// Description shown to buyers in the 402 challenge.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Description string `json:"description,omitempty"`
	// Settle is when the verifier settles a paid request: after-response
	// (the whole answer is read first; the buyer never pays for an answer
	// that failed midway) or on-headers (settled when the upstream's status
	// and headers arrive below 400, then streamed). Unset: on-headers for
	// inference offers, after-response for the others.
	// +optional
	Settle SettleMode `json:"settle,omitempty"`
	// Discovery describes the offer to buyers and indexers (x402scan,
	// x402 bazaar); see docs/discovery.md.
	// +optional
	Discovery *OfferDiscovery `json:"discovery,omitempty"`
}

// ServiceOfferStatus is what the controller observed.
type ServiceOfferStatus struct {
	// Conditions: UpstreamHealthy, PaymentGateReady, RoutePublished, Ready.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Endpoint is the path (or URL) buyers call.
	// +optional
	Endpoint string `json:"endpoint,omitempty"`
	// ObservedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// ServiceOffer is an API a seller sells through the x402 verifier.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=so,categories=obol
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Model",type=string,JSONPath=`.spec.model.name`
// +kubebuilder:printcolumn:name="Price",type=string,JSONPath=`.spec.payment.price.perRequest`
// +kubebuilder:printcolumn:name="Network",type=string,JSONPath=`.spec.payment.network`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.status.endpoint`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ServiceOffer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   ServiceOfferSpec   `json:"spec"`
	Status ServiceOfferStatus `json:"status,omitempty"`
}

// ServiceOfferList is a list of ServiceOffers.
//
// +kubebuilder:object:root=true
type ServiceOfferList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ServiceOffer `json:"items"`
}

// IsPaused reports whether the offer carries obol.org/paused: "true".
func (o *ServiceOffer) IsPaused() bool {
	return o.Annotations[PausedAnnotation] == "true"
}

// EffectiveSettle is spec.settle, or the type's default when unset:
// on-headers for inference, after-response otherwise.
func (o *ServiceOffer) EffectiveSettle() SettleMode {
	switch {
	case o.Spec.Settle != "":
		return o.Spec.Settle
	case o.Spec.Type == OfferTypeInference:
		return SettleOnHeaders
	}
	return SettleAfterResponse
}

// EffectivePath is spec.path, or /services/<name> when unset.
func (o *ServiceOffer) EffectivePath() string {
	if o.Spec.Path != "" {
		return o.Spec.Path
	}
	return DefaultPath(o.Name)
}

// DefaultPath is the path of an offer named name that sets none.
func DefaultPath(name string) string { return "/services/" + name }

// IsPublic reports whether the offer is listed in discovery documents
// (spec.discovery.public unset or true).
func (o *ServiceOffer) IsPublic() bool {
	d := o.Spec.Discovery
	return d == nil || d.Public == nil || *d.Public
}

// UpstreamNamespace is spec.upstream.namespace, or the offer's namespace.
func (o *ServiceOffer) UpstreamNamespace() string {
	if o.Spec.Upstream.Namespace != "" {
		return o.Spec.Upstream.Namespace
	}
	return o.Namespace
}
