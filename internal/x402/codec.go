package x402

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
)

// EncodeHeader renders v as standard, padded base64 of compact JSON.
func EncodeHeader(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(b), nil
}

// DecodeHeaderJSON turns a header value into the JSON it carries. It
// accepts standard or URL-safe base64, padded or not, and bounds the size.
func DecodeHeaderJSON(header, value string) ([]byte, error) {
	v := strings.TrimSpace(value)
	if v == "" {
		return nil, &DecodeError{Header: header, Err: errors.New("empty value")}
	}
	if len(v) > MaxHeaderBytes {
		return nil, &DecodeError{Header: header, Err: ErrHeaderTooLarge}
	}
	var raw []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if raw, err = enc.DecodeString(v); err == nil {
			break
		}
	}
	if err != nil {
		return nil, &DecodeError{Header: header, Err: errors.New("not base64")}
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' || !json.Valid(raw) {
		return nil, &DecodeError{Header: header, Err: errors.New("not a JSON object after base64 decoding")}
	}
	return raw, nil
}

// DecodeHeader decodes a header value into v.
func DecodeHeader(header, value string, v any) error {
	raw, err := DecodeHeaderJSON(header, value)
	if err != nil {
		return err
	}
	return unmarshal(header, raw, v)
}

func unmarshal(header string, raw []byte, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return fieldErr(header, te.Field, "%s", TypeErrorText(te))
		}
		return &DecodeError{Header: header, Err: err}
	}
	return nil
}

// PaymentHeaderName is the request header a buyer of the version sends.
func PaymentHeaderName(version int) string {
	if version == Version1 {
		return HeaderXPayment
	}
	return HeaderPaymentSignature
}

// ResponseHeaderName is the settlement header for the version.
func ResponseHeaderName(version int) string {
	if version == Version1 {
		return HeaderXPaymentResponse
	}
	return HeaderPaymentResponse
}

// ExposedHeaders lists the headers browsers must be allowed to read
// (Access-Control-Expose-Headers).
const ExposedHeaders = "PAYMENT-REQUIRED, PAYMENT-RESPONSE, X-PAYMENT-RESPONSE"

// PaymentFromHeader reads the payment from request headers: PAYMENT-SIGNATURE
// (v2) first, then X-PAYMENT (v1). It returns ErrNoPayment when neither is
// present and a *DecodeError when the one present is malformed.
func PaymentFromHeader(h http.Header) (*Payment, error) {
	if v := h.Get(HeaderPaymentSignature); v != "" {
		return DecodePayment(HeaderPaymentSignature, v)
	}
	if v := h.Get(HeaderXPayment); v != "" {
		return DecodePayment(HeaderXPayment, v)
	}
	return nil, ErrNoPayment
}

// DecodePayment decodes a payment header value. The version comes from the
// JSON's x402Version; header only names the source in errors and in the
// result.
func DecodePayment(header, value string) (*Payment, error) {
	raw, err := DecodeHeaderJSON(header, value)
	if err != nil {
		return nil, err
	}
	return ParsePaymentJSON(header, raw)
}

// ParsePaymentJSON parses the JSON of a payment payload of either version.
func ParsePaymentJSON(header string, raw []byte) (*Payment, error) {
	var probe struct {
		X402Version *int `json:"x402Version"`
	}
	if err := unmarshal(header, raw, &probe); err != nil {
		return nil, err
	}
	if probe.X402Version == nil {
		return nil, fieldErr(header, "x402Version", "missing")
	}
	p := &Payment{Version: *probe.X402Version, Header: header, Raw: append(json.RawMessage(nil), raw...)}
	var payload json.RawMessage
	switch p.Version {
	case Version1:
		var v1 PaymentPayloadV1
		if err := unmarshal(header, raw, &v1); err != nil {
			return nil, err
		}
		p.V1, p.Scheme, p.Network, payload = &v1, v1.Scheme, v1.Network, v1.Payload
	case Version2:
		var v2 PaymentPayloadV2
		if err := unmarshal(header, raw, &v2); err != nil {
			return nil, err
		}
		p.V2, p.Scheme, p.Network, payload = &v2, v2.Accepted.Scheme, v2.Accepted.Network, v2.Payload
	default:
		return nil, fieldErr(header, "x402Version", "unsupported version %d (want 1 or 2)", p.Version)
	}
	if p.Scheme == "" {
		field := "scheme"
		if p.Version == Version2 {
			field = "accepted.scheme"
		}
		return nil, fieldErr(header, field, "missing")
	}
	if p.Network == "" {
		field := "network"
		if p.Version == Version2 {
			field = "accepted.network"
		}
		return nil, fieldErr(header, field, "missing")
	}
	if len(payload) == 0 || string(payload) == "null" {
		return nil, fieldErr(header, "payload", "missing")
	}
	if p.Scheme == SchemeExact {
		exact, err := parseExact(header, payload)
		if err != nil {
			return nil, err
		}
		p.Exact = exact
	}
	return p, nil
}

