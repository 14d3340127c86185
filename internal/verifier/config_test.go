package verifier

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/obolstack/obol/internal/evm"
)

func compileErr(t *testing.T, doc string) *ConfigError {
	t.Helper()
	spec, err := ParseSpec("pricing.yaml", []byte(doc))
	if err == nil {
		_, err = Compile(spec, evm.NewRegistry(), Environment{Getenv: func(string) string { return "" }})
	}
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("want a ConfigError, got %v", err)
	}
	return ce
}

const validHead = `payTo: 0x209693Bc6afc0C5328bA36FaF03C514EF312287C
chain: base-sepolia
facilitatorURL: http://127.0.0.1:4021
upstream: http://127.0.0.1:9999
`

func TestConfigErrorsNameFileLineAndField(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, doc, want string
	}{
		{"unknown field", validHead + "routes:\n  - pattern: /a\n    pricee: \"1\"\n", "pricing.yaml:7:5: routes[0].pricee: unknown field"},
		{"too many decimals", validHead + "routes:\n  - pattern: /a\n    price: 0.0000001\n", "pricing.yaml:7:12: routes[0].price: invalid amount \"0.0000001\": more than 6 decimal places"},
		{"unknown chain", strings.Replace(validHead, "base-sepolia", "base-sepolio", 1) + "routes:\n  - {pattern: /a, price: \"1\"}\n", "pricing.yaml:2:8: chain: unknown chain \"base-sepolio\""},
		{"bad payTo", strings.Replace(validHead, "0x209693Bc6afc0C5328bA36FaF03C514EF312287C", "0x1234", 1) + "routes:\n  - {pattern: /a, price: \"1\"}\n", "pricing.yaml:1:8: payTo: \"0x1234\" is not an address"},
		{"bad checksum", strings.Replace(validHead, "0x209693Bc", "0x209693BC", 1) + "routes:\n  - {pattern: /a, price: \"1\"}\n", "pricing.yaml:1:8: payTo: \"0x209693BC6afc0C5328bA36FaF03C514EF312287C\" fails its EIP-55 checksum"},
		{"http facilitator", strings.Replace(validHead, "http://127.0.0.1:4021", "http://facilitator.example.com", 1) + "routes:\n  - {pattern: /a, price: \"1\"}\n", "pricing.yaml:3:17: facilitatorURL: \"http://facilitator.example.com\" uses http on a non-loopback host"},
		{"route network", validHead + "routes:\n  - {pattern: /a, price: \"1\", network: nope}\n", "routes[0].network: unknown chain \"nope\""},
		{"bad pattern", validHead + "routes:\n  - {pattern: a/b, price: \"1\"}\n", "routes[0].pattern: \"a/b\" must start with /"},
		{"unclean pattern", validHead + "routes:\n  - {pattern: /a/../b, price: \"1\"}\n", "is not a clean path"},
		{"duplicate pattern", validHead + "routes:\n  - {pattern: /a, price: \"1\"}\n  - {pattern: /a, price: \"2\"}\n", "routes[1].pattern: \"/a\" is already routes[0]"},
		{"missing price", validHead + "routes:\n  - {pattern: /a}\n", "routes[0].price: missing"},
		{"negative price", validHead + "routes:\n  - {pattern: /a, price: \"-1\"}\n", "must not be negative"},
		{"no routes", validHead, "routes: no routes"},
		{"bad mode", validHead + "mode: sidecar\nroutes:\n  - {pattern: /a, price: \"1\"}\n", "pricing.yaml:5:7: mode: \"sidecar\" is not a mode"},
		{"bad forwardAuth", validHead + "forwardAuth: maybe\nroutes:\n  - {pattern: /a, price: \"1\"}\n", "forwardAuth: \"maybe\": use verify-only or settle-first"},
		{"bad unmatched", validHead + "unmatched: maybe\nroutes:\n  - {pattern: /a, price: \"1\"}\n", "pricing.yaml:5:12: unmatched: \"maybe\": use free (pass unmatched paths through) or deny (404)"},
		{"bad challengeVersion", validHead + "challengeVersion: 3\nroutes:\n  - {pattern: /a, price: \"1\"}\n", "pricing.yaml:5:19: challengeVersion: 3: use 1 or 2"},
		{"wrong type", validHead + "maxTimeoutSeconds: soon\nroutes:\n  - {pattern: /a, price: \"1\"}\n", "pricing.yaml:5:20: maxTimeoutSeconds: want an integer"},
		{"list for string", validHead + "routes:\n  - pattern: [/a]\n    price: \"1\"\n", "routes[0].pattern: want a string, got a list"},
		{"env unset", validHead + "routes:\n  - pattern: /a\n    price: \"1\"\n    upstreamAuth: {header: Authorization, valueFromEnv: NOPE}\n", "routes[0].upstreamAuth.valueFromEnv: environment variable NOPE is empty or not set"},
		{"inline secret refused", validHead + "routes:\n  - pattern: /a\n    price: \"1\"\n    upstreamAuth: {header: Authorization}\n", "give valueFromEnv or valueFromFile"},
		{"no upstream in proxy", strings.Replace(validHead, "upstream: http://127.0.0.1:9999\n", "", 1) + "routes:\n  - {pattern: /a, price: \"1\"}\n", "routes[0].upstream: missing: proxy mode forwards paid requests"},
		{"unknown asset", validHead + "routes:\n  - pattern: /a\n    price: \"1\"\n    asset: {address: 0x1111111111111111111111111111111111111111}\n", "is not known on base-sepolia: give decimals, eip712Name, eip712Version"},
		{"derived name clash", validHead + "routes:\n  - {pattern: /a/b, price: \"1\"}\n  - {pattern: /a/b/*, price: \"1\"}\n", "routes[1].offerName: the name derived from the pattern, \"a-b\", is also used by routes[0]"},
		{"bad offer name", validHead + "routes:\n  - {pattern: /a, price: \"1\", offerName: Weather_API}\n", "routes[0].offerName: \"Weather_API\" is not a DNS label"},
		{"not yaml", "routes: [", "not valid YAML"},
		{"empty", "", "the file is empty"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ce := compileErr(t, tc.doc)
			if !strings.Contains(ce.Error(), tc.want) {
				t.Fatalf("error does not contain %q:\n%s", tc.want, ce.Error())
			}
		})
	}
}

