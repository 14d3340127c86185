package verifier

import (
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/offer"
	"github.com/obolstack/obol/internal/x402"
)

// Modes of the gate.
const (
	ModeProxy       = "proxy"       // "/" verifies, forwards upstream, settles
	ModeForwardAuth = "forwardAuth" // "/verify" answers Traefik's ForwardAuth

	ForwardAuthVerifyOnly  = "verify-only"  // 200 after verify; settlement happens elsewhere
	ForwardAuthSettleFirst = "settle-first" // settle, then 200: the buyer is charged before the upstream runs

	UnmatchedFree = "free" // unmatched paths pass (proxy: to the global upstream; ForwardAuth: 200)
	UnmatchedDeny = "deny" // unmatched paths get 404; the default in both modes
)

// Defaults of the pricing file.
const (
	DefaultMaxTimeoutSeconds  = 60
	DefaultFacilitatorTimeout = 60 * time.Second
	DefaultMaxResponseBytes   = 16 << 20
	DefaultOfferNamespace     = "default"
)

// Spec is the pricing file as written: global settings and routes. The file
// route source decodes it from YAML; the kube route source builds the routes
// from ServiceOffers and keeps the file's globals. Compile validates it.
type Spec struct {
	PayTo          string `yaml:"payTo" json:"payTo,omitempty"`
	Wallet         string `yaml:"wallet" json:"wallet,omitempty"` // alias of payTo, as other x402 stacks name it
	Chain          string `yaml:"chain" json:"chain,omitempty"`
	FacilitatorURL string `yaml:"facilitatorURL" json:"facilitatorURL,omitempty"`
	// FacilitatorHeaders are sent with every request to facilitatorURL
	// (an API key, a bearer token), values from env or file.
	FacilitatorHeaders []UpstreamAuthSpec `yaml:"facilitatorHeaders" json:"facilitatorHeaders,omitempty"`
	// Facilitators is an ordered fallback list, instead of facilitatorURL.
	Facilitators       []FacilitatorSpec `yaml:"facilitators" json:"facilitators,omitempty"`
	FacilitatorTimeout string            `yaml:"facilitatorTimeout" json:"facilitatorTimeout,omitempty"`
	Mode               string            `yaml:"mode" json:"mode,omitempty"`
	ForwardAuth        string            `yaml:"forwardAuth" json:"forwardAuth,omitempty"`
	Unmatched          string            `yaml:"unmatched" json:"unmatched,omitempty"`
	Upstream           string            `yaml:"upstream" json:"upstream,omitempty"`
	Asset              *AssetSpec        `yaml:"asset" json:"asset,omitempty"`
	MaxTimeoutSeconds  int               `yaml:"maxTimeoutSeconds" json:"maxTimeoutSeconds,omitempty"`
	MaxResponseBytes   int64             `yaml:"maxResponseBytes" json:"maxResponseBytes,omitempty"`
	ChallengeVersion   int               `yaml:"challengeVersion" json:"challengeVersion,omitempty"`
	OfferNamespace     string            `yaml:"offerNamespace" json:"offerNamespace,omitempty"`
	Routes             []RouteSpec       `yaml:"routes" json:"routes,omitempty"`

	// Source names where the spec came from in errors ("pricing.yaml").
	Source string `yaml:"-" json:"-"`
	// routesFromSource is set by WithRoutes: the routes came from a route
	// source, not the file, and may be empty.
	routesFromSource bool
	pos              map[string]Pos
}

// AssetSpec overrides the token a route is paid in. With only a symbol or
// an address the registry fills in the rest; a token the registry does not
// know needs address, decimals, eip712Name and eip712Version.
type AssetSpec struct {
	Address       string `yaml:"address" json:"address,omitempty"`
	Symbol        string `yaml:"symbol" json:"symbol,omitempty"`
	Decimals      *int   `yaml:"decimals" json:"decimals,omitempty"`
	EIP712Name    string `yaml:"eip712Name" json:"eip712Name,omitempty"`
	EIP712Version string `yaml:"eip712Version" json:"eip712Version,omitempty"`
}