func parseExact(header string, payload json.RawMessage) (*ExactEVMPayload, error) {
	var e ExactEVMPayload
	if err := unmarshal(header, payload, &e); err != nil {
		if de, ok := err.(*DecodeError); ok && de.Field != "" {
			de.Field = "payload." + de.Field
		}
		return nil, err
	}
	if e.Signature == "" {
		return nil, fieldErr(header, "payload.signature", "missing")
	}
	a := e.Authorization
	for _, f := range []struct{ name, val string }{
		{"from", a.From}, {"to", a.To}, {"value", a.Value},
		{"validAfter", a.ValidAfter}, {"validBefore", a.ValidBefore}, {"nonce", a.Nonce},
	} {
		if f.val == "" {
			return nil, fieldErr(header, "payload.authorization."+f.name, "missing")
		}
	}
	return &e, nil
}

// Encode renders the payment as the header of its version: name and value.
func (p *Payment) Encode() (name, value string, err error) {
	if len(p.Raw) > 0 {
		return PaymentHeaderName(p.Version), base64.StdEncoding.EncodeToString(p.Raw), nil
	}
	var v any
	switch p.Version {
	case Version1:
		v = p.V1
	case Version2:
		v = p.V2
	default:
		return "", "", fmt.Errorf("payment has unsupported x402Version %d", p.Version)
	}
	value, err = EncodeHeader(v)
	return PaymentHeaderName(p.Version), value, err
}

// NewExactPayment builds a payment of the given version answering req with
// a signed EIP-3009 authorization.
func NewExactPayment(version int, req Requirement, exact ExactEVMPayload) (*Payment, error) {
	payload, err := json.Marshal(exact)
	if err != nil {
		return nil, err
	}
	p := &Payment{Version: version, Header: PaymentHeaderName(version), Scheme: req.Scheme, Exact: &exact}
	var raw []byte
	switch version {
	case Version1:
		v1 := req.V1()
		p.V1 = &PaymentPayloadV1{X402Version: Version1, Scheme: req.Scheme, Network: v1.Network, Payload: payload}
		p.Network = v1.Network
		raw, err = json.Marshal(p.V1)
	case Version2:
		var res *ResourceInfo
		if req.Resource.URL != "" {
			r := req.Resource
			res = &r
		}
		p.V2 = &PaymentPayloadV2{X402Version: Version2, Resource: res, Accepted: req.V2(), Payload: payload}
		p.Network = req.Network
		if e := req.echoFor(); e != nil && len(e.accepted) > 0 {
			// Echo what the server sent, byte for byte: servers find the
			// requirement a payment answers by comparing `accepted`.
			w := paymentPayloadV2Wire{X402Version: Version2, Resource: e.resource, Accepted: e.accepted, Payload: payload, Extensions: e.extensions}
			if w.Resource == nil && res != nil {
				w.Resource, _ = json.Marshal(res)
			}
			raw, err = json.Marshal(w)
			if err == nil && len(w.Extensions) > 0 && base64.StdEncoding.EncodedLen(len(raw)) > MaxHeaderBytes {
				// Echoed extensions would make the header larger than
				// servers accept (ours: MaxHeaderBytes; Node: 16 KiB for
				// all headers): send the payment without them.
				w.Extensions = nil
				raw, err = json.Marshal(w)
			} else if len(w.Extensions) > 0 {
				_ = json.Unmarshal(w.Extensions, &p.V2.Extensions)
			}
		} else {
			raw, err = json.Marshal(p.V2)
		}
	default:
		return nil, fmt.Errorf("unsupported x402Version %d", version)
	}
	if err != nil {
		return nil, err
	}
	p.Raw = raw
	return p, nil
}

