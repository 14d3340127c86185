// Package catalog reads what an x402 origin sells from its discovery
// documents: /openapi.json (operations with x-payment-info, the form
// x402scan crawls) and /.well-known/x402 (the paid resources), as obol's
// verifier publishes them and as other sellers do. It is the buyer's side
// of internal/verifier/discovery.go.
package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/x402"
)

// Document paths read at an origin.
const (
	PathOpenAPI   = "/openapi.json"
	PathWellKnown = "/.well-known/x402"
)

// maxDocBytes bounds a discovery document.
const maxDocBytes = 8 << 20

// maxProbes bounds the resources listed without requirements that are
// asked for their 402.
const maxProbes = 20

// Catalog is what an origin sells.
type Catalog struct {
	Origin  string   `json:"origin"`
	Sources []Source `json:"sources"`
	Offers  []Offer  `json:"offers"`
	// Free counts the operations the OpenAPI document lists without a
	// price.
	Free int `json:"free"`
}

// Source is one discovery document and what came of reading it.
type Source struct {
	URL   string `json:"url"`
	Found bool   `json:"found"`
	// Offers counts the paid resources the document lists (also those
	// another document listed first).
	Offers int    `json:"offers"`
	Error  string `json:"error,omitempty"`
}

// Offer is one paid resource.
type Offer struct {
	Method      string `json:"method"`
	URL         string `json:"url"`
	Description string `json:"description,omitempty"`
	Category    string `json:"category,omitempty"`
	// Price in whole units of Symbol ("0.001" USDC); empty when unknown.
	Price  string `json:"price,omitempty"`
	Symbol string `json:"symbol,omitempty"`
	// Network (CAIP-2), PayTo, Asset and Amount (atomic units) of the
	// first way to pay.
	Network string `json:"network,omitempty"`
	PayTo   string `json:"payTo,omitempty"`
	Asset   string `json:"asset,omitempty"`
	Amount  string `json:"amount,omitempty"`
	// Accepts are the advertised requirements (the live 402 is
	// authoritative).
	Accepts []x402.PaymentRequirementsV2 `json:"accepts,omitempty"`
	// From names the document the offer was read from.
	From string `json:"from"`
}

// ErrNoDiscovery is returned (wrapped) when an origin publishes neither
// document.
var ErrNoDiscovery = errors.New("no x402 discovery documents")

// Origin reduces a URL, or a bare host[:port], to the origin it names
// (scheme://host[:port]); a bare host gets https, or http on loopback.
func Origin(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	if !strings.Contains(s, "://") {
		host := s
		if i := strings.IndexByte(host, '/'); i >= 0 {
			host = host[:i]
		}
		scheme := "https"
		if h := hostOnly(host); h == "localhost" || strings.HasPrefix(h, "127.") || h == "::1" || h == "[::1]" {
			scheme = "http"
		}
		s = scheme + "://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("%q is not an http(s) origin such as https://api.example.com", raw)
	}
	return u.Scheme + "://" + u.Host, nil
}

func hostOnly(hostport string) string {
	if i := strings.LastIndexByte(hostport, ':'); i >= 0 && !strings.HasSuffix(hostport, "]") {
		return hostport[:i]
	}
	return hostport
}