func TestConfigReportsEveryProblem(t *testing.T) {
	t.Parallel()
	ce := compileErr(t, `payTo: nope
chain: nope
facilitatorURL: ftp://x
routes:
  - {pattern: /a, price: "abc"}
`)
	if len(ce.Errors) < 3 {
		t.Fatalf("want every problem reported, got %d:\n%s", len(ce.Errors), ce)
	}
	if !strings.Contains(ce.Error(), "invalid pricing.yaml (") {
		t.Fatalf("header: %s", ce)
	}
}

func TestCompileDefaultsAndInheritance(t *testing.T) {
	t.Parallel()
	reg := evm.NewRegistry()
	cfg := compileYAML(t, reg, validHead+`offerNamespace: shop
routes:
  - pattern: /weather/*
    price: "0.001"
  - pattern: /base/*
    price: "0.5"
    network: eip155:8453
    offerName: base-api
    maxTimeoutSeconds: 30
  - pattern: /free
    price: "0"
  - pattern: /custom
    price: "1.5"
    asset: {address: 0x1111111111111111111111111111111111111111, decimals: 18, eip712Name: Custom, eip712Version: "1"}
    offerNamespace: other
`)
	if cfg.Mode != ModeProxy || cfg.ForwardAuth != ForwardAuthSettleFirst || cfg.Unmatched != UnmatchedDeny || cfg.ChallengeVersion != 2 {
		t.Fatalf("defaults: %+v", cfg)
	}
	w := cfg.Routes[0]
	if w.Chain.CAIP2 != "eip155:84532" || w.Amount.String() != "1000" || w.MaxTimeout != 60 || w.Offer != (Offer{"shop", "weather"}) {
		t.Fatalf("inherited route: chain %s amount %s timeout %d offer %+v", w.Chain.CAIP2, w.Amount, w.MaxTimeout, w.Offer)
	}
	if w.Token.Address.Hex() != testUSDC || w.Token.EIP712Name != "USDC" {
		t.Fatalf("token %+v", w.Token)
	}
	b := cfg.Routes[1]
	if b.Chain.CAIP2 != "eip155:8453" || b.Token.EIP712Name != "USD Coin" || b.MaxTimeout != 30 || b.Amount.String() != "500000" {
		t.Fatalf("base route: %+v", b)
	}
	if !cfg.Routes[2].Free || cfg.Routes[2].Offer.Name != "free" {
		t.Fatalf("free route: %+v", cfg.Routes[2])
	}
	c := cfg.Routes[3]
	if c.Amount.String() != "1500000000000000000" || c.Token.Decimals != 18 || c.Offer != (Offer{"other", "custom"}) {
		t.Fatalf("custom asset route: %+v", c)
	}
	req := w.Requirement("http://h/weather/x")
	if req.Network != "eip155:84532" || req.NetworkV1 != "base-sepolia" || req.Amount != "1000" || req.PayTo != testPayTo || req.Extra.Name != "USDC" || req.Extra.Version != "2" {
		t.Fatalf("requirement: %+v", req)
	}
}

