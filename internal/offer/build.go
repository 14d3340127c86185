package offer

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
)

// Request is what a seller asks for: an offer per request, priced in a
// token the registry knows.
type Request struct {
	Name        string
	Upstream    string // SVC[.NS]:PORT
	HealthPath  string
	Price       string // per request, a decimal amount of the asset
	Chain       string // name or CAIP-2 id
	PayTo       string
	Asset       string // address or symbol; "" = the chain's USDC
	Path        string
	Description string
	Type        string
	Model       string
	Runtime     string
	MaxTimeout  int32
	// Settle is when the verifier settles: after-response or on-headers;
	// "" = the type's default (on-headers for inference, after-response
	// otherwise), written into the offer.
	Settle string

	// Discovery: how the offer is listed (see ValidateDiscovery). The
	// schemas and the example are JSON text; "" means not declared.
	Private       bool   // keep the offer out of the discovery documents
	Method        string // "" = GET (POST for inference)
	Category      string
	InputSchema   string
	OutputSchema  string
	OutputExample string
}

// discovery builds the offer's discovery block from the request; nil when
// the request sets nothing.
func (r Request) discovery(errs *problems) *v1alpha1.OfferDiscovery {
	d := &v1alpha1.OfferDiscovery{Method: v1alpha1.HTTPMethod(r.Method), Category: r.Category}
	if r.Private {
		f := false
		d.Public = &f
	}
	for _, f := range []struct {
		field Field
		text  string
		dst   **apiextensionsv1.JSON
	}{
		{FieldDiscoveryInputSchema, r.InputSchema, &d.InputSchema},
		{FieldDiscoveryOutputSchema, r.OutputSchema, &d.OutputSchema},
		{FieldDiscoveryOutputExample, r.OutputExample, &d.OutputExample},
	} {
		v, err := ParseJSONValue(f.text)
		if err != nil {
			errs.add(f.field, err)
			continue
		}
		*f.dst = v
	}
	if d.Public == nil && d.Method == "" && d.Category == "" && d.InputSchema == nil && d.OutputSchema == nil && d.OutputExample == nil {
		return nil
	}
	return d
}

// Build validates a request and returns the ServiceOffer it describes in
// namespace ns, with the chain stored as its CAIP-2 id, payTo checksummed
// and the asset filled in from the registry. Nothing is contacted. The
// error is an *Error listing every problem.
func Build(reg *evm.Registry, r Request, ns string) (*v1alpha1.ServiceOffer, error) {
	var errs problems

	if msgs := validation.IsDNS1123Label(r.Name); len(msgs) > 0 {
		errs.addf(FieldName, "%q: %s (use lower-case letters, digits and '-', at most 63 characters)", r.Name, strings.Join(msgs, "; "))
	}
	svc, svcNS, port, err := ParseUpstream(r.Upstream)
	if err != nil {
		errs.add(FieldUpstream, err)
	}
	if r.HealthPath != "" && !strings.HasPrefix(r.HealthPath, "/") {
		errs.addf(FieldHealthPath, "%q: must start with /", r.HealthPath)
	}
	typ := v1alpha1.OfferType(strings.ToLower(strings.TrimSpace(r.Type)))
	if typ == "" {
		typ = v1alpha1.OfferTypeHTTP
	}
	switch typ {
	case v1alpha1.OfferTypeHTTP:
	case v1alpha1.OfferTypeInference:
		if r.Model == "" {
			errs.addf(FieldModel, "required for an inference offer")
		}
	default:
		errs.addf(FieldType, "%q: use http or inference", r.Type)
	}
	path := r.Path
	if path == "" {
		path = v1alpha1.DefaultPath(r.Name)
	} else if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, "?# \t\n") {
		errs.addf(FieldPath, "%q: must start with / and contain no query, fragment or spaces", r.Path)
	}
	settle, err := ParseSettle(r.Settle)
	if err != nil {
		errs.add(FieldSettle, err)
	}
	if r.MaxTimeout < 0 || r.MaxTimeout > 86400 {
		errs.addf(FieldMaxTimeout, "%d: use 1 to 86400 seconds", r.MaxTimeout)
	}

	pay := v1alpha1.OfferPayment{
		Scheme:            v1alpha1.SchemeExact,
		Network:           r.Chain,
		PayTo:             r.PayTo,
		MaxTimeoutSeconds: r.MaxTimeout,
		Price:             v1alpha1.OfferPrice{PerRequest: r.Price},
	}
	if r.Price == "" {
		errs.addf(FieldPrice, "required, e.g. 0.001")
	}
	if chain, err := reg.Chain(r.Chain); err == nil {
		pay.Network = chain.CAIP2
		// The asset must be a token the registry knows (by address or
		// symbol): a request cannot describe another token's EIP-712 domain.
		if t, err := requestedToken(reg, chain.CAIP2, r.Asset); err != nil {
			errs.add(FieldAsset, err)
		} else {
			asset := AssetFromToken(t)
			pay.Asset = &asset
		}
	}
	disc := r.discovery(&errs)
	if _, err := ValidateDiscovery(disc, typ); err != nil {
		var derr *Error
		if errors.As(err, &derr) {
			for _, p := range derr.Problems {
				if !errs.has(p.Field) {
					errs = append(errs, p)
				}
			}
		}
	}
	valid, err := ValidatePayment(reg, pay)
	var perr *Error
	if errors.As(err, &perr) {
		for _, p := range perr.Problems {
			if !errs.has(p.Field) {
				errs = append(errs, p)
			}
		}
	}
	if len(errs) > 0 {
		return nil, errs.err()
	}
	pay.PayTo = valid.PayTo.Hex() // stored checksummed

	o := &v1alpha1.ServiceOffer{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: "ServiceOffer"},
		ObjectMeta: metav1.ObjectMeta{Name: r.Name, Namespace: ns},
		Spec: v1alpha1.ServiceOfferSpec{
			Type:        typ,
			Upstream:    v1alpha1.OfferUpstream{Service: svc, Namespace: svcNS, Port: port, HealthPath: r.HealthPath},
			Payment:     pay,
			Path:        path,
			Description: r.Description,
			Discovery:   disc,
		},
	}
	if r.Model != "" {
		o.Spec.Model = &v1alpha1.OfferModel{Name: r.Model, Runtime: r.Runtime}
	}
	// Written out, like the default path: the offer says how it settles.
	o.Spec.Settle = settle
	if o.Spec.Settle == "" {
		o.Spec.Settle = o.EffectiveSettle()
	}
	return o, nil
}

