package x402

import (
	"bytes"
	"encoding/json"
	"reflect"
)

// wireEcho is what a v2 challenge said about one of its requirements, in
// the server's own JSON. canon is our rendering of the requirement as it
// was decoded: the verbatim JSON is echoed only while the requirement still
// renders to canon, so a requirement changed after parsing is never paired
// with stale JSON.
type wireEcho struct {
	accepted   json.RawMessage
	resource   json.RawMessage
	extensions json.RawMessage
	canon      []byte
}

// newWireEcho records the verbatim JSON of a parsed v2 requirement.
func newWireEcho(r Requirement, accepted, resource, extensions json.RawMessage) *wireEcho {
	canon, err := r.echoCanon()
	if err != nil {
		return nil
	}
	return &wireEcho{accepted: compact(accepted), resource: compact(resource), extensions: compact(extensions), canon: canon}
}

// echoCanon is the requirement's v2 rendering together with its resource,
// the state the verbatim JSON stands for.
func (r Requirement) echoCanon() ([]byte, error) {
	return json.Marshal(struct {
		A PaymentRequirementsV2 `json:"a"`
		R ResourceInfo          `json:"r"`
	}{r.V2(), r.Resource})
}

// echoFor returns the verbatim JSON when it still describes r.
func (r Requirement) echoFor() *wireEcho {
	if r.echo == nil {
		return nil
	}
	canon, err := r.echoCanon()
	if err != nil || !bytes.Equal(canon, r.echo.canon) {
		return nil
	}
	return r.echo
}

func compact(raw json.RawMessage) json.RawMessage {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return nil
	}
	return b.Bytes()
}

// paymentPayloadV2Wire is a v2 payment payload whose parts are already JSON.
type paymentPayloadV2Wire struct {
	X402Version int             `json:"x402Version"`
	Resource    json.RawMessage `json:"resource,omitempty"`
	Accepted    json.RawMessage `json:"accepted"`
	Payload     json.RawMessage `json:"payload"`
	Extensions  json.RawMessage `json:"extensions,omitempty"`
}

// UnmarshalJSON reads an authorization. The specification sends every
// number as a decimal string; validAfter and validBefore are also accepted
// as JSON integers (some clients send Unix times as numbers), kept as their
// decimal digits. value stays strictly a string: it is the money.
func (a *EIP3009Authorization) UnmarshalJSON(b []byte) error {
	var w struct {
		From        string    `json:"from"`
		To          string    `json:"to"`
		Value       string    `json:"value"`
		ValidAfter  unixValue `json:"validAfter"`
		ValidBefore unixValue `json:"validBefore"`
		Nonce       string    `json:"nonce"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*a = EIP3009Authorization{From: w.From, To: w.To, Value: w.Value,
		ValidAfter: string(w.ValidAfter), ValidBefore: string(w.ValidBefore), Nonce: w.Nonce}
	return nil
}

// unixValue is a Unix time sent as a decimal string or as a JSON integer
// literal (digits only: no sign, fraction or exponent).
type unixValue string

func (u *unixValue) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case string(b) == "null":
		return nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*u = unixValue(s)
		return nil
	case len(b) > 0 && len(b) <= 20 && allDigits(b):
		*u = unixValue(b)
		return nil
	}
	return &json.UnmarshalTypeError{Value: "non-integer " + jsonKind(b), Type: reflect.TypeOf("")}
}

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func jsonKind(b []byte) string {
	if len(b) == 0 {
		return "value"
	}
	switch b[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case 't', 'f':
		return "bool"
	}
	return "number"
}
