package verifier

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/obolstack/obol/internal/evm"
)

// Upstreams and path segments the route-set generator picks from: several
// spellings of one loopback server (with and without a path of its own),
// and segments that differ only in case, a ;parameter, a trailing dot or
// an escape.
var (
	fzUpstreams = []string{"http://127.0.0.1:9000", "http://localhost:9000/", "http://127.0.0.1:9000/w", "http://[::1]:9000/api/", "http://127.0.0.1:9001"}
	fzSegments  = []string{"a", "A", "weather", "Weather", "joke", "v1", "v*", "*", "x;y", "a.", "%61", "api", "w", "today", "x", "JOKE"}
	fzVariants  = []func(string) string{
		func(s string) string { return s },
		strings.ToUpper,
		func(s string) string { return s + ";x" },
		func(s string) string { return s + "." },
		func(s string) string { return s + "%20" },
		func(s string) string { return "%" + fmt.Sprintf("%02X", s[0]) + s[1:] },
	}
)

// fuzzSpec builds a pricing spec from bytes: the first byte picks
// unmatched and the global upstream, then three bytes per route (up to 6)
// its pattern, price, stripPrefix and upstream.
func fuzzSpec(b []byte) *Spec {
	spec := &Spec{PayTo: testPayTo, Chain: "base-sepolia", FacilitatorURL: "http://127.0.0.1:4021", Unmatched: UnmatchedDeny, Source: "fuzz"}
	if len(b) == 0 {
		return spec
	}
	if b[0]&1 != 0 {
		spec.Unmatched = UnmatchedFree
	}
	spec.Upstream = fzUpstreams[int(b[0]>>1)%len(fzUpstreams)]
	b = b[1:]
	for i := 0; len(b) >= 3 && i < 6; i, b = i+1, b[3:] {
		n := int(b[0] % 4)
		segs := make([]string, 0, n+1)
		for j, nib := range []byte{b[1] & 15, b[1] >> 4, b[2] & 15} {
			if j < n {
				s := fzSegments[nib]
				if s == "*" && j == n-1 {
					s = "v*" // a trailing "*" is the prefix flag's job
				}
				segs = append(segs, s)
			}
		}
		if b[0]&4 != 0 {
			segs = append(segs, "*")
		}
		rs := RouteSpec{Pattern: "/" + strings.Join(segs, "/"), Price: "1", OfferName: fmt.Sprintf("r%d", i), StripPrefix: b[0]&16 != 0}
		if b[0]&8 != 0 {
			rs.Price = "0"
		}
		if u := int(b[0]>>5) % (len(fzUpstreams) + 1); u > 0 {
			rs.Upstream = fzUpstreams[u-1]
		}
		spec.Routes = append(spec.Routes, rs)
	}
	return spec
}

// fzCanon is the threat model of docs/verifier.md, written out again: an
// upstream decodes the path once, then may ignore case, a ;parameter,
// trailing dots and spaces, a trailing slash, decode once more, take a
// backslash for a slash, and resolve what then reads as a dot segment
// (Tomcat's /..;/).
func fzCanon(escaped string) string {
	var out []string
	for _, seg := range strings.Split(escaped, "/") {
		for i := 0; i < 4; i++ {
			d, err := url.PathUnescape(seg)
			if err != nil || d == seg {
				break
			}
			seg = d
		}
		for _, part := range strings.Split(seg, "\\") {
			part, _, _ = strings.Cut(part, ";")
			part = strings.TrimRight(part, " \t")
			switch {
			case part != "" && strings.Trim(part, ".") == "" && len(part) > 1:
				if len(out) > 0 {
					out = out[:len(out)-1]
				}
			case strings.TrimRight(part, ".") != "":
				out = append(out, strings.ToLower(strings.TrimRight(part, ".")))
			}
		}
	}
	return "/" + strings.Join(out, "/")
}

// sentTo is what one request sent upstream.
type sentTo struct {
	req      string // the request path as sent to the verifier
	key      string // upstreamKey
	escaped  string // the path on the wire
	route    int    // index of the route, -1 for the unmatched fallback
	free     bool
	canon    string
	exactDec string // the path the upstream decodes
}

// recordingTransport answers every upstream request itself and remembers
// the last URL.
type recordingTransport struct {
	mu   sync.Mutex
	last *url.URL
}

func (t *recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.mu.Lock()
	u := *r.URL
	t.last = &u
	t.mu.Unlock()
	return &http.Response{StatusCode: 200, Header: http.Header{}, Body: io.NopCloser(strings.NewReader("ok")), Request: r}, nil
}