// V1 renders the requirement in the v1 wire shape.
func (r Requirement) V1() PaymentRequirementsV1 {
	network := r.NetworkV1
	if network == "" {
		network = r.Network
	}
	mime := r.Resource.MimeType
	return PaymentRequirementsV1{
		Scheme: r.Scheme, Network: network, MaxAmountRequired: r.Amount,
		Resource: r.Resource.URL, Description: r.Resource.Description, MimeType: mime,
		PayTo: r.PayTo, MaxTimeoutSeconds: r.MaxTimeoutSeconds, Asset: r.Asset,
		OutputSchema: r.OutputSchema, Extra: r.extraPtr(),
	}
}

// V2 renders the requirement in the v2 wire shape.
func (r Requirement) V2() PaymentRequirementsV2 {
	return PaymentRequirementsV2{
		Scheme: r.Scheme, Network: r.Network, Amount: r.Amount, Asset: r.Asset,
		PayTo: r.PayTo, MaxTimeoutSeconds: r.MaxTimeoutSeconds, Extra: r.extraPtr(),
	}
}

func (r Requirement) extraPtr() *Extra {
	if r.Extra.Name == "" && r.Extra.Version == "" && r.Extra.AssetTransferMethod == "" && len(r.Extra.Other) == 0 {
		return nil
	}
	e := r.Extra
	return &e
}

// RequirementFromV1 converts a v1 requirement. Network keeps the v1 name in
// both Network and NetworkV1; callers normalize it with the chain registry.
func RequirementFromV1(v PaymentRequirementsV1) Requirement {
	r := Requirement{
		Scheme: v.Scheme, Network: v.Network, NetworkV1: v.Network, Amount: v.MaxAmountRequired,
		Asset: v.Asset, PayTo: v.PayTo, MaxTimeoutSeconds: v.MaxTimeoutSeconds,
		Resource:     ResourceInfo{URL: v.Resource, Description: v.Description, MimeType: v.MimeType},
		OutputSchema: v.OutputSchema,
	}
	if s := bytes.TrimSpace(r.OutputSchema); len(s) == 0 || string(s) == "null" {
		// The v1 specification's own example sends "outputSchema": null;
		// treat it as absent so it is never echoed back as null.
		r.OutputSchema = nil
	}
	if v.Extra != nil {
		r.Extra = *v.Extra
	}
	return r
}

// RequirementFromV2 converts a v2 requirement with the challenge's resource.
func RequirementFromV2(v PaymentRequirementsV2, res *ResourceInfo) Requirement {
	r := Requirement{
		Scheme: v.Scheme, Network: v.Network, Amount: v.Amount, Asset: v.Asset,
		PayTo: v.PayTo, MaxTimeoutSeconds: v.MaxTimeoutSeconds,
	}
	if v.Extra != nil {
		r.Extra = *v.Extra
	}
	if res != nil {
		r.Resource = *res
	}
	return r
}

// MarshalJSON writes name, version, assetTransferMethod and any other keys.
func (e Extra) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, len(e.Other)+3)
	for k, v := range e.Other {
		m[k] = v
	}
	if e.Name != "" {
		m["name"] = e.Name
	}
	if e.Version != "" {
		m["version"] = e.Version
	}
	if e.AssetTransferMethod != "" {
		m["assetTransferMethod"] = e.AssetTransferMethod
	}
	return json.Marshal(m)
}

// UnmarshalJSON reads the known keys and keeps the rest.
func (e *Extra) UnmarshalJSON(b []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	*e = Extra{}
	take := func(key string, dst *string) error {
		raw, ok := m[key]
		if !ok {
			return nil
		}
		delete(m, key)
		if string(raw) == "null" {
			return nil
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			// Field is the key alone: the decoder puts the path to
			// extra in front.
			return &json.UnmarshalTypeError{Value: jsonValueKind(raw), Type: reflect.TypeOf(""), Field: key}
		}
		return nil
	}
	for key, dst := range map[string]*string{"name": &e.Name, "version": &e.Version, "assetTransferMethod": &e.AssetTransferMethod} {
		if err := take(key, dst); err != nil {
			return err
		}
	}
	if len(m) > 0 {
		e.Other = m
	}
	return nil
}

