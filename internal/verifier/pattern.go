package verifier

import (
	"fmt"
	"path"
	"strings"
)

// Pattern is a compiled route pattern. Three forms:
//
//	/a/b      exact: only /a/b
//	/a/*      prefix: /a and everything below it
//	/a/*/c    segment glob: a "*" segment (or a path.Match glob such as
//	          v*) matches exactly one segment; a trailing "/*" matches the
//	          rest of the path, including nothing
type Pattern struct {
	raw      string
	segments []string // without the trailing "*" of a prefix pattern
	prefix   bool     // trailing "/*"
	globs    bool     // a segment other than the trailing one has glob characters
	literal  string   // the leading segments before the first glob, "/a/b"
}

// ParsePattern validates and compiles a route pattern.
func ParsePattern(p string) (Pattern, error) {
	if p == "" {
		return Pattern{}, fmt.Errorf("empty: use /path, /path/* or /path/*/more")
	}
	if !strings.HasPrefix(p, "/") {
		return Pattern{}, fmt.Errorf("%q must start with /", p)
	}
	if strings.ContainsAny(p, "?#") {
		return Pattern{}, fmt.Errorf("%q must be a path only, without ? or #", p)
	}
	if c := path.Clean(p); c != p && c+"/" != p {
		return Pattern{}, fmt.Errorf("%q is not a clean path (did you mean %q?)", p, c)
	}
	pat := Pattern{raw: p}
	segs := splitPath(p)
	if n := len(segs); n > 0 && segs[n-1] == "*" {
		pat.prefix = true
		segs = segs[:n-1]
	}
	literal := true
	var lit []string
	for _, s := range segs {
		if s == "**" {
			return Pattern{}, fmt.Errorf("%q: ** is not supported; a trailing /* already matches everything below", p)
		}
		if _, err := path.Match(s, ""); err != nil {
			return Pattern{}, fmt.Errorf("%q: bad glob in segment %q: %v", p, s, err)
		}
		if strings.ContainsAny(s, "*?[\\") {
			pat.globs = true
			literal = false
		}
		if literal {
			lit = append(lit, s)
		}
	}
	pat.segments = segs
	pat.literal = "/" + strings.Join(lit, "/")
	return pat, nil
}

// String returns the pattern as written.
func (p Pattern) String() string { return p.raw }

// LiteralPrefix is the part of the pattern before its first glob, the part
// stripPrefix removes.
func (p Pattern) LiteralPrefix() string { return p.literal }

// Match reports whether a clean path matches.
func (p Pattern) Match(clean string) bool { return p.matchSegments(splitPath(clean)) }

// matchSegments is Match on a path already split by splitPath.
func (p Pattern) matchSegments(segs []string) bool {
	if p.prefix {
		if len(segs) < len(p.segments) {
			return false
		}
		segs = segs[:len(p.segments)]
	} else if len(segs) != len(p.segments) {
		return false
	}
	for i, s := range p.segments {
		if !p.globs || !strings.ContainsAny(s, "*?[\\") {
			if segs[i] != s {
				return false
			}
			continue
		}
		if ok, _ := path.Match(s, segs[i]); !ok {
			return false
		}
	}
	return true
}

// literalDepth is the number of leading segments without glob characters.
func (p Pattern) literalDepth() int {
	for i, s := range p.segments {
		if strings.ContainsAny(s, "*?[\\") {
			return i
		}
	}
	return len(p.segments)
}

func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// cleanRequestPath is the path routes are matched against: decoded, with
// dot segments and repeated slashes removed, so that /paid/../paid/x and
// //paid/x cannot slip past a pattern. A trailing slash is kept.
func cleanRequestPath(p string) string {
	if p == "" {
		return "/"
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c
}

// stripPrefix removes the literal prefix of pattern from a clean path.
func stripPrefix(clean, prefix string) string {
	if prefix == "/" || prefix == "" {
		return clean
	}
	rest := strings.TrimPrefix(clean, prefix)
	if rest == clean {
		return clean
	}
	if rest == "" || !strings.HasPrefix(rest, "/") {
		rest = "/" + rest
	}
	return rest
}

// offerNameFromPattern derives an offer name (a DNS-1123 label) from a
// pattern: /services/weather/* → services-weather, / → root.
func offerNameFromPattern(p string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(p) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		default:
			if !dash && b.Len() > 0 {
				b.WriteByte('-')
				dash = true
			}
		}
	}
	s := strings.TrimRight(b.String(), "-")
	if len(s) > 63 {
		s = strings.TrimRight(s[:63], "-")
	}
	if s == "" {
		return "root"
	}
	return s
}