func (t *recordingTransport) take() *url.URL {
	t.mu.Lock()
	defer t.mu.Unlock()
	u := t.last
	t.last = nil
	return u
}

// Whatever a free rule sends upstream never equals, in the comparison of
// docs/verifier.md, a path a priced route sends to that upstream: random
// route sets (free and priced, stripPrefix, upstream spellings), random
// request paths (case, ";", %xx, "..", "//", trailing "."), through the
// real matcher and the real proxy rewrite; free requests go through the
// real handler, and priced routes' paths through the rewrite a paid
// request gets. A free carve-out (a free route before the priced route
// covering it) may share the comparison key but never the exact path.
func FuzzFreeNeverReachesPriced(f *testing.F) {
	// Accepted: the example's shape (a stripped /weather/* and /joke on
	// their own upstream, unmatched free), obol dev's (exact priced paths
	// and a free exact /), a free carve-out before a priced catch-all, a
	// stripped route under a base path of its own.
	f.Add([]byte{0x01, 0xb5, 0x02, 0, 0x09, 0x0d, 0, 0xa1, 0x04, 0}, "/today\n/weather/today\n/Weather/x\n/JOKE\n/joke;x")
	f.Add([]byte{0x00, 0x01, 0x02, 0, 0x01, 0x04, 0, 0x08, 0, 0}, "/\n/WEATHER\n/weather/\n/weather.\n//joke")
	f.Add([]byte{0x00, 0x09, 0x0e, 0, 0x04, 0, 0}, "/x\n/X\n/x;y\n/x/\n/y/../x")
	f.Add([]byte{0x00, 0x75, 0x0c, 0, 0x09, 0x0b, 0}, "/api\n/w/api\n/w/w/api\n/API")
	f.Add([]byte{0x00, 0x09 | 0x04, 0x0e, 0, 0x01, 0x04, 0}, "/x/..;/joke\n/x/%2e%2e;/joke\n/x/...;/joke\n/x/a\\..\\..\\joke\n/x/%252e%252e/joke")
	// Refused (the fuzzer mutates them into accepted neighbours).
	f.Add([]byte{0, 0x10 | 0x04 | 1, 0x02, 0, 0x08 | 1, 0x0d, 0}, "/today\n/weather/today\n/Weather/x")
	f.Add([]byte{1, 1, 0x04, 0, 0x08 | 1, 0x0f, 0}, "/JOKE\n/joke;x\n/joke.\n/joke%20")
	f.Add([]byte{2, 0x08 | 1, 0x0e, 0, 0x04, 0, 0}, "/x\n/X\n/x/../x\n//x")
	f.Add([]byte{4, 0x20 | 0x10 | 0x04 | 1, 0x0c, 0, 0x08 | 1, 0x0b, 0}, "/api/x\n/w/today\n/w/x")
	f.Add([]byte{0, 0x08 | 2, 0x22, 0, 0x04 | 1, 0x06, 0}, "/v1/A\n/v1/a\n/v1/a.")
	reg := evm.NewRegistry()
	rec := &recordingTransport{}
	srv, err := New(Options{
		NewFacilitator: func(string) (Facilitator, error) { return &stubFacilitator{}, nil },
		Registry:       reg,
		Transport:      rec,
	})
	if err != nil {
		f.Fatal(err)
	}
	h := srv.Handler()
	f.Fuzz(func(t *testing.T, routes []byte, paths string) {
		cfg, err := Compile(fuzzSpec(routes), reg, Environment{})
		if err != nil {
			return
		}
		if err := srv.ApplyConfig(cfg); err != nil {
			t.Fatal(err)
		}
		st := srv.state.Load()

		// Request paths: the fuzzer's, every pattern instantiated in
		// several spellings, then (below) each free path as a priced
		// route would have to be asked for it.
		var reqs []string
		for _, p := range strings.Split(paths, "\n") {
			if strings.HasPrefix(p, "/") && len(reqs) < 16 {
				reqs = append(reqs, p)
			}
		}
		for i, r := range cfg.Routes {
			segs := append([]string(nil), r.Pattern.segments...)
			for j, s := range segs {
				if strings.ContainsAny(s, "*?[\\") {
					segs[j] = "v1"
				}
			}
			if r.Pattern.prefix {
				segs = append(segs, "today")
			}
			for k, v := range fzVariants {
				if len(segs) == 0 || (k > 0 && i%2 == 1 && k%2 == 0) {
					continue
				}
				last := append(append([]string(nil), segs[:len(segs)-1]...), v(segs[len(segs)-1]))
				reqs = append(reqs, "/"+strings.Join(last, "/"))
			}
			reqs = append(reqs, "/"+strings.Join(segs, "/"))
		}

		var sent []sentTo
		send := func(raw string) {
			u, err := url.ParseRequestURI(raw)
			if err != nil {
				return
			}
			clean := cleanRequestPath(u.Path)
			if suspiciousPath(clean) != "" {
				return
			}
			route := st.match(clean)
			s := sentTo{req: raw, route: -1}
			var pc *proxyCtx
			switch {
			case route != nil:
				for i, r := range cfg.Routes {
					if r == route {
						s.route = i
					}
				}
				s.free = route.Free
				pc = &proxyCtx{target: route.Upstream, path: forwardPath(route, clean), route: route}
			case cfg.Unmatched == UnmatchedFree && cfg.Upstream != nil:
				s.free = true
				pc = &proxyCtx{target: cfg.Upstream, path: clean}
			default:
				return
			}
			// The rewrite every proxied request gets.
			in := &http.Request{Method: http.MethodGet, URL: u, Header: http.Header{}, Host: "verifier"}
			in = in.WithContext(context.WithValue(context.Background(), proxyCtxKey{}, pc))
			out := in.Clone(in.Context())
			srv.rewrite(&httputil.ProxyRequest{In: in, Out: out})
			s.key, s.escaped = upstreamKey(out.URL), out.URL.EscapedPath()
			switch u.Path {
			case PathHealthz, PathReadyz, PathMetrics, PathOpenAPI, PathWellKnownX402, pathWellKnownX402J:
				return // answered by the verifier itself
			}
			if s.free {
				// A free request goes through the real handler: it must
				// reach the upstream exactly as the rewrite said.
				w := httptest.NewRecorder()
				h.ServeHTTP(w, &http.Request{Method: http.MethodGet, URL: u, RequestURI: raw, Header: http.Header{}, Host: "verifier"})
				got := rec.take()
				if w.Code != 200 || got == nil || got.EscapedPath() != s.escaped || upstreamKey(got) != s.key {
					t.Fatalf("free GET %s: %d, upstream got %v, the rewrite says %s%s", raw, w.Code, got, s.key, s.escaped)
				}
			}
			dec, err := url.PathUnescape(s.escaped)
			if err != nil {
				t.Fatalf("%s sent an undecodable path %q", raw, s.escaped)
			}
			s.exactDec, s.canon = strings.TrimSuffix(dec, "/"), fzCanon(s.escaped)
			sent = append(sent, s)
		}
		for _, r := range reqs {
			send(r)
		}
		// Ask each priced route for what a free request got.
		for _, fr := range append([]sentTo(nil), sent...) {
			if !fr.free {
				continue
			}
			for _, r := range cfg.Routes {
				if r.Free || upstreamKey(r.Upstream) != fr.key {
					continue
				}
				base := strings.TrimSuffix(r.Upstream.Path, "/")
				for _, p := range []string{fr.exactDec, fzCanon(fr.escaped)} {
					rest, ok := strings.CutPrefix(p, base)
					if !ok {
						continue
					}
					if r.StripPrefix && r.Pattern.LiteralPrefix() != "/" {
						rest = r.Pattern.LiteralPrefix() + rest
					}
					send((&url.URL{Path: rest}).EscapedPath())
				}
			}
		}

		for _, fr := range sent {
			if !fr.free {
				continue
			}
			for _, pr := range sent {
				if pr.free || pr.key != fr.key || pr.canon != fr.canon {
					continue
				}
				if fr.route >= 0 && fr.route < pr.route && carvesOut(cfg.Routes[fr.route], cfg.Routes[pr.route]) {
					if fr.exactDec == pr.exactDec {
						t.Fatalf("free carve-out %s and priced %s both send %s to %s", cfg.Routes[fr.route].Pattern, cfg.Routes[pr.route].Pattern, fr.exactDec, fr.key)
					}
					continue
				}
				what := "the unmatched fallback"
				if fr.route >= 0 {
					what = "free route " + cfg.Routes[fr.route].Pattern.String()
				}
				t.Fatalf("%s: GET %s reaches %s%s, which priced route %s serves for GET %s (%s)\nroutes: %s",
					what, fr.req, fr.key, fr.escaped, cfg.Routes[pr.route].Pattern, pr.req, pr.escaped, strings.Join(cfg.Summary(), "; "))
			}
		}
	})
}
