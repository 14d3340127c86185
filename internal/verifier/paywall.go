package verifier

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/x402"
)

// The browser paywall: an unpaid request from a browser (its Accept header
// prefers text/html) gets the same 402 and PAYMENT-REQUIRED header as any
// other client, with an HTML page instead of the JSON body. The page needs
// no script and loads nothing; every offer-supplied string goes through
// html/template's escaping.

//go:embed paywall.html.tmpl
var paywallSource string

var paywallTemplate = template.Must(template.New("paywall").Parse(paywallSource))

// paywallCSP forbids scripts, external loads and framing: the page is
// static markup with one inline stylesheet.
const paywallCSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// paywallPage is what the template shows.
type paywallPage struct {
	Description  string // the offer's description, or empty
	URL          string // the resource as the buyer requested it
	Path         string
	Method       string
	Price        string // in token units, e.g. 0.001
	Symbol       string // e.g. USDC
	Atomic       string // the amount in atomic units
	Asset        string // token contract
	ChainName    string // e.g. base-sepolia
	CAIP2        string // e.g. eip155:84532
	Testnet      bool
	PayTo        string
	MaxTimeout   int
	PayCommand   string // the `obol buy pay` line
	Requirements string // the 402's JSON body, indented
}

// writeUnpaid answers a request that carries no payment: the 402 challenge,
// as an HTML page when the client prefers HTML.
func (s *Server) writeUnpaid(w http.ResponseWriter, r *http.Request, st *state, version int, msg string, route *Route, req x402.Requirement) {
	a := challengeAnswer(r, http.StatusPaymentRequired, version, msg, req)
	a.header.Add("Vary", "Accept")
	if a.status == http.StatusPaymentRequired && prefersHTML(r.Header.Values("Accept")) {
		body, err := renderPaywall(route, req.Resource.URL, buyerMethod(r, st.cfg), a.body)
		if err != nil {
			s.log.Error("render paywall page; answering with the JSON challenge", "offer", route.Offer.Name, "err", err)
		} else {
			a.body = body
			a.header.Set("Content-Type", "text/html; charset=utf-8")
			a.header.Set("Content-Security-Policy", paywallCSP)
			a.header.Set("X-Content-Type-Options", "nosniff")
			a.header.Set("Cache-Control", "no-store")
		}
	}
	a.write(w)
}

// renderPaywall renders the page for a route; challenge is the JSON body
// the same request would get, shown raw for wallets and agents.
func renderPaywall(route *Route, resource, method string, challenge []byte) ([]byte, error) {
	p := paywallPage{
		Description: strings.TrimSpace(route.Description),
		URL:         resource,
		Method:      strings.ToUpper(method),
		Price:       evm.FormatAmount(route.Amount, route.Token.Decimals),
		Symbol:      route.Token.Symbol,
		Atomic:      route.Amount.String(),
		Asset:       route.Token.Address.Hex(),
		ChainName:   route.Chain.Name,
		CAIP2:       route.Chain.CAIP2,
		Testnet:     route.Chain.Testnet || route.Chain.Dev,
		PayTo:       route.PayTo.Hex(),
		MaxTimeout:  route.MaxTimeout,
	}
	if p.Symbol == "" {
		p.Symbol = "tokens"
	}
	if p.ChainName == "" {
		p.ChainName = p.CAIP2
	}
	p.Path = resource
	if u, err := url.Parse(resource); err == nil && u.Path != "" {
		p.Path = u.Path
	}
	p.PayCommand = payCommand(resource, p.Method, p.Price, route.Chain)
	var ind bytes.Buffer
	if err := json.Indent(&ind, challenge, "", "  "); err != nil {
		return nil, err
	}
	p.Requirements = ind.String()
	var out bytes.Buffer
	if err := paywallTemplate.Execute(&out, p); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// payCommand is the `obol buy pay` line that pays for one request to the
// resource: its price as the most to pay, its chain as the only chain.
func payCommand(resource, method, price string, chain evm.Chain) string {
	var b strings.Builder
	b.WriteString("obol buy pay ")
	b.WriteString(shellQuote(resource))
	if method != "" && method != http.MethodGet && method != http.MethodHead {
		b.WriteString(" -X " + shellQuote(method))
	}
	b.WriteString(" --key-file buyer.key --max-amount " + price)
	name := chain.Name
	if name == "" {
		name = chain.CAIP2
	}
	if name != "" {
		b.WriteString(" --chain " + shellQuote(name))
	}
	return b.String()
}

// shellQuote quotes s for a POSIX shell when it holds anything but plain
// characters.
func shellQuote(s string) string {
	plain := s != ""
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("-_./:@%+,=", c)) {
			plain = false
			break
		}
	}
	if plain {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// prefersHTML reports whether an Accept header (all its values) ranks
// text/html above application/json. Only an explicit text/html or text/*
// counts for HTML: */* alone, as curl and HTTP libraries send, and an
// absent header keep the JSON challenge, and so does a tie.
func prefersHTML(accept []string) bool {
	ranges := parseAccept(strings.Join(accept, ","))
	html := quality(ranges, "text", "html", false)
	json := quality(ranges, "application", "json", true)
	return html > 0 && html > json
}

// mediaRange is one entry of an Accept header.
type mediaRange struct {
	typ, sub string
	q        float64
}

// parseAccept splits an Accept header into media ranges; an entry with a
// malformed type or q-value is dropped.
func parseAccept(h string) []mediaRange {
	var out []mediaRange
	for _, part := range strings.Split(h, ",") {
		fields := strings.Split(part, ";")
		mt := strings.ToLower(strings.TrimSpace(fields[0]))
		typ, sub, ok := strings.Cut(mt, "/")
		if !ok || typ == "" || sub == "" || (typ == "*" && sub != "*") {
			continue
		}
		q, valid := 1.0, true
		for _, p := range fields[1:] {
			k, v, _ := strings.Cut(p, "=")
			if strings.ToLower(strings.TrimSpace(k)) != "q" {
				continue
			}
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || f < 0 || f > 1 {
				valid = false
			}
			q = f
		}
		if valid {
			out = append(out, mediaRange{typ: typ, sub: sub, q: q})
		}
	}
	return out
}

// quality is the q-value the most specific matching range gives typ/sub
// (RFC 9110 §12.5.1), 0 when none matches. With anyType false a */* range
// does not count.
func quality(ranges []mediaRange, typ, sub string, anyType bool) float64 {
	best, q := 0, 0.0
	for _, r := range ranges {
		spec := 0
		switch {
		case r.typ == typ && r.sub == sub:
			spec = 3
		case r.typ == typ && r.sub == "*":
			spec = 2
		case r.typ == "*" && anyType:
			spec = 1
		}
		if spec > best || (spec == best && spec > 0 && r.q > q) {
			best, q = spec, r.q
		}
	}
	return q
}
