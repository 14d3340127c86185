package verifier

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"strings"
)

// Free paths must not reach priced content. In proxy mode the verifier
// knows, for every route, which upstream a request goes to and which path
// that upstream sees; checkFreeReach refuses a config in which a request
// that pays nothing (the unmatched-free fallback, or a route priced "0")
// can produce an upstream-facing path that a priced route also produces on
// the same upstream. The comparison is conservative: it assumes the
// upstream may ignore case, drop ";params" from a segment, ignore trailing
// dots and spaces, decode percent-escapes again, and treat a trailing slash
// as absent — and the gate refuses request paths whose segments could
// become dot segments or new separators that way (suspiciousSegment), so
// every other spelling an upstream might take as another path is a new
// segment the check sees.

// upstreamKey names an upstream server: scheme, host and port, with the
// default port filled in and every loopback spelling (localhost,
// 127.0.0.0/8, ::1, 0.0.0.0) folded into one.
func upstreamKey(u *url.URL) string {
	scheme := strings.ToLower(u.Scheme)
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[scheme]
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		host = "loopback"
	} else if ip := net.ParseIP(host); ip != nil && (ip.IsLoopback() || ip.IsUnspecified()) {
		host = "loopback"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// canonSegment is the form of a path segment an upstream might take as the
// same resource as any other segment with that form.
func canonSegment(s string) string {
	for i := 0; i < 3 && strings.Contains(s, "%"); i++ {
		d, err := url.PathUnescape(s)
		if err != nil {
			break
		}
		s = d
	}
	if i := strings.IndexByte(s, ';'); i >= 0 {
		s = s[:i]
	}
	return strings.ToLower(strings.TrimRight(s, ". \t"))
}

// suspiciousSegment reports why the gate refuses a (decoded, cleaned)
// request path segment: one an upstream might split, truncate or resolve
// as a dot segment, so that it would see a path the route matcher did
// not. Such paths get 400 before any route is looked up.
func suspiciousSegment(seg string) string {
	for i := 0; i < len(seg); i++ {
		switch ch := seg[i]; {
		case ch == '\\':
			return "a backslash (some servers take it for /)"
		case ch < 0x20 || ch == 0x7f:
			return "a control character"
		case ch == '%' && i+2 < len(seg) && isHex(seg[i+1]) && isHex(seg[i+2]):
			return "a percent-escape after decoding (double encoding)"
		}
	}
	switch canonSegment(seg) {
	case "", ".", "..":
		return fmt.Sprintf("segment %q, which some servers read as a dot segment or as nothing", seg)
	}
	return ""
}

func isHex(ch byte) bool {
	return ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'f' || ch >= 'A' && ch <= 'F'
}

// suspiciousPath is suspiciousSegment over a clean path's segments.
func suspiciousPath(clean string) string {
	for _, seg := range splitPath(clean) {
		if why := suspiciousSegment(seg); why != "" {
			return why
		}
	}
	return ""
}

// reachShape is the set of upstream-facing paths a route (or the
// unmatched fallback) can produce: segments, each a canonical literal or
// any one segment, then, when rest is set, any number of further segments.
type reachShape struct {
	segs []reachSeg
	rest bool
}

type reachSeg struct {
	lit string // canonSegment of raw
	raw string
	any bool
}

func literalShape(segs []string) []reachSeg {
	out := make([]reachSeg, 0, len(segs))
	for _, s := range segs {
		c := canonSegment(s)
		out = append(out, reachSeg{lit: c, raw: s, any: c == "" || strings.ContainsAny(s, "*?[\\")})
	}
	return out
}

// routeShape is what route r sends upstream: the upstream URL's own path,
// then the request path (its literal prefix removed with stripPrefix).
func routeShape(r *Route) reachShape {
	segs := r.Pattern.segments
	if r.StripPrefix {
		segs = segs[r.Pattern.literalDepth():]
	}
	return reachShape{
		segs: append(literalShape(splitPath(r.Upstream.Path)), literalShape(segs)...),
		rest: r.Pattern.prefix,
	}
}

// overlap reports whether two shapes share a path, and returns one as
// each of them spells it.
func overlap(a, b reachShape) (wa, wb string, ok bool) {
	n := min(len(a.segs), len(b.segs))
	var xs, ys []string
	for i := 0; i < n; i++ {
		x, y := a.segs[i], b.segs[i]
		switch {
		case !x.any && !y.any && x.lit != y.lit:
			return "", "", false
		case !x.any && !y.any:
			xs, ys = append(xs, x.raw), append(ys, y.raw)
		case !x.any:
			xs, ys = append(xs, x.raw), append(ys, x.raw)
		case !y.any:
			xs, ys = append(xs, y.raw), append(ys, y.raw)
		default:
			xs, ys = append(xs, "x"), append(ys, "x")
		}
	}
	switch {
	case len(a.segs) < len(b.segs) && !a.rest, len(b.segs) < len(a.segs) && !b.rest:
		return "", "", false
	}
	tail := b.segs[n:]
	if len(a.segs) > n {
		tail = a.segs[n:]
	}
	for _, s := range tail {
		w := s.raw
		if s.any {
			w = "x"
		}
		xs, ys = append(xs, w), append(ys, w)
	}
	return "/" + strings.Join(xs, "/"), "/" + strings.Join(ys, "/"), true
}

// checkFreeReach refuses, in proxy mode, every free way to an upstream
// path a priced route serves: the unmatched-free fallback on an upstream a
// priced route uses (it forwards every path no route matches, an unbounded
// set), and a free route whose upstream-facing paths are not provably
// disjoint from a priced route's on the same upstream.
func (c *compiler) checkFreeReach(cfg *Config) {
	if cfg.Mode != ModeProxy {
		return
	}
	type reach struct {
		path  string // routes[i]
		i     int
		route *Route
		key   string
	}
	var priced, free []reach
	for i, r := range cfg.Routes {
		if r.Upstream == nil || r.Amount == nil {
			continue
		}
		x := reach{fmt.Sprintf("routes[%d]", i), i, r, upstreamKey(r.Upstream)}
		if r.Free {
			free = append(free, x)
		} else {
			priced = append(priced, x)
		}
	}
	if cfg.Unmatched == UnmatchedFree && cfg.Upstream != nil {
		key := upstreamKey(cfg.Upstream)
		var names []string
		for _, p := range priced {
			if p.key == key {
				names = append(names, fmt.Sprintf("%s (%s)", p.path, p.route.Pattern))
			}
		}
		if len(names) > 0 {
			c.fail("unmatched", "free forwards every path no route matches to %s, which also serves the priced %s: unpaid, another spelling of a paid path (another case, a ;parameter, a trailing dot) or a path that stripPrefix maps there would get paid content. "+
				"Set unmatched: deny (and list free paths as routes with price \"0\"), or give the priced routes an upstream of their own (another host or port)",
				cfg.Upstream.Redacted(), strings.Join(names, ", "))
		}
	}
	for _, f := range free {
		fs := routeShape(f.route)
		for _, p := range priced {
			if p.key != f.key || f.i < p.i && carvesOut(f.route, p.route) {
				continue
			}
			wf, wp, ok := overlap(fs, routeShape(p.route))
			if !ok {
				continue
			}
			how := ""
			if wf != wp {
				how = fmt.Sprintf(" as %s (an upstream may ignore case, \";\" parameters, trailing dots and one more level of %%-encoding)", wp)
			}
			if p.route.StripPrefix {
				how += fmt.Sprintf(", since its stripPrefix maps %s onto the upstream's %s", p.route.Pattern.LiteralPrefix(), orRoot(p.route.Upstream.Path))
			}
			at := (&url.URL{Scheme: f.route.Upstream.Scheme, Host: f.route.Upstream.Host}).String() + wf
			c.fail(f.path, "free route %s can reach %s, which the priced %s (%s) also serves%s: an unpaid request would get paid content. "+
				"Give the free route an upstream of its own (another host or port), or make the paths disjoint (an exact free pattern, no stripPrefix onto the paths the free route uses)",
				f.route.Pattern, at, p.path, p.route.Pattern, how)
		}
	}
}

// carvesOut reports whether free route f, listed before priced route p,
// only takes a part of what p would sell and sends it upstream exactly as
// p would: p's pattern matches every path f's does, and both send a
// request path to the same upstream path (same upstream URL, same prefix
// stripped). Then what f serves is free by the operator's word, p never
// serves those paths, and the other spellings p sells of them (/Health
// beside a free /health) are content the operator made free.
func carvesOut(f, p *Route) bool {
	if f.Upstream.String() != p.Upstream.String() || effectiveStrip(f) != effectiveStrip(p) {
		return false
	}
	return covers(p.Pattern, f.Pattern)
}

func effectiveStrip(r *Route) string {
	if r.StripPrefix {
		return r.Pattern.LiteralPrefix()
	}
	return "/"
}

// covers reports whether pattern p matches every path pattern q matches
// (sound, not complete: a glob in q must be the same glob in p).
func covers(p, q Pattern) bool {
	switch {
	case p.prefix && len(p.segments) > len(q.segments):
		return false
	case !p.prefix && (q.prefix || len(p.segments) != len(q.segments)):
		return false
	}
	for i, ps := range p.segments {
		qs := q.segments[i]
		if ps == qs {
			continue
		}
		if !strings.ContainsAny(ps, "*?[\\") || strings.ContainsAny(qs, "*?[\\") {
			return false
		}
		if ok, _ := path.Match(ps, qs); !ok {
			return false
		}
	}
	return true
}

func orRoot(p string) string {
	if p == "" || p == "/" {
		return "root"
	}
	return p
}