// Read fetches and merges an origin's discovery documents. Offers from
// the OpenAPI document come first; /.well-known/x402 adds the resources
// it lists and the document did not. Resources listed without their
// requirements are asked for their 402 (an unpaid request; nothing is
// signed). reg prices tokens the documents do not describe (nil: the
// default registry).
func Read(ctx context.Context, client *http.Client, reg *evm.Registry, origin string) (*Catalog, error) {
	if client == nil {
		client = http.DefaultClient
	}
	if reg == nil {
		reg = evm.Default()
	}
	c := &Catalog{Origin: origin}
	seen := map[string]bool{}
	add := func(o Offer) bool {
		k := o.Method + " " + o.URL
		if seen[k] {
			return false
		}
		seen[k] = true
		c.Offers = append(c.Offers, o)
		return true
	}

	src := Source{URL: origin + PathOpenAPI}
	var doc openAPIDoc
	if err := getJSON(ctx, client, src.URL, &doc); err != nil {
		src.Error = err.Error()
	} else if doc.OpenAPI == "" || doc.Paths == nil {
		src.Error = "not an OpenAPI document (no openapi or paths)"
	} else {
		src.Found = true
		offers, free := doc.offers(origin, reg)
		c.Free = free
		for _, o := range offers {
			add(o)
		}
		src.Offers = len(offers)
	}
	c.Sources = append(c.Sources, src)

	src = Source{URL: origin + PathWellKnown}
	var wk wellKnownDoc
	if err := getJSON(ctx, client, src.URL, &wk); err != nil {
		src.Error = err.Error()
	} else {
		src.Found = true
		probes := 0
		listed := wk.offers(reg)
		src.Offers = len(listed)
		for _, o := range listed {
			if len(o.Accepts) == 0 {
				if seen["GET "+o.URL] || seen["POST "+o.URL] || probes >= maxProbes {
					continue
				}
				probes++
				probed, err := probe(ctx, client, reg, o.URL)
				if err != nil {
					o.Description = "no price: " + err.Error()
				} else {
					o = probed
				}
			}
			add(o)
		}
	}
	c.Sources = append(c.Sources, src)

	if !c.Sources[0].Found && !c.Sources[1].Found {
		return c, fmt.Errorf("%s: %w: GET %s: %s; GET %s: %s", origin, ErrNoDiscovery,
			PathOpenAPI, c.Sources[0].Error, PathWellKnown, c.Sources[1].Error)
	}
	return c, nil
}

// getJSON GETs a document and decodes it; a non-200 answer or a body that
// is not JSON is an error that says so.
func getJSON(ctx context.Context, client *http.Client, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, maxDocBytes+1))
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("answered %s", res.Status)
	}
	if len(b) > maxDocBytes {
		return fmt.Errorf("larger than %d bytes", maxDocBytes)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("not a JSON document: %v", err)
	}
	return nil
}

// probe asks a resource for its 402.
func probe(ctx context.Context, client *http.Client, reg *evm.Registry, u string) (Offer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Offer{}, err
	}
	res, err := client.Do(req)
	if err != nil {
		return Offer{}, err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 4*x402.MaxHeaderBytes))
	if res.StatusCode != http.StatusPaymentRequired {
		return Offer{}, fmt.Errorf("GET answered %s, not 402", res.Status)
	}
	ch, err := x402.ParseChallenge(res.Header, b)
	if err != nil {
		return Offer{}, err
	}
	o := Offer{Method: http.MethodGet, URL: u, From: "402"}
	for _, r := range ch.Requirements {
		o.Accepts = append(o.Accepts, r.V2())
	}
	if ch.Resource != nil {
		o.Description = ch.Resource.Description
	}
	o.fill(reg, nil)
	return o, nil
}

// assetInfo is obol's description of the token next to x-payment-info's
// price.
type assetInfo struct {
	Address  string `json:"address"`
	Symbol   string `json:"symbol"`
	Decimals *int   `json:"decimals"`
}

type priceInfo struct {
	Mode     string `json:"mode"`
	Currency string `json:"currency"`
	Amount   string `json:"amount"`
}

// fill sets the price and the first requirement's terms from Accepts:
// the price in whole tokens from the asset's decimals (given, or the
// registry's).
func (o *Offer) fill(reg *evm.Registry, asset *assetInfo) {
	if len(o.Accepts) == 0 {
		return
	}
	a := o.Accepts[0]
	if nw, err := reg.Normalize(a.Network); err == nil {
		a.Network = nw
	}
	o.Network, o.PayTo, o.Asset, o.Amount = a.Network, a.PayTo, a.Asset, a.Amount
	atomic, err := evm.ParseAtomic(a.Amount)
	if err != nil {
		return
	}
	if asset != nil && asset.Decimals != nil && *asset.Decimals >= 0 && *asset.Decimals <= 36 && strings.EqualFold(asset.Address, a.Asset) {
		o.Price, o.Symbol = evm.FormatAmount(atomic, uint8(*asset.Decimals)), asset.Symbol
		return
	}
	if t, err := reg.Token(a.Network, a.Asset); err == nil {
		o.Price, o.Symbol = evm.FormatAmount(atomic, t.Decimals), t.Symbol
	}
}

type openAPIDoc struct {
	OpenAPI string                                `json:"openapi"`
	Servers []struct{ URL string }                `json:"servers"`
	Paths   map[string]map[string]json.RawMessage `json:"paths"`
}