// RouteSpec is one priced path.
type RouteSpec struct {
	Pattern           string            `yaml:"pattern" json:"pattern"`
	Price             string            `yaml:"price" json:"price"`
	Description       string            `yaml:"description" json:"description,omitempty"`
	MimeType          string            `yaml:"mimeType" json:"mimeType,omitempty"`
	PayTo             string            `yaml:"payTo" json:"payTo,omitempty"`
	Network           string            `yaml:"network" json:"network,omitempty"`
	Asset             *AssetSpec        `yaml:"asset" json:"asset,omitempty"`
	Upstream          string            `yaml:"upstream" json:"upstream,omitempty"`
	StripPrefix       bool              `yaml:"stripPrefix" json:"stripPrefix,omitempty"`
	UpstreamAuth      *UpstreamAuthSpec `yaml:"upstreamAuth" json:"upstreamAuth,omitempty"`
	OfferNamespace    string            `yaml:"offerNamespace" json:"offerNamespace,omitempty"`
	OfferName         string            `yaml:"offerName" json:"offerName,omitempty"`
	MaxTimeoutSeconds int               `yaml:"maxTimeoutSeconds" json:"maxTimeoutSeconds,omitempty"`
	// Settle is when a paid request is settled in proxy mode:
	// after-response (default) or on-headers.
	Settle string `yaml:"settle" json:"settle,omitempty"`
	// UpstreamTimeout bounds a paid request's wait for its upstream in
	// proxy mode (a duration such as 30s; default 60s): for the whole
	// answer with settle: after-response, for the status and headers with
	// on-headers. Beyond it: 504, not charged.
	UpstreamTimeout string `yaml:"upstreamTimeout" json:"upstreamTimeout,omitempty"`
	// Discovery describes the route to buyers and indexers: its entry in
	// /openapi.json and /.well-known/x402 and the bazaar extension of its
	// 402 (see discovery.go).
	Discovery *DiscoverySpec `yaml:"discovery" json:"discovery,omitempty"`
}

// Settlement modes of a paid route in proxy mode.
const (
	// SettleAfterResponse reads the whole upstream answer (bounded by
	// maxResponseBytes), settles when its status is below 400, then sends
	// it: the buyer never pays for an answer that failed midway.
	SettleAfterResponse = "after-response"
	// SettleOnHeaders settles as soon as the upstream's status and headers
	// arrive with a status below 400, then streams the body with flushing:
	// for event streams and streamed completions.
	SettleOnHeaders = "on-headers"
)

// FacilitatorSpec is one facilitator of the fallback list.
type FacilitatorSpec struct {
	// Name is the facilitator metric label (default: the URL's host).
	Name    string             `yaml:"name" json:"name,omitempty"`
	URL     string             `yaml:"url" json:"url"`
	Headers []UpstreamAuthSpec `yaml:"headers" json:"headers,omitempty"`
}

// FacilitatorEndpoint is a compiled facilitator: its name (the metric
// label), URL and the headers to send (secret values; never logged).
type FacilitatorEndpoint struct {
	Name   string
	URL    string
	Header http.Header
}

// UpstreamAuthSpec adds a header to every request forwarded upstream, its
// value read from an environment variable or a file (a mounted Secret). The
// value is never logged.
type UpstreamAuthSpec struct {
	Header        string `yaml:"header" json:"header"`
	ValueFromEnv  string `yaml:"valueFromEnv" json:"valueFromEnv,omitempty"`
	ValueFromFile string `yaml:"valueFromFile" json:"valueFromFile,omitempty"`
}

// FieldError is one problem in a pricing spec: the field path
// (routes[1].price), its position in the file when known, and what is wrong.
type FieldError struct {
	Path string
	Pos  Pos
	Msg  string
}

