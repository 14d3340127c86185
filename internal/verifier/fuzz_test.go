package verifier

import (
	"os"
	"testing"

	"github.com/obolstack/obol/internal/evm"
)

// Any pricing file either compiles or yields a ConfigError; never a panic.
func FuzzParseAndCompile(f *testing.F) {
	if b, err := os.ReadFile("../../docs/examples/pricing.yaml"); err == nil {
		f.Add(string(b))
	}
	f.Add(validHead + "routes:\n  - {pattern: /a/*/c, price: \"0.5\", offerName: x}\n")
	f.Add("routes: &a [*a]\n")
	f.Add("payTo: [1, {a: b}]\nroutes:\n  - pattern: {x: 1}\n")
	reg := evm.NewRegistry()
	f.Fuzz(func(t *testing.T, doc string) {
		cfg, err := ParseAndCompile("f.yaml", []byte(doc), reg, Environment{Getenv: func(string) string { return "" }, ReadFile: func(string) ([]byte, error) { return nil, os.ErrNotExist }})
		if (cfg == nil) == (err == nil) {
			t.Fatalf("want exactly one of config and error: %v %v", cfg, err)
		}
		if cfg != nil {
			for _, r := range cfg.Routes {
				if r.Amount == nil || r.Chain.CAIP2 == "" || (r.Upstream == nil && cfg.Mode == ModeProxy) {
					t.Fatalf("compiled an incomplete route: %+v", r)
				}
			}
		}
	})
}

// A pattern never matches a path that its literal prefix does not start.
func FuzzPatternMatch(f *testing.F) {
	f.Add("/a/*", "/a/b")
	f.Add("/a/*/c", "/a/x/c")
	f.Add("/v*/m", "/v1/m")
	f.Fuzz(func(t *testing.T, pattern, p string) {
		pat, err := ParsePattern(pattern)
		if err != nil {
			return
		}
		clean := cleanRequestPath(p)
		if pat.Match(clean) {
			lit := pat.LiteralPrefix()
			if lit != "/" && clean != lit && !hasSegmentPrefix(clean, lit) {
				t.Fatalf("%q matched %q outside its literal prefix %q", pattern, clean, lit)
			}
		}
	})
}

func hasSegmentPrefix(p, prefix string) bool {
	return len(p) > len(prefix) && p[:len(prefix)] == prefix && p[len(prefix)] == '/'
}