// ParseSettle reads a settlement mode ("" stays "": the type's default).
func ParseSettle(s string) (v1alpha1.SettleMode, error) {
	switch m := v1alpha1.SettleMode(strings.ToLower(strings.TrimSpace(s))); m {
	case "", v1alpha1.SettleAfterResponse, v1alpha1.SettleOnHeaders:
		return m, nil
	}
	return "", fmt.Errorf("%q: use %s (read the whole answer, then settle) or %s (settle when the status and headers arrive, then stream)",
		s, v1alpha1.SettleAfterResponse, v1alpha1.SettleOnHeaders)
}

// requestedToken finds the token a request names by symbol or address
// (checked like any other address) in the registry.
func requestedToken(reg *evm.Registry, chain, asset string) (evm.Token, error) {
	if strings.HasPrefix(strings.ToLower(strings.TrimSpace(asset)), "0x") {
		a, err := evm.ParsePayTo(asset)
		if err != nil {
			return evm.Token{}, err
		}
		asset = a.Hex()
	}
	return reg.Token(chain, asset)
}

// has reports whether a problem was found in field f already, or, for a
// price, in the price as a whole.
func (ps problems) has(f Field) bool {
	for _, p := range ps {
		if p.Field == f || p.Field == FieldPrice && f.isPrice() {
			return true
		}
	}
	return false
}

// isPrice reports whether f is a price.
func (f Field) isPrice() bool {
	switch f {
	case FieldPrice, FieldPricePerRequest, FieldPricePerMTok, FieldPricePerHour:
		return true
	}
	return false
}

// ParseUpstream splits SVC[.NAMESPACE]:PORT.
func ParseUpstream(s string) (svc, ns string, port int32, err error) {
	if s == "" {
		return "", "", 0, errors.New("required: give the upstream Service as SVC[.NAMESPACE]:PORT, e.g. weather-api:8080")
	}
	host, p, ok := strings.Cut(s, ":")
	if !ok || host == "" || p == "" {
		return "", "", 0, fmt.Errorf("%q: use SVC[.NAMESPACE]:PORT, e.g. weather-api:8080 or ollama.llm:11434", s)
	}
	n, perr := strconv.Atoi(p)
	if perr != nil || n < 1 || n > 65535 {
		return "", "", 0, fmt.Errorf("%q: port %q is not a number from 1 to 65535", s, p)
	}
	host = strings.TrimSuffix(host, ".svc.cluster.local")
	host = strings.TrimSuffix(host, ".svc")
	svc, ns, _ = strings.Cut(host, ".")
	if msgs := validation.IsDNS1123Label(svc); len(msgs) > 0 {
		return "", "", 0, fmt.Errorf("%q: Service name %q: %s", s, svc, strings.Join(msgs, "; "))
	}
	if ns != "" {
		if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
			return "", "", 0, fmt.Errorf("%q: namespace %q: %s", s, ns, strings.Join(msgs, "; "))
		}
	}
	return svc, ns, int32(n), nil
}