// PaymentRequired builds the 402 challenge for the version: the JSON body
// and, for v2, the PAYMENT-REQUIRED header value (the same JSON, encoded).
// For v1 header is "".
func PaymentRequired(version int, errMsg string, reqs []Requirement) (body []byte, header string, err error) {
	switch version {
	case Version1:
		pr := PaymentRequiredV1{X402Version: Version1, Error: errMsg, Accepts: make([]PaymentRequirementsV1, 0, len(reqs))}
		for _, r := range reqs {
			pr.Accepts = append(pr.Accepts, r.V1())
		}
		body, err = json.Marshal(pr)
		return body, "", err
	case Version2:
		pr := PaymentRequiredV2{X402Version: Version2, Error: errMsg, Accepts: make([]PaymentRequirementsV2, 0, len(reqs))}
		if len(reqs) > 0 && reqs[0].Resource.URL != "" {
			res := reqs[0].Resource
			pr.Resource = &res
		}
		if len(reqs) > 0 && len(reqs[0].Extensions) > 0 {
			pr.Extensions = reqs[0].Extensions
		}
		for _, r := range reqs {
			pr.Accepts = append(pr.Accepts, r.V2())
		}
		body, err = json.Marshal(pr)
		if err != nil {
			return nil, "", err
		}
		return body, base64.StdEncoding.EncodeToString(body), nil
	}
	return nil, "", fmt.Errorf("unsupported x402Version %d", version)
}

// Challenge is a parsed 402 answer.
type Challenge struct {
	Version      int
	Error        string
	Requirements []Requirement
	Resource     *ResourceInfo
	Extensions   map[string]json.RawMessage
}

// ParseChallenge reads a 402 answer the way real buyers do: the
// PAYMENT-REQUIRED header first, then the JSON body (either version).
func ParseChallenge(h http.Header, body []byte) (*Challenge, error) {
	if v := h.Get(HeaderPaymentRequired); v != "" {
		raw, err := DecodeHeaderJSON(HeaderPaymentRequired, v)
		if err == nil {
			if c, perr := parseChallengeJSON(HeaderPaymentRequired, raw); perr == nil {
				return c, nil
			}
		}
		if len(bytes.TrimSpace(body)) == 0 {
			if err != nil {
				return nil, err
			}
			_, perr := parseChallengeJSON(HeaderPaymentRequired, raw)
			return nil, perr
		}
	}
	b := bytes.TrimSpace(body)
	if len(b) == 0 {
		return nil, &DecodeError{Err: errors.New("402 answer carries neither a PAYMENT-REQUIRED header nor a JSON body")}
	}
	if len(b) > 4*MaxHeaderBytes {
		return nil, &DecodeError{Err: fmt.Errorf("402 body larger than %d bytes", 4*MaxHeaderBytes)}
	}
	if !json.Valid(b) {
		return nil, &DecodeError{Err: errors.New("402 body is not JSON")}
	}
	return parseChallengeJSON("", b)
}

func parseChallengeJSON(header string, raw []byte) (*Challenge, error) {
	var probe struct {
		X402Version *int `json:"x402Version"`
	}
	if err := unmarshal(header, raw, &probe); err != nil {
		return nil, err
	}
	version := 0
	switch {
	case probe.X402Version != nil:
		version = *probe.X402Version
	case header == HeaderPaymentRequired:
		// PAYMENT-REQUIRED exists only in v2; some servers leave the
		// version out of it. A v1-shaped entry then has no `amount` and
		// is refused by whoever reads it.
		version = Version2
	}
	c := &Challenge{Version: version}
	switch version {
	case Version1:
		var pr PaymentRequiredV1
		if err := unmarshal(header, raw, &pr); err != nil {
			return nil, err
		}
		c.Error = pr.Error
		for _, a := range pr.Accepts {
			c.Requirements = append(c.Requirements, RequirementFromV1(a))
		}
	case Version2:
		var pr PaymentRequiredV2
		if err := unmarshal(header, raw, &pr); err != nil {
			return nil, err
		}
		c.Error, c.Resource, c.Extensions = pr.Error, pr.Resource, pr.Extensions
		var verbatim struct {
			Resource   json.RawMessage   `json:"resource"`
			Accepts    []json.RawMessage `json:"accepts"`
			Extensions json.RawMessage   `json:"extensions"`
		}
		if json.Unmarshal(raw, &verbatim) != nil || len(verbatim.Accepts) != len(pr.Accepts) {
			verbatim.Accepts = nil
		}
		for i, a := range pr.Accepts {
			r := RequirementFromV2(a, pr.Resource)
			if verbatim.Accepts != nil {
				r.echo = newWireEcho(r, verbatim.Accepts[i], verbatim.Resource, verbatim.Extensions)
			}
			c.Requirements = append(c.Requirements, r)
		}
	default:
		return nil, fieldErr(header, "x402Version", "unsupported version %d (want 1 or 2)", version)
	}
	if len(c.Requirements) == 0 {
		return nil, fieldErr(header, "accepts", "empty: the server offers no way to pay")
	}
	return c, nil
}

