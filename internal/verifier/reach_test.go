package verifier

import (
	"errors"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/obolstack/obol/internal/evm"
)

const reachHead = `payTo: 0x209693Bc6afc0C5328bA36FaF03C514EF312287C
chain: base-sepolia
facilitatorURL: http://127.0.0.1:4021
upstream: http://127.0.0.1:9000
`

// A free way to an upstream path a priced route serves is refused at load;
// a free route provably apart from every priced path loads.
func TestFreePathsCannotReachPricedContent(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, doc string
		want      string // "" = loads
	}{
		{"unmatched free on the priced upstream", "unmatched: free\nroutes:\n  - {pattern: /joke, price: \"1\"}\n",
			`unmatched: free forwards every path no route matches to http://127.0.0.1:9000, which also serves the priced routes[0] (/joke)`},
		{"unmatched free, localhost spelling", "unmatched: free\nroutes:\n  - {pattern: /joke, price: \"1\", upstream: \"http://LOCALHOST.:9000/\"}\n", "unmatched: free forwards"},
		{"unmatched free, default port", "upstream: https://api.example.com\nunmatched: free\nroutes:\n  - {pattern: /joke, price: \"1\", upstream: \"https://API.example.com:443/v2\"}\n", "unmatched: free forwards"},
		{"unmatched free, priced elsewhere", "unmatched: free\nroutes:\n  - {pattern: /joke, price: \"1\", upstream: \"http://127.0.0.1:9001\"}\n", ""},
		{"unmatched free, another host", "unmatched: free\nroutes:\n  - {pattern: /joke, price: \"1\", upstream: \"http://jokes.internal:9000\"}\n", ""},
		{"unmatched deny (the default)", "routes:\n  - {pattern: /joke, price: \"1\"}\n", ""},
		{"forwardAuth sees no upstream", "mode: forwardAuth\nunmatched: free\nroutes:\n  - {pattern: /joke, price: \"1\"}\n", ""},

		{"free path under a stripped prefix", "routes:\n  - {pattern: /weather/*, price: \"1\", stripPrefix: true}\n  - {pattern: /status, price: \"0\"}\n",
			`routes[1]: free route /status can reach http://127.0.0.1:9000/status, which the priced routes[0] (/weather/*) also serves, since its stripPrefix maps /weather onto the upstream's root`},
		{"stripped prefix on its own base path", "routes:\n  - {pattern: /weather/*, price: \"1\", stripPrefix: true, upstream: \"http://127.0.0.1:9000/w\"}\n  - {pattern: /status, price: \"0\"}\n", ""},
		{"free prefix route stripped", "routes:\n  - {pattern: /joke, price: \"1\"}\n  - {pattern: /free/*, price: \"0\", stripPrefix: true}\n", "routes[1]: free route /free/* can reach http://127.0.0.1:9000/joke"},
		{"free catch-all", "routes:\n  - {pattern: /joke, price: \"1\"}\n  - {pattern: /*, price: \"0\"}\n", "routes[1]: free route /* can reach"},
		{"free prefix covers a priced path", "routes:\n  - {pattern: /a/b, price: \"1\"}\n  - {pattern: /a/*, price: \"0\"}\n", "can reach http://127.0.0.1:9000/a/b"},
		{"case", "routes:\n  - {pattern: /joke, price: \"1\"}\n  - {pattern: /JOKE, price: \"0\", offerName: free}\n", "free route /JOKE can reach http://127.0.0.1:9000/JOKE, which the priced routes[0] (/joke) also serves as /joke (an upstream may ignore case"},
		{"matrix parameter", "routes:\n  - {pattern: /joke, price: \"1\"}\n  - {pattern: /joke;v=1, price: \"0\"}\n", "free route /joke;v=1 can reach"},
		{"trailing dot", "routes:\n  - {pattern: /joke, price: \"1\"}\n  - {pattern: /joke., price: \"0\", offerName: free}\n", "free route /joke. can reach"},
		{"percent spelling", "routes:\n  - {pattern: /joke, price: \"1\"}\n  - {pattern: /j%6Fke, price: \"0\"}\n", "free route /j%6Fke can reach"},
		{"glob", "routes:\n  - {pattern: /v*/infer, price: \"1\"}\n  - {pattern: /v1/infer, price: \"0\"}\n", "free route /v1/infer can reach"},
		{"upstream base path", "routes:\n  - {pattern: /paid/*, price: \"1\", stripPrefix: true, upstream: \"http://127.0.0.1:9000/api\"}\n  - {pattern: /api/docs, price: \"0\"}\n", "free route /api/docs can reach http://127.0.0.1:9000/api/docs"},
		{"free on another port", "routes:\n  - {pattern: /weather/*, price: \"1\", stripPrefix: true}\n  - {pattern: /status, price: \"0\", upstream: \"http://127.0.0.1:9001\"}\n", ""},
		{"exact free root beside exact priced paths", "routes:\n  - {pattern: /weather, price: \"1\"}\n  - {pattern: /joke, price: \"1\"}\n  - {pattern: /, price: \"0\"}\n", ""},
		{"exact free root beside a stripped prefix", "routes:\n  - {pattern: /weather/*, price: \"1\", stripPrefix: true}\n  - {pattern: /, price: \"0\"}\n", "free route / can reach http://127.0.0.1:9000/"},
		{"free carve-out before a priced catch-all", "routes:\n  - {pattern: /health, price: \"0\"}\n  - {pattern: /*, price: \"1\"}\n", ""},
		{"free carve-out before a priced glob", "routes:\n  - {pattern: /v1/docs/*, price: \"0\"}\n  - {pattern: /v*/docs/*, price: \"1\"}\n", ""},
		{"free route after the priced catch-all", "routes:\n  - {pattern: /*, price: \"1\"}\n  - {pattern: /health, price: \"0\"}\n", "free route /health can reach"},
		{"carve-out stripped differently", "routes:\n  - {pattern: /api/health, price: \"0\"}\n  - {pattern: /api/*, price: \"1\", stripPrefix: true}\n", "free route /api/health can reach"},
		{"carve-out on another base path", "routes:\n  - {pattern: /health, price: \"0\"}\n  - {pattern: /*, price: \"1\", upstream: \"http://127.0.0.1:9000/\"}\n", "free route /health can reach"},
		{"disjoint prefixes", "routes:\n  - {pattern: /weather/*, price: \"1\"}\n  - {pattern: /public/*, price: \"0\"}\n", ""},
	}
	reg := evm.NewRegistry()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			head := reachHead
			if strings.HasPrefix(tc.doc, "upstream:") {
				head = strings.Replace(head, "upstream: http://127.0.0.1:9000\n", "", 1)
			}
			_, err := ParseAndCompile("pricing.yaml", []byte(head+tc.doc), reg, Environment{})
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused a safe config: %v", err)
			case tc.want != "" && err == nil:
				t.Fatal("loaded an unsafe config")
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error does not say %q:\n%v", tc.want, err)
			}
			var ce *ConfigError
			if err != nil && (!errors.As(err, &ce) || len(ce.Errors) != 1) {
				t.Fatalf("want one problem: %v", err)
			}
		})
	}
}