type openAPIOp struct {
	Summary     string   `json:"summary"`
	Description string   `json:"description"`
	Tags        []string `json:"tags"`
	Parameters  []struct {
		Name    string `json:"name"`
		In      string `json:"in"`
		Example any    `json:"example"`
	} `json:"parameters"`
	PaymentInfo *struct {
		Price     *priceInfo                   `json:"price"`
		Asset     *assetInfo                   `json:"asset"`
		Protocols []map[string]json.RawMessage `json:"protocols"`
	} `json:"x-payment-info"`
}

var httpMethods = map[string]bool{"get": true, "put": true, "post": true, "delete": true, "options": true, "head": true, "patch": true, "trace": true}

// offers lists the paid operations (sorted by path and method) and counts
// the free ones.
func (d *openAPIDoc) offers(origin string, reg *evm.Registry) ([]Offer, int) {
	base := origin
	if len(d.Servers) > 0 && d.Servers[0].URL != "" {
		if u, err := url.Parse(d.Servers[0].URL); err == nil && u.Host != "" {
			base = strings.TrimRight(d.Servers[0].URL, "/")
		}
	}
	var out []Offer
	free := 0
	for p, item := range d.Paths {
		for m, raw := range item {
			if !httpMethods[m] {
				continue
			}
			var op openAPIOp
			if json.Unmarshal(raw, &op) != nil {
				continue
			}
			if op.PaymentInfo == nil {
				free++
				continue
			}
			path := p
			for _, prm := range op.Parameters {
				if ex, ok := prm.Example.(string); ok && prm.In == "path" {
					path = strings.ReplaceAll(path, "{"+prm.Name+"}", ex)
				}
			}
			o := Offer{Method: strings.ToUpper(m), URL: base + path, Description: op.Summary, From: "openapi"}
			if o.Description == "" {
				o.Description = op.Description
			}
			if len(op.Tags) > 0 {
				o.Category = op.Tags[0]
			}
			for _, proto := range op.PaymentInfo.Protocols {
				var x struct {
					Accepts []x402.PaymentRequirementsV2 `json:"accepts"`
				}
				if raw, ok := proto["x402"]; ok && json.Unmarshal(raw, &x) == nil {
					o.Accepts = append(o.Accepts, x.Accepts...)
				}
			}
			o.fill(reg, op.PaymentInfo.Asset)
			if o.Price == "" && op.PaymentInfo.Price != nil && op.PaymentInfo.Price.Amount != "" {
				o.Price, o.Symbol = op.PaymentInfo.Price.Amount, op.PaymentInfo.Price.Currency
			}
			out = append(out, o)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].URL != out[j].URL {
			return out[i].URL < out[j].URL
		}
		return out[i].Method < out[j].Method
	})
	return out, free
}

type wellKnownDoc struct {
	Resources []string `json:"resources"`
	Items     []struct {
		Resource struct {
			URL         string `json:"url"`
			Description string `json:"description"`
		} `json:"resource"`
		Accepts  []x402.PaymentRequirementsV2 `json:"accepts"`
		Category string                       `json:"category"`
		Input    struct {
			Method string `json:"method"`
		} `json:"input"`
		Price *priceInfo `json:"price"`
		Asset *assetInfo `json:"asset"`
	} `json:"items"`
}

// offers lists the items, then the resources no item describes.
func (d *wellKnownDoc) offers(reg *evm.Registry) []Offer {
	var out []Offer
	described := map[string]bool{}
	for _, it := range d.Items {
		if it.Resource.URL == "" {
			continue
		}
		m := strings.ToUpper(it.Input.Method)
		if m == "" {
			m = http.MethodGet
		}
		o := Offer{Method: m, URL: it.Resource.URL, Description: it.Resource.Description, Category: it.Category,
			Accepts: it.Accepts, From: "well-known"}
		o.fill(reg, it.Asset)
		if o.Price == "" && it.Price != nil {
			o.Price, o.Symbol = it.Price.Amount, it.Price.Currency
		}
		described[o.URL] = true
		out = append(out, o)
	}
	for _, u := range d.Resources {
		if !described[u] {
			out = append(out, Offer{Method: http.MethodGet, URL: u, From: "well-known"})
		}
	}
	return out
}