func TestCompileKeepsExplicitEnumValues(t *testing.T) {
	t.Parallel()
	cfg := compileYAML(t, evm.NewRegistry(), validHead+`mode: forwardAuth
forwardAuth: verify-only
unmatched: deny
challengeVersion: 1
routes:
  - {pattern: /a, price: "1"}
`)
	if cfg.Mode != ModeForwardAuth || cfg.ForwardAuth != ForwardAuthVerifyOnly || cfg.Unmatched != UnmatchedDeny || cfg.ChallengeVersion != 1 {
		t.Fatalf("explicit values: mode %q forwardAuth %q unmatched %q challengeVersion %d", cfg.Mode, cfg.ForwardAuth, cfg.Unmatched, cfg.ChallengeVersion)
	}
}

func TestCompileDevChainAsset(t *testing.T) {
	t.Parallel()
	reg := evm.NewRegistry()
	doc := `payTo: 0x209693Bc6afc0C5328bA36FaF03C514EF312287C
chain: obol-dev
facilitatorURL: http://localhost:4021
mode: forwardAuth
asset: {address: 0x5FbDB2315678afecb367f032d93F642f64180aa3}
routes:
  - {pattern: /x, price: "0.01"}
`
	cfg := compileYAML(t, reg, doc)
	r := cfg.Routes[0]
	if r.Chain.CAIP2 != "eip155:1337" || r.Token.Decimals != 6 || r.Token.EIP712Name != "USDC" || r.Amount.String() != "10000" {
		t.Fatalf("dev route: %+v", r)
	}
	// Without an asset, the dev chain charges in the token every default
	// dev chain deploys (a cluster devnet leaves no stack file behind).
	cfg = compileYAML(t, reg, strings.Replace(doc, "asset: {address: 0x5FbDB2315678afecb367f032d93F642f64180aa3}\n", "", 1))
	if got := cfg.Routes[0].Token.Address.Hex(); got != evm.DevTokenAddress {
		t.Fatalf("dev route without an asset charges in %s, want the default dev token %s", got, evm.DevTokenAddress)
	}
}

func TestUpstreamAuthFromFile(t *testing.T) {
	t.Parallel()
	spec, err := ParseSpec("p.yaml", []byte(validHead+`routes:
  - pattern: /a
    price: "1"
    upstreamAuth: {header: x-api-key, valueFromFile: /secret/key}
`))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Compile(spec, evm.NewRegistry(), Environment{ReadFile: func(p string) ([]byte, error) {
		if p == "/secret/key" {
			return []byte("k3y\n"), nil
		}
		return nil, errors.New("no")
	}})
	if err != nil {
		t.Fatal(err)
	}
	r := cfg.Routes[0]
	if r.authHeader != "X-Api-Key" || r.authValue != "k3y" || !r.HasUpstreamAuth() {
		t.Fatalf("auth %q=%q", r.authHeader, r.authValue)
	}
	for _, line := range cfg.Summary() {
		if strings.Contains(line, "k3y") {
			t.Fatal("summary leaks the secret")
		}
	}
}

func TestPatterns(t *testing.T) {
	t.Parallel()
	cases := []struct {
		pattern string
		yes     []string
		no      []string
	}{
		{"/a/b", []string{"/a/b"}, []string{"/a", "/a/b/c", "/a/bc", "/"}},
		{"/a/*", []string{"/a", "/a/", "/a/b", "/a/b/c"}, []string{"/ab", "/b/a", "/"}},
		{"/a/*/c", []string{"/a/x/c", "/a/y/c"}, []string{"/a/c", "/a/x/y/c", "/a/x/c/d"}},
		{"/a/*/c/*", []string{"/a/x/c", "/a/x/c/d/e"}, []string{"/a/c"}},
		{"/v*/models", []string{"/v1/models", "/v2/models"}, []string{"/x1/models"}},
		{"/*", []string{"/", "/a", "/a/b"}, nil},
		{"/", []string{"/"}, []string{"/a"}},
	}
	for _, tc := range cases {
		p, err := ParsePattern(tc.pattern)
		if err != nil {
			t.Fatalf("%s: %v", tc.pattern, err)
		}
		for _, y := range tc.yes {
			if !p.Match(cleanRequestPath(y)) {
				t.Errorf("%s should match %s", tc.pattern, y)
			}
		}
		for _, n := range tc.no {
			if p.Match(cleanRequestPath(n)) {
				t.Errorf("%s should not match %s", tc.pattern, n)
			}
		}
	}
	for _, bad := range []string{"", "a", "/a?b", "/a//b", "/a/**", "/a/[b"} {
		if _, err := ParsePattern(bad); err == nil {
			t.Errorf("pattern %q accepted", bad)
		}
	}
	if got := cleanRequestPath("/paid/../paid//x/"); got != "/paid/x/" {
		t.Errorf("clean: %s", got)
	}
	if got := stripPrefix("/a/b/c", "/a/b"); got != "/c" {
		t.Errorf("strip: %s", got)
	}
	if got := stripPrefix("/a/b", "/a/b"); got != "/" {
		t.Errorf("strip exact: %s", got)
	}
	if got := offerNameFromPattern("/services/Weather_v2/*"); got != "services-weather-v2" {
		t.Errorf("derived name: %s", got)
	}
}

