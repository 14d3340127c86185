package verifier

import (
	"net/http"
	"net/url"

	"github.com/obolstack/obol/internal/x402"
)

// Headers Traefik's ForwardAuth sets on the request it sends to /verify.
const (
	HeaderForwardedURI    = "X-Forwarded-Uri"
	HeaderForwardedHost   = "X-Forwarded-Host"
	HeaderForwardedMethod = "X-Forwarded-Method"
	HeaderForwardedProto  = "X-Forwarded-Proto"
)

// buyerMethod is the method of the buyer's request: Traefik's
// X-Forwarded-Method in forward-auth mode (when set), else the request's.
func buyerMethod(r *http.Request, cfg *Config) string {
	if m := r.Header.Get(HeaderForwardedMethod); m != "" && cfg.Mode == ModeForwardAuth {
		return m
	}
	return r.Method
}

// serveForwardAuth is /verify in forwardAuth mode. Traefik sends the
// original request's headers; a 2xx lets the request through, anything else
// is returned to the buyer as is. Fails closed: without X-Forwarded-Uri
// nothing is let through.
func (s *Server) serveForwardAuth(w http.ResponseWriter, r *http.Request, st *state) {
	cfg := st.cfg
	uri := r.Header.Get(HeaderForwardedURI)
	if uri == "" {
		writeJSONError(w, r, http.StatusForbidden, errorBody{Error: "missing " + HeaderForwardedURI + ": /verify is meant for Traefik's ForwardAuth, which sets it"})
		return
	}
	u, err := url.ParseRequestURI(uri)
	if err != nil {
		writeJSONError(w, r, http.StatusForbidden, errorBody{Error: "malformed " + HeaderForwardedURI + ": " + err.Error()})
		return
	}
	clean := cleanRequestPath(u.Path)
	if why := suspiciousPath(clean); why != "" {
		writeJSONError(w, r, http.StatusBadRequest, errorBody{Error: "the path has " + why + ": refused, since the upstream might read it as another path than the one priced"})
		return
	}
	route := st.match(clean)
	if route == nil {
		if cfg.Unmatched == UnmatchedDeny {
			writeJSONError(w, r, http.StatusNotFound, errorBody{Error: "no priced route matches " + clean})
			return
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	method := buyerMethod(r, cfg)
	if route.Free || isPreflight(method, r.Header) {
		// Preflights carry no payment; the upstream (or a CORS
		// middleware) answers them.
		if route.Free {
			s.metrics.request(route)
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	s.metrics.request(route)
	pm := s.admit(w, r, st, route, resourceURL(r, uri))
	if pm == nil {
		return
	}
	defer pm.finish()
	if cfg.ForwardAuth == ForwardAuthVerifyOnly {
		// Settlement happens elsewhere; this gate lets an authorization
		// through once.
		pm.used = true
		w.Header().Set("Access-Control-Expose-Headers", x402.ExposedHeaders)
		w.WriteHeader(http.StatusOK)
		return
	}
	var out settleOutcome
	if pm.presettled != nil {
		out = pm.presettled.pm.outcome(r, pm.presettled.sr)
	} else {
		out = pm.settle(r.Context(), r, nil)
	}
	if out.fail != nil {
		out.fail.write(w)
		return
	}
	h := w.Header()
	h.Set("Access-Control-Expose-Headers", x402.ExposedHeaders)
	if out.header != "" {
		h.Set(x402.ResponseHeaderName(pm.version()), out.header)
	}
	w.WriteHeader(http.StatusOK)
}
