package verifier

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/facilitator"
)

// httpFacilitator is a facilitator over HTTP that accepts everything and
// records the Authorization header of each call.
type httpFacilitator struct {
	*httptest.Server
	mu    sync.Mutex
	calls []string // "verify Bearer ..." / "settle Bearer ..."
}

func newHTTPFacilitator(t *testing.T) *httpFacilitator {
	f := &httpFacilitator{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		op := strings.TrimPrefix(r.URL.Path, "/")
		f.mu.Lock()
		f.calls = append(f.calls, op+" "+r.Header.Get("Authorization"))
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch op {
		case "verify":
			_, _ = io.WriteString(w, `{"isValid":true}`)
		case "settle":
			_, _ = io.WriteString(w, `{"success":true,"transaction":"0x`+strings.Repeat("ab", 32)+`","network":"eip155:84532"}`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(f.Close)
	return f
}

// A closed port: connections are refused.
func deadURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + l.Addr().String()
	l.Close()
	return u
}

// The first facilitator is down: the second verifies and settles, with
// its auth header, which never appears in the logs; the metrics say who
// answered.
func TestFacilitatorFallbackAndAuth(t *testing.T) {
	t.Parallel()
	const secret = "Bearer fac-s3cret-token"
	up := newUpstream(t)
	backup := newHTTPFacilitator(t)
	doc := `payTo: 0x209693Bc6afc0C5328bA36FaF03C514EF312287C
chain: base-sepolia
upstream: ` + up.URL + `
facilitators:
  - name: primary
    url: ` + deadURL(t) + `
  - name: backup
    url: ` + backup.URL + `
    headers:
      - {header: Authorization, valueFromEnv: FAC_TOKEN}
routes:
  - pattern: /joke
    price: "0.01"
    offerName: jokes
`
	reg := evm.NewRegistry()
	spec, err := ParseSpec("pricing.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Compile(spec, reg, Environment{Getenv: func(k string) string {
		if k == "FAC_TOKEN" {
			return secret
		}
		return ""
	}})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	var logMu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&logs, &logMu}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	promReg := prometheus.NewRegistry()
	m, err := NewMetrics(promReg)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	srv, err := New(Options{
		NewFacilitatorEndpoint: func(e FacilitatorEndpoint) (Facilitator, error) {
			return facilitator.NewClient(e.URL, facilitator.WithHTTPClient(FacilitatorHTTPClient(e, tr)))
		},
		ClassifyFacilitatorError: func(err error) bool {
			var fe *facilitator.Error
			if errors.As(err, &fe) {
				return fe.Temporary
			}
			return errors.Is(err, context.DeadlineExceeded)
		},
		Registry: reg, Metrics: m, Gatherer: promReg, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.ApplyConfig(cfg); err != nil {
		t.Fatal(err)
	}
	h := srv.Handler()
	name, value := newBuyer(t).pay(t, reg, 2, challenge(t, h, "/joke"))
	r := httptest.NewRequest(http.MethodGet, "/joke", nil)
	r.Header.Set(name, value)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("paid request with the first facilitator down: %d %s", w.Code, w.Body)
	}
	backup.mu.Lock()
	calls := strings.Join(backup.calls, "; ")
	backup.mu.Unlock()
	if calls != "verify "+secret+"; settle "+secret {
		t.Fatalf("backup facilitator saw %q, want verify and settle with the auth header", calls)
	}
	for _, c := range []struct {
		name, op, result string
		want             float64
	}{
		{"primary", "verify", "unavailable", 1},
		{"backup", "verify", "ok", 1},
		{"backup", "settle", "ok", 1},
		{"primary", "settle", "ok", 0},
	} {
		if got := testutil.ToFloat64(m.FacilitatorRequests.WithLabelValues(c.name, c.op, c.result)); got != c.want {
			t.Errorf("facilitator_requests_total{%s,%s,%s} = %v, want %v", c.name, c.op, c.result, got, c.want)
		}
	}
	logMu.Lock()
	defer logMu.Unlock()
	if !strings.Contains(logs.String(), "trying the next one") {
		t.Errorf("the fallback was not logged:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "fac-s3cret-token") {
		t.Fatalf("the facilitator's auth header value reached the logs:\n%s", logs.String())
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// facilitatorHeaders (what the chart writes) go with facilitatorURL.
func TestFacilitatorHeadersCompile(t *testing.T) {
	t.Parallel()
	spec, err := ParseSpec("pricing.yaml", []byte(`payTo: 0x209693Bc6afc0C5328bA36FaF03C514EF312287C
chain: base-sepolia
facilitatorURL: https://facilitator.example
facilitatorHeaders:
  - header: "Authorization"
    valueFromEnv: "OBOL_FACILITATOR_HEADER_0"
mode: forwardAuth
routes:
  - {pattern: /x, price: "0.01"}
`))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Compile(spec, nil, Environment{Getenv: func(k string) string {
		if k == "OBOL_FACILITATOR_HEADER_0" {
			return "Bearer t"
		}
		return ""
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Facilitators) != 1 || cfg.Facilitators[0].Name != "default" || cfg.Facilitators[0].Header.Get("Authorization") != "Bearer t" {
		t.Fatalf("facilitators %+v", cfg.Facilitators)
	}
}