func TestUpstreamKey(t *testing.T) {
	t.Parallel()
	same := [][]string{
		{"http://127.0.0.1", "http://localhost:80", "http://LOCALHOST./x", "http://[::1]:80", "http://127.1.2.3", "http://0.0.0.0:80"},
		{"https://api.example.com", "https://API.example.com.:443/v1"},
	}
	for _, group := range same {
		for _, raw := range group[1:] {
			a, _ := url.Parse(group[0])
			b, _ := url.Parse(raw)
			if upstreamKey(a) != upstreamKey(b) {
				t.Errorf("%s and %s are one upstream: %s vs %s", group[0], raw, upstreamKey(a), upstreamKey(b))
			}
		}
	}
	for _, pair := range [][2]string{{"http://127.0.0.1:9000", "http://127.0.0.1:9001"}, {"http://a.example", "https://a.example"}, {"http://a.example", "http://b.example"}} {
		a, _ := url.Parse(pair[0])
		b, _ := url.Parse(pair[1])
		if upstreamKey(a) == upstreamKey(b) {
			t.Errorf("%s and %s are different upstreams", pair[0], pair[1])
		}
	}
}

// docs/verifier.md shows an unsafe pricing file and the refusal `obol
// verifier serve` prints for it: the file must be refused with exactly that.
func TestDocsUnsafeExampleIsRefusedAsShown(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../docs/verifier.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	_, rest, ok := strings.Cut(doc, "For this `unsafe.yaml`:\n\n```yaml\n")
	if !ok {
		t.Fatal("docs/verifier.md no longer shows unsafe.yaml")
	}
	file, rest, _ := strings.Cut(rest, "```\n")
	_, rest, _ = strings.Cut(rest, "$ obol verifier serve --config unsafe.yaml\n")
	shown, _, _ := strings.Cut(rest, "\nfix the pricing file and start again\n")
	_, err = ParseAndCompile("unsafe.yaml", []byte(file), evm.NewRegistry(), Environment{})
	if err == nil {
		t.Fatal("the documented unsafe file loads")
	}
	if got := "Error: " + err.Error(); got != shown {
		t.Fatalf("docs/verifier.md shows\n%s\nbut the verifier says\n%s", shown, got)
	}
}