func (e *FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// ConfigError lists every problem found in a pricing spec.
type ConfigError struct {
	Source string
	Errors []*FieldError
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	src := e.Source
	if src == "" {
		src = "pricing config"
	}
	if len(e.Errors) == 1 {
		fmt.Fprintf(&b, "invalid %s", src)
	} else {
		fmt.Fprintf(&b, "invalid %s (%d problems)", src, len(e.Errors))
	}
	for _, fe := range e.Errors {
		b.WriteString("\n  ")
		if fe.Pos.Line > 0 {
			fmt.Fprintf(&b, "%s:%d:%d: ", src, fe.Pos.Line, fe.Pos.Column)
		}
		b.WriteString(fe.Error())
	}
	return b.String()
}

// Config is a validated pricing spec, ready for (*Server).ApplyConfig.
type Config struct {
	Source             string
	Mode               string
	ForwardAuth        string
	Unmatched          string
	FacilitatorURL     string // the first of Facilitators
	Facilitators       []FacilitatorEndpoint
	FacilitatorTimeout time.Duration
	Upstream           *url.URL // global upstream; nil when none
	MaxResponseBytes   int64
	ChallengeVersion   int
	Chain              evm.Chain // the global chain
	Routes             []*Route
}

// Offer identifies the seller's offer a route belongs to; its parts are
// the offer_namespace and offer_name metric labels.
type Offer struct {
	Namespace string
	Name      string
}

// Route is one compiled route.
type Route struct {
	Pattern     Pattern
	Offer       Offer
	Chain       evm.Chain // the chain the route charges on (inherited or its own)
	Token       evm.Token
	Price       string   // as written, in token units
	Amount      *big.Int // atomic units
	Free        bool     // price 0: no payment asked
	PayTo       common.Address
	Description string
	MimeType    string
	MaxTimeout  int
	Upstream    *url.URL // the route's or the global upstream; nil when none
	StripPrefix bool
	// SettleOnHeaders: settle when the upstream's headers arrive and
	// stream the body (settle: on-headers); else settle after the whole
	// answer (after-response).
	SettleOnHeaders bool
	// UpstreamTimeout is the route's upstreamTimeout; 0 means the
	// server's (Options.UpstreamTimeout).
	UpstreamTimeout time.Duration
	authHeader      string
	authValue       string

	amountStr string
	// Discovery is the route's discovery block, defaults applied (public,
	// GET); disc holds what its 402 and the documents carry.
	Discovery *offer.Discovery
	disc      routeDiscovery
	assetHex  string // Token.Address.Hex(), set by Compile
	payToHex  string // PayTo.Hex(), set by Compile
}

// asset is the checksummed token address.
func (r *Route) asset() string {
	if r.assetHex != "" {
		return r.assetHex
	}
	return r.Token.Address.Hex()
}

// payTo is the checksummed payee address.
func (r *Route) payTo() string {
	if r.payToHex != "" {
		return r.payToHex
	}
	return r.PayTo.Hex()
}

// HasUpstreamAuth reports whether an auth header is added upstream (the
// value itself is not exposed).
func (r *Route) HasUpstreamAuth() bool { return r.authHeader != "" }

// Requirement is the route's way to pay for a resource URL.
func (r *Route) Requirement(resource string) x402.Requirement {
	return x402.Requirement{
		Scheme:            x402.SchemeExact,
		Network:           r.Chain.CAIP2,
		NetworkV1:         r.Chain.Name,
		Amount:            r.amountStr,
		Asset:             r.asset(),
		PayTo:             r.payTo(),
		MaxTimeoutSeconds: r.MaxTimeout,
		Extra:             x402.Extra{Name: r.Token.EIP712Name, Version: r.Token.EIP712Version},
		Resource:          x402.ResourceInfo{URL: resource, Description: r.Description, MimeType: r.MimeType},
		OutputSchema:      r.disc.v1OutputSchema,
		Extensions:        r.disc.extensions,
	}
}

// Match returns the first route matching a clean path.
func (c *Config) Match(clean string) *Route {
	for _, r := range c.Routes {
		if r.Pattern.Match(clean) {
			return r
		}
	}
	return nil
}

// Environment is what Compile reads besides the spec: environment variables
// and files for upstream auth. Zero value = the process's.
type Environment struct {
	Getenv   func(string) string
	ReadFile func(string) ([]byte, error)
}

// LoadFile reads and compiles a pricing file. Errors name the file, line
// and field.
func LoadFile(path string, reg *evm.Registry, env Environment) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read pricing file: %w (check --config)", err)
	}
	return ParseAndCompile(path, data, reg, env)
}

// ParseSpec decodes a pricing file without validating its values.
func ParseSpec(source string, data []byte) (*Spec, error) {
	spec, errs := parseSpec(source, data)
	if len(errs) > 0 {
		return nil, &ConfigError{Source: source, Errors: errs}
	}
	return spec, nil
}

func parseSpec(source string, data []byte) (*Spec, []*FieldError) {
	spec := &Spec{Source: source, pos: map[string]Pos{}}
	return spec, decodeYAML(data, spec, spec.pos)
}

// ParseAndCompile decodes and compiles a pricing file, reporting the
// problems of both steps together: a misspelt key does not hide a bad
// price further down.
func ParseAndCompile(source string, data []byte, reg *evm.Registry, env Environment) (*Config, error) {
	spec, errs := parseSpec(source, data)
	if len(errs) == 0 {
		return Compile(spec, reg, env)
	}
	if len(errs) == 1 && errs[0].Pos.Line == 0 {
		// Not YAML at all, or empty: nothing to compile.
		return nil, &ConfigError{Source: source, Errors: errs}
	}
	_, err := Compile(spec, reg, env)
	var ce *ConfigError
	if errors.As(err, &ce) {
		bad := map[string]bool{}
		for _, fe := range errs {
			bad[fe.Path] = true
		}
		for _, fe := range ce.Errors {
			// A field that did not decode shows up empty to Compile;
			// its decode error already says what is wrong.
			if !bad[fe.Path] {
				errs = append(errs, fe)
			}
		}
	}
	sort.SliceStable(errs, func(i, j int) bool {
		a, b := errs[i].Pos, errs[j].Pos
		if a.Line == 0 || b.Line == 0 {
			return a.Line != 0 && b.Line == 0
		}
		return a.Line < b.Line || a.Line == b.Line && a.Column < b.Column
	})
	return nil, &ConfigError{Source: source, Errors: errs}
}