func TestParseAndCompileReportsDecodeAndValueProblemsTogether(t *testing.T) {
	t.Parallel()
	doc := `payTo: 0x209693Bc6afc0C5328bA36FaF03C514EF312287C
chain: base-sepolia
facilitatorURL: http://facilitator.example.com
upstream: http://127.0.0.1:9000
routes:
  - pattern: /weather/*
    price: 0.0000001
    priceTypo: "1"
    maxTimeoutSeconds: soon
`
	_, err := ParseAndCompile("pricing.yaml", []byte(doc), evm.NewRegistry(), Environment{})
	var ce *ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("want ConfigError, got %v", err)
	}
	want := []string{
		"pricing.yaml:3:17: facilitatorURL:",
		"pricing.yaml:7:12: routes[0].price: invalid amount",
		"pricing.yaml:8:5: routes[0].priceTypo: unknown field",
		"pricing.yaml:9:24: routes[0].maxTimeoutSeconds: want an integer",
	}
	msg := ce.Error()
	last := -1
	for _, w := range want {
		i := strings.Index(msg, w)
		if i < 0 || i < last {
			t.Fatalf("want %q, in line order, in:\n%s", w, msg)
		}
		last = i
	}
	if len(ce.Errors) != len(want) {
		t.Fatalf("want %d problems, got:\n%s", len(want), msg)
	}
}

func TestExamplePricingFileLoads(t *testing.T) {
	t.Parallel()
	cfg, err := LoadFile("../../docs/examples/pricing.yaml", evm.NewRegistry(), Environment{})
	if err != nil {
		t.Fatalf("docs/examples/pricing.yaml must stay valid: %v", err)
	}
	if cfg.Chain.CAIP2 != "eip155:1337" || len(cfg.Routes) != 4 || cfg.Routes[0].Offer != (Offer{"demo", "weather"}) {
		t.Fatalf("example: %+v", cfg)
	}
}

// The shipped example must not give away what it sells: no unpaid request,
// whatever its spelling, reaches an upstream that serves the priced routes,
// except the free /status, which reaches only /status.
func TestExamplePricingFileGivesNothingAway(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../docs/examples/pricing.yaml")
	if err != nil {
		t.Fatal(err)
	}
	up, weather := newUpstream(t), newUpstream(t)
	doc := strings.ReplaceAll(string(raw), "http://127.0.0.1:9000", up.URL)
	doc = strings.ReplaceAll(doc, "http://127.0.0.1:9001", weather.URL)
	g := newGate(t, doc)
	for _, p := range []string{"/today", "/weather/today", "/weather", "/joke", "/JOKE", "/joke;x", "/joke.", "/joke%20", "/Weather/today",
		"//weather/today", "/weather/../today", "/", "/status/../joke", "/status/..;/joke", "/status/%2e%2e/joke", "/Status", "/status;x", "/status/x", "/v1/models/m/infer"} {
		w := g.do(httptest.NewRequest(http.MethodGet, p, nil))
		if w.Code == http.StatusOK {
			t.Errorf("unpaid GET %s: 200 (upstream path %q)", p, w.Header().Get("X-Upstream-Path"))
		}
	}
	if n := up.hits.Load() + weather.hits.Load(); n != 0 {
		t.Fatalf("%d unpaid requests reached an upstream", n)
	}
	for _, p := range []string{"/status", "/status/", "//status"} {
		if w := g.do(httptest.NewRequest(http.MethodGet, p, nil)); w.Code != http.StatusOK || w.Header().Get("X-Upstream-Path") != "/status" && w.Header().Get("X-Upstream-Path") != "/status/" {
			t.Errorf("free GET %s: %d, upstream path %q", p, w.Code, w.Header().Get("X-Upstream-Path"))
		}
	}
	if weather.hits.Load() != 0 {
		t.Fatal("the free route reached the weather upstream")
	}
}