// NewVerifyRequest builds the facilitator request for a payment against the
// requirement it answers, in the payment's version.
func NewVerifyRequest(p *Payment, req Requirement) (VerifyRequest, error) {
	raw := p.Raw
	if len(raw) == 0 {
		_, v, err := p.Encode()
		if err != nil {
			return VerifyRequest{}, err
		}
		raw, _ = base64.StdEncoding.DecodeString(v)
	}
	var reqJSON []byte
	var err error
	if p.Version == Version1 {
		reqJSON, err = json.Marshal(req.V1())
	} else {
		reqJSON, err = json.Marshal(req.V2())
	}
	if err != nil {
		return VerifyRequest{}, err
	}
	return VerifyRequest{X402Version: p.Version, PaymentPayload: raw, PaymentRequirements: reqJSON}, nil
}

// ParseVerifyRequest decodes a facilitator request into the payment and the
// requirement (network as on the wire: v1 name or v2 CAIP-2).
//
// The top-level x402Version may be absent (the v2 specification's /verify
// example has none, and some clients follow it); the version is then the
// one paymentPayload declares. When both are present they must agree.
func ParseVerifyRequest(vr VerifyRequest) (*Payment, Requirement, error) {
	if vr.X402Version == 0 && len(vr.PaymentPayload) > 0 {
		var probe struct {
			X402Version int `json:"x402Version"`
		}
		if json.Unmarshal(vr.PaymentPayload, &probe) == nil {
			vr.X402Version = probe.X402Version
		}
	}
	if vr.X402Version != Version1 && vr.X402Version != Version2 {
		return nil, Requirement{}, fieldErr("", "x402Version", "unsupported version %d (want 1 or 2)", vr.X402Version)
	}
	if len(vr.PaymentPayload) == 0 {
		return nil, Requirement{}, fieldErr("", "paymentPayload", "missing")
	}
	if len(vr.PaymentRequirements) == 0 {
		return nil, Requirement{}, fieldErr("", "paymentRequirements", "missing")
	}
	p, err := ParsePaymentJSON("paymentPayload", vr.PaymentPayload)
	if err != nil {
		return nil, Requirement{}, err
	}
	if p.Version != vr.X402Version {
		return nil, Requirement{}, fieldErr("paymentPayload", "x402Version", "is %d but the request says %d", p.Version, vr.X402Version)
	}
	var req Requirement
	if vr.X402Version == Version1 {
		var v1 PaymentRequirementsV1
		if err := unmarshal("paymentRequirements", vr.PaymentRequirements, &v1); err != nil {
			return nil, Requirement{}, err
		}
		req = RequirementFromV1(v1)
	} else {
		var v2 PaymentRequirementsV2
		if err := unmarshal("paymentRequirements", vr.PaymentRequirements, &v2); err != nil {
			return nil, Requirement{}, err
		}
		req = RequirementFromV2(v2, p.V2.Resource)
	}
	return p, req, nil
}

// EncodeSettleResponse renders the PAYMENT-RESPONSE / X-PAYMENT-RESPONSE value.
func EncodeSettleResponse(s SettleResponse) (string, error) { return EncodeHeader(s) }

// DecodeSettleResponse parses a PAYMENT-RESPONSE / X-PAYMENT-RESPONSE value.
func DecodeSettleResponse(header, value string) (*SettleResponse, error) {
	var s SettleResponse
	if err := DecodeHeader(header, value, &s); err != nil {
		return nil, err
	}
	return &s, nil
}