// Compile validates a spec and resolves chains, tokens, amounts and
// upstreams. Every problem is reported, each with its field path (and line
// when the spec came from a file).
func Compile(spec *Spec, reg *evm.Registry, env Environment) (*Config, error) {
	if reg == nil {
		reg = evm.Default()
	}
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	if env.ReadFile == nil {
		env.ReadFile = os.ReadFile
	}
	c := &compiler{spec: spec, reg: reg, env: env}
	cfg := c.compile()
	if len(c.errs) > 0 {
		for _, fe := range c.errs {
			if fe.Pos.Line == 0 {
				fe.Pos = c.posOf(fe.Path)
			}
		}
		return nil, &ConfigError{Source: spec.Source, Errors: c.errs}
	}
	return cfg, nil
}

type compiler struct {
	spec *Spec
	reg  *evm.Registry
	env  Environment
	errs []*FieldError
}

func (c *compiler) fail(path, format string, args ...any) {
	c.errs = append(c.errs, &FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// posOf finds the position of a path or of its closest recorded parent.
func (c *compiler) posOf(path string) Pos {
	for p := path; p != ""; {
		if pos, ok := c.spec.pos[p]; ok {
			return pos
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return Pos{}
}

func (c *compiler) compile() *Config {
	cfg := &Config{Source: c.spec.Source}
	g := c.globals(cfg)
	// A pricing file without routes is a mistake; a route source (the
	// cluster's ServiceOffers) may have none, and then serves nothing paid.
	if len(c.spec.Routes) == 0 && !c.spec.routesFromSource {
		c.fail("routes", "no routes: add at least one {pattern, price}")
	}
	names := offerNames{explicit: map[Offer]bool{}, derived: map[Offer]string{}}
	patterns := map[string]int{}
	for i := range c.spec.Routes {
		rs := &c.spec.Routes[i]
		p := fmt.Sprintf("routes[%d]", i)
		r := c.route(p, i, rs, cfg, g, patterns)
		r.Offer = c.offer(p, rs, g.namespace, &names)
		cfg.Routes = append(cfg.Routes, r)
	}
	c.offersOnOneChain(cfg)
	c.checkFreeReach(cfg)
	if !g.haveChain && c.spec.Chain == "" {
		// Record the first route's chain as "the" chain for display.
		for _, r := range cfg.Routes {
			if r.Chain.CAIP2 != "" {
				cfg.Chain = r.Chain
				break
			}
		}
	}
	return cfg
}

// globals is what routes inherit from the spec's global settings.
type globals struct {
	haveChain bool           // cfg.Chain is set and valid
	payToRaw  string         // the global payTo (or wallet) as written
	payTo     common.Address // valid when havePayTo
	havePayTo bool
	namespace string // the offers' namespace unless a route names its own
}

// facilitators compiles facilitatorURL (with facilitatorHeaders) or the
// facilitators list.
func (c *compiler) facilitators(cfg *Config) {
	s := c.spec
	specs := s.Facilitators
	base := "facilitators"
	switch {
	case len(specs) > 0 && (s.FacilitatorURL != "" || len(s.FacilitatorHeaders) > 0):
		c.fail("facilitators", "give facilitatorURL (with facilitatorHeaders) or the facilitators list, not both")
		return
	case len(specs) == 0:
		if strings.TrimSpace(s.FacilitatorURL) == "" {
			c.fail("facilitatorURL", "missing: the URL of the x402 facilitator, e.g. https://x402.org/facilitator or http://127.0.0.1:4021 for `obol facilitator serve`")
			return
		}
		specs = []FacilitatorSpec{{Name: "default", URL: s.FacilitatorURL, Headers: s.FacilitatorHeaders}}
		base = ""
	}
	names := map[string]bool{}
	for i, fs := range specs {
		p := fmt.Sprintf("%s[%d].", base, i)
		urlPath, headersPath := p+"url", p+"headers"
		if base == "" {
			urlPath, headersPath = "facilitatorURL", "facilitatorHeaders"
		}
		e := FacilitatorEndpoint{Name: fs.Name, URL: strings.TrimRight(strings.TrimSpace(fs.URL), "/"), Header: http.Header{}}
		if e.URL == "" {
			c.fail(urlPath, "missing: the facilitator's URL")
		} else if err := checkFacilitatorURL(e.URL); err != nil {
			c.fail(urlPath, "%v", err)
		} else if e.Name == "" {
			u, _ := url.Parse(e.URL)
			e.Name = u.Hostname()
		}
		if e.Name != "" {
			if err := checkFacilitatorName(e.Name); err != nil {
				c.fail(p+"name", "%v", err)
			} else if names[e.Name] {
				c.fail(p+"name", "%q is already the name of an earlier facilitator (names are the facilitator metric label): set name", e.Name)
			}
			names[e.Name] = true
		}
		for j := range fs.Headers {
			if h, v := c.upstreamAuth(fmt.Sprintf("%s[%d]", headersPath, j), &fs.Headers[j]); h != "" {
				e.Header.Set(h, v)
			}
		}
		cfg.Facilitators = append(cfg.Facilitators, e)
	}
	if len(cfg.Facilitators) > 0 {
		cfg.FacilitatorURL = cfg.Facilitators[0].URL
	}
}

func checkFacilitatorName(n string) error {
	if len(n) > 63 {
		return fmt.Errorf("%q is longer than 63 characters", n)
	}
	for i := 0; i < len(n); i++ {
		ch := n[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '.' || ch == '_') {
			return fmt.Errorf("%q: use lower-case letters, digits, '-', '.' and '_'", n)
		}
	}
	return nil
}

// oneOf checks an enumerated field: the zero value means def, any other
// value must be one of allowed; msg formats the complaint with the value.
func oneOf[T comparable](c *compiler, path string, v, def T, allowed []T, msg string) T {
	var zero T
	if v == zero {
		return def
	}
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	c.fail(path, msg, v)
	return v
}

// globals compiles the spec's global settings into cfg.
func (c *compiler) globals(cfg *Config) globals {
	s := c.spec
	for _, f := range []struct {
		path, v, def string
		dst          *string
		allowed      []string
		msg          string
	}{
		{"mode", s.Mode, ModeProxy, &cfg.Mode, []string{ModeProxy, ModeForwardAuth}, "%q is not a mode: use proxy or forwardAuth"},
		{"forwardAuth", s.ForwardAuth, ForwardAuthSettleFirst, &cfg.ForwardAuth, []string{ForwardAuthVerifyOnly, ForwardAuthSettleFirst}, "%q: use verify-only or settle-first"},
		{"unmatched", s.Unmatched, UnmatchedDeny, &cfg.Unmatched, []string{UnmatchedFree, UnmatchedDeny}, "%q: use free (pass unmatched paths through) or deny (404)"},
	} {
		*f.dst = oneOf(c, f.path, f.v, f.def, f.allowed, f.msg)
	}

	c.facilitators(cfg)
	cfg.FacilitatorTimeout = DefaultFacilitatorTimeout
	if s.FacilitatorTimeout != "" {
		d, err := time.ParseDuration(s.FacilitatorTimeout)
		if err != nil || d <= 0 {
			c.fail("facilitatorTimeout", "%q is not a positive duration such as 30s", s.FacilitatorTimeout)
		} else {
			cfg.FacilitatorTimeout = d
		}
	}
	if s.Upstream != "" {
		cfg.Upstream = c.upstreamURL("upstream", s.Upstream)
	}
	cfg.MaxResponseBytes = s.MaxResponseBytes
	if cfg.MaxResponseBytes == 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	} else if cfg.MaxResponseBytes < 0 {
		c.fail("maxResponseBytes", "must be positive")
	}
	cfg.ChallengeVersion = oneOf(c, "challengeVersion", s.ChallengeVersion, x402.Version2, []int{x402.Version1, x402.Version2}, "%d: use 1 or 2")
	if s.MaxTimeoutSeconds < 0 {
		c.fail("maxTimeoutSeconds", "must be positive")
	}

	var g globals
	g.payToRaw = s.PayTo
	payToPath := "payTo"
	if s.Wallet != "" {
		if g.payToRaw != "" && !strings.EqualFold(g.payToRaw, s.Wallet) {
			c.fail("wallet", "differs from payTo; give only one of them")
		}
		if g.payToRaw == "" {
			g.payToRaw, payToPath = s.Wallet, "wallet"
		}
	}
	if g.payToRaw != "" {
		g.payTo, g.havePayTo = c.address(payToPath, g.payToRaw)
	}

	if s.Chain != "" {
		ch, err := c.reg.Chain(s.Chain)
		if err != nil {
			c.fail("chain", "%v", err)
		} else {
			cfg.Chain, g.haveChain = ch, true
		}
	}
	g.namespace = s.OfferNamespace
	if g.namespace == "" {
		g.namespace = DefaultOfferNamespace
	} else if err := checkDNSLabel(g.namespace); err != nil {
		c.fail("offerNamespace", "%v", err)
	}
	return g
}

// route compiles routes[i] (path p) against the globals; its offer is
// filled in by offer. patterns records the patterns seen so far.
func (c *compiler) route(p string, i int, rs *RouteSpec, cfg *Config, g globals, patterns map[string]int) *Route {
	s := c.spec
	r := &Route{Description: rs.Description, MimeType: rs.MimeType, StripPrefix: rs.StripPrefix}

	pat, err := ParsePattern(rs.Pattern)
	if err != nil {
		c.fail(p+".pattern", "%v", err)
	} else if j, dup := patterns[rs.Pattern]; dup {
		c.fail(p+".pattern", "%q is already routes[%d]; the first match wins, so this route would never be used", rs.Pattern, j)
	} else {
		patterns[rs.Pattern] = i
	}
	r.Pattern = pat

	// Chain: the route's network or the global chain.
	chainOK := false
	switch {
	case rs.Network != "":
		ch, err := c.reg.Chain(rs.Network)
		if err != nil {
			c.fail(p+".network", "%v", err)
		} else {
			r.Chain, chainOK = ch, true
		}
	case g.haveChain:
		r.Chain, chainOK = cfg.Chain, true
	case s.Chain == "":
		c.fail(p+".network", "no chain: set the global chain or this route's network (e.g. base-sepolia or eip155:84532)")
	}

	switch {
	case rs.PayTo != "":
		r.PayTo, _ = c.address(p+".payTo", rs.PayTo)
	case g.havePayTo:
		r.PayTo = g.payTo
	case g.payToRaw == "":
		c.fail(p+".payTo", "no payTo: set the global payTo (your wallet address) or this route's payTo")
	}

	// Token: the route's asset, else the global asset for routes on
	// the global chain, else the chain's USDC.
	if chainOK {
		asset, assetPath := rs.Asset, p+".asset"
		if asset == nil && (!g.haveChain || r.Chain.CAIP2 == cfg.Chain.CAIP2) {
			asset, assetPath = s.Asset, "asset"
		}
		if tok, ok := c.token(assetPath, r.Chain, asset); ok {
			r.Token = tok
			r.Price = strings.TrimSpace(rs.Price)
			if rs.Price == "" {
				c.fail(p+".price", "missing: a decimal amount of %s such as \"0.001\" (or \"0\" for a free route)", tok.Symbol)
			} else if amt, err := evm.ParseAmount(rs.Price, tok.Decimals); err != nil {
				c.fail(p+".price", "%v", err)
			} else {
				r.Amount = amt
				r.amountStr = amt.String()
				r.Free = amt.Sign() == 0
			}
		}
	}

	r.MaxTimeout = rs.MaxTimeoutSeconds
	switch {
	case rs.MaxTimeoutSeconds < 0:
		c.fail(p+".maxTimeoutSeconds", "must be positive")
	case rs.MaxTimeoutSeconds == 0 && s.MaxTimeoutSeconds > 0:
		r.MaxTimeout = s.MaxTimeoutSeconds
	case rs.MaxTimeoutSeconds == 0:
		r.MaxTimeout = DefaultMaxTimeoutSeconds
	}

	if rs.Upstream != "" {
		r.Upstream = c.upstreamURL(p+".upstream", rs.Upstream)
	} else {
		r.Upstream = cfg.Upstream
	}
	if rs.Upstream == "" && s.Upstream == "" && cfg.Mode == ModeProxy {
		c.fail(p+".upstream", "missing: proxy mode forwards paid requests; set this route's upstream or the global upstream (or use mode: forwardAuth)")
	} else if rs.StripPrefix && rs.Upstream == "" && s.Upstream == "" {
		c.fail(p+".stripPrefix", "set but the route has no upstream")
	}
	if a := rs.UpstreamAuth; a != nil {
		r.authHeader, r.authValue = c.upstreamAuth(p+".upstreamAuth", a)
	}
	r.Discovery, r.disc = c.discovery(p, rs.Discovery, r.MimeType)
	if rs.UpstreamTimeout != "" {
		d, err := time.ParseDuration(rs.UpstreamTimeout)
		if err != nil || d <= 0 {
			c.fail(p+".upstreamTimeout", "%q is not a positive duration such as 30s", rs.UpstreamTimeout)
		} else {
			r.UpstreamTimeout = d
		}
	}
	switch rs.Settle {
	case "", SettleAfterResponse:
	case SettleOnHeaders:
		r.SettleOnHeaders = true
	default:
		c.fail(p+".settle", "%q: use after-response (settle after the whole answer, the default) or on-headers (settle when the upstream's headers arrive, then stream)", rs.Settle)
	}
	r.assetHex, r.payToHex = r.Token.Address.Hex(), r.PayTo.Hex() // EIP-55 checksums hash: once, not per request
	return r
}

// offerNames records the offer names given so far: explicit ones, and
// those derived from a pattern (with the route that derived them).
type offerNames struct {
	explicit map[Offer]bool
	derived  map[Offer]string
}

// offer names the offer route rs (path p) belongs to: its own namespace
// and name, else the global namespace and a name derived from its pattern.
// Two routes may share an offer only by naming it explicitly.
func (c *compiler) offer(p string, rs *RouteSpec, globalNS string, names *offerNames) Offer {
	ns := rs.OfferNamespace
	if ns == "" {
		ns = globalNS
	} else if err := checkDNSLabel(ns); err != nil {
		c.fail(p+".offerNamespace", "%v", err)
	}
	name := rs.OfferName
	if name == "" {
		name = offerNameFromPattern(rs.Pattern)
		o := Offer{ns, name}
		if other, dup := names.derived[o]; dup || names.explicit[o] {
			if !dup {
				other = "an explicit offerName"
			}
			c.fail(p+".offerName", "the name derived from the pattern, %q, is also used by %s: set offerName", name, other)
		}
		names.derived[o] = p
	} else {
		if err := checkDNSLabel(name); err != nil {
			c.fail(p+".offerName", "%v", err)
		}
		o := Offer{ns, name}
		if other, dup := names.derived[o]; dup {
			c.fail(p+".offerName", "%q is also the name derived from %s's pattern: pick another", name, other)
		}
		names.explicit[o] = true
	}
	return Offer{Namespace: ns, Name: name}
}

// offersOnOneChain checks that an offer spanning several routes (explicit
// offerName) charges on one chain, or its series would be split oddly.
func (c *compiler) offersOnOneChain(cfg *Config) {
	chains := map[Offer]string{}
	for i, r := range cfg.Routes {
		if r.Chain.CAIP2 == "" {
			continue
		}
		if ch, ok := chains[r.Offer]; ok && ch != r.Chain.CAIP2 {
			c.fail(fmt.Sprintf("routes[%d].offerName", i), "offer %s/%s is already sold on %s by an earlier route; one offer charges on one chain", r.Offer.Namespace, r.Offer.Name, ch)
		}
		chains[r.Offer] = r.Chain.CAIP2
	}
}

func (c *compiler) address(path, s string) (common.Address, bool) {
	a, err := evm.ParsePayTo(s)
	if err != nil {
		c.fail(path, "%v", err)
		return a, false
	}
	return a, true
}

func (c *compiler) token(path string, ch evm.Chain, a *AssetSpec) (evm.Token, bool) {
	if a == nil {
		t, err := c.reg.Token(ch.CAIP2, "")
		if err != nil {
			c.fail(path, "%v", err)
			return t, false
		}
		return t, true
	}
	var t evm.Token
	switch {
	case a.Address != "":
		addr, ok := c.address(path+".address", a.Address)
		if !ok {
			return t, false
		}
		known, err := c.reg.Token(ch.CAIP2, addr.Hex())
		if err == nil {
			t = known
		} else {
			t = evm.Token{Chain: ch.CAIP2, Address: addr, Symbol: a.Symbol, TransferMethod: x402.TransferMethodEIP3009}
			if ch.Dev {
				// obol's own dev token unless told otherwise.
				t.Decimals, t.EIP712Name, t.EIP712Version = 6, evm.DevTokenName, evm.DevTokenVersion
				if t.Symbol == "" {
					t.Symbol = evm.DevTokenSymbol
				}
			} else {
				var missing []string
				if a.Decimals == nil {
					missing = append(missing, "decimals")
				}
				if a.EIP712Name == "" {
					missing = append(missing, "eip712Name")
				}
				if a.EIP712Version == "" {
					missing = append(missing, "eip712Version")
				}
				if len(missing) > 0 {
					c.fail(path, "token %s is not known on %s: give %s (a wrong EIP-712 name makes every signature fail)", addr.Hex(), ch.Name, strings.Join(missing, ", "))
					return t, false
				}
			}
		}
	case a.Symbol != "":
		known, err := c.reg.Token(ch.CAIP2, a.Symbol)
		if err != nil {
			c.fail(path+".symbol", "%v; give the token's address, decimals, eip712Name and eip712Version", err)
			return t, false
		}
		t = known
	default:
		known, err := c.reg.Token(ch.CAIP2, "")
		if err != nil {
			c.fail(path, "%v", err)
			return t, false
		}
		t = known
	}
	if a.Symbol != "" {
		t.Symbol = a.Symbol
	}
	if a.Decimals != nil {
		if *a.Decimals < 0 || *a.Decimals > 36 {
			c.fail(path+".decimals", "%d is out of range 0..36", *a.Decimals)
			return t, false
		}
		t.Decimals = uint8(*a.Decimals)
	}
	if a.EIP712Name != "" {
		t.EIP712Name = a.EIP712Name
	}
	if a.EIP712Version != "" {
		t.EIP712Version = a.EIP712Version
	}
	return t, true
}

func (c *compiler) upstreamURL(path, raw string) *url.URL {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		c.fail(path, "%q is not an http(s) URL such as http://weather.default.svc:8080", raw)
		return nil
	}
	if u.RawQuery != "" || u.Fragment != "" {
		c.fail(path, "%q: an upstream URL takes no query or fragment", raw)
		return nil
	}
	return u
}

func (c *compiler) upstreamAuth(path string, a *UpstreamAuthSpec) (string, string) {
	h := strings.TrimSpace(a.Header)
	if h == "" {
		c.fail(path+".header", "missing: the header to send upstream, e.g. Authorization")
		return "", ""
	}
	if !validHeaderName(h) {
		c.fail(path+".header", "%q is not a valid header name", h)
		return "", ""
	}
	switch {
	case a.ValueFromEnv != "" && a.ValueFromFile != "":
		c.fail(path, "give valueFromEnv or valueFromFile, not both")
	case a.ValueFromEnv != "":
		v := c.env.Getenv(a.ValueFromEnv)
		if v == "" {
			c.fail(path+".valueFromEnv", "environment variable %s is empty or not set", a.ValueFromEnv)
			return "", ""
		}
		return http.CanonicalHeaderKey(h), v
	case a.ValueFromFile != "":
		b, err := c.env.ReadFile(a.ValueFromFile)
		if err != nil {
			c.fail(path+".valueFromFile", "cannot read %s: %v", a.ValueFromFile, errors.Unwrap(err))
			return "", ""
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			c.fail(path+".valueFromFile", "%s is empty", a.ValueFromFile)
			return "", ""
		}
		return http.CanonicalHeaderKey(h), v
	default:
		c.fail(path, "give valueFromEnv or valueFromFile (secrets are never written inline)")
	}
	return "", ""
}

func validHeaderName(h string) bool {
	for i := 0; i < len(h); i++ {
		ch := h[i]
		if !(ch == '-' || ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z') {
			return false
		}
	}
	return h != ""
}

// checkFacilitatorURL allows https anywhere and http only on loopback.
func checkFacilitatorURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not a URL", raw)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if isLoopback(u.Hostname()) {
			return nil
		}
		return fmt.Errorf("%q uses http on a non-loopback host: payments would travel in clear; use https (http is allowed only for localhost/127.0.0.1/::1)", raw)
	}
	return fmt.Errorf("%q: scheme must be https (or http on loopback)", raw)
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func checkDNSLabel(s string) error {
	if len(s) > 63 {
		return fmt.Errorf("%q is longer than 63 characters", s)
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		ok := ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || (ch == '-' && i > 0 && i < len(s)-1)
		if !ok {
			return fmt.Errorf("%q is not a DNS label (lower-case letters, digits and inner dashes, like a Kubernetes name)", s)
		}
	}
	return nil
}

// Summary is a log-friendly description of the routes (no secrets).
func (c *Config) Summary() []string {
	out := make([]string, 0, len(c.Routes))
	for _, r := range c.Routes {
		price := r.Price + " " + r.Token.Symbol
		if r.Free {
			price = "free"
		}
		out = append(out, fmt.Sprintf("%s → %s/%s %s on %s", r.Pattern, r.Offer.Namespace, r.Offer.Name, price, r.Chain.CAIP2))
	}
	return out
}

// offers returns the offers the config serves, in the order of their
// first route, with their chain and the assets they charge in.
func (c *Config) offers() []servedOffer {
	idx := make(map[Offer]int, len(c.Routes))
	out := make([]servedOffer, 0, len(c.Routes))
	for _, r := range c.Routes {
		i, ok := idx[r.Offer]
		if !ok {
			i = len(out)
			idx[r.Offer] = i
			out = append(out, servedOffer{Offer: r.Offer, Chain: r.Chain.CAIP2})
		}
		if !r.Free {
			so, a := &out[i], r.asset()
			if !slices.Contains(so.Assets, a) {
				so.Assets = append(so.Assets, a)
			}
		}
	}
	return out
}

type servedOffer struct {
	Offer
	Chain  string
	Assets []string
}
