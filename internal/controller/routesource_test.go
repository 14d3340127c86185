package controller_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
	"github.com/obolstack/obol/internal/verifier"
	"github.com/obolstack/obol/internal/verifier/verifiertest"
)

// The verifier's kube route source (internal/verifier/routesource_kube.go)
// against the real API server and the real controller: published offers
// become routes on their CAIP-2 chain with the offer labels; a paused or
// deleted offer is dropped and its metric series leave /metrics.
func TestVerifierKubeRouteSource(t *testing.T) {
	ns, c := setup(t)
	ensureGatewayAPI(t)
	startManager(t, newReconciler(c, "obol"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	createUpstream(t, ns, "weather-api", 8080)
	for _, name := range []string{"weather", "news"} {
		o := newOffer(ns, name)
		o.Spec.Payment.Network = "base-sepolia" // any alias; the route charges on the CAIP-2 id
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"weather", "news"} {
		eventually(t, wait, name+" published", func() string {
			return condIs(getOffer(t, ns, name), v1alpha1.ConditionRoutePublished, "True", "")
		})
	}

	reg := prometheus.NewRegistry()
	metrics, err := verifier.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	srv := kubeVerifier(ctx, t, ns, verifier.Options{Metrics: metrics, Gatherer: reg})
	routesOf := func() map[string]*verifier.Route {
		m := map[string]*verifier.Route{}
		if cfg := srv.Config(); cfg != nil {
			for _, r := range cfg.Routes {
				m[r.Offer.Name] = r
			}
		}
		return m
	}
	eventually(t, wait, "both offers served", func() string {
		if len(routesOf()) != 2 {
			return "routes: " + strings.Join(srv.Config().Summary(), "; ")
		}
		return ""
	})
	r := routesOf()["weather"]
	if r.Chain.CAIP2 != "eip155:84532" || r.Offer.Namespace != ns || r.Amount.Int64() != 1000 ||
		r.PayTo.Hex() != testPayTo || r.Upstream.String() != "http://weather-api."+ns+".svc:8080" {
		t.Errorf("weather route: chain %s offer %v amount %v payTo %s upstream %v", r.Chain.CAIP2, r.Offer, r.Amount, r.PayTo.Hex(), r.Upstream)
	}

	// An unpaid request to each offer: 402, and series labelled with the offer.
	for _, p := range []string{"/services/weather/today", "/services/news"} {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://seller.example"+p, nil))
		if rec.Code != http.StatusPaymentRequired {
			t.Fatalf("GET %s = %d, want 402: %s", p, rec.Code, rec.Body)
		}
	}
	scrape := func() string {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		return rec.Body.String()
	}
	weatherSeries := `offer_name="weather",offer_namespace="` + ns + `"`
	if m := scrape(); !strings.Contains(m, `chain="eip155:84532",`+weatherSeries) {
		t.Fatalf("/metrics lacks the weather series with the CAIP-2 chain:\n%s", m)
	}

	// Pause drops the route; resume brings it back.
	pause(t, ns, "weather", true)
	eventually(t, wait, "paused offer dropped", func() string {
		if _, ok := routesOf()["weather"]; ok {
			return "still served"
		}
		return ""
	})
	pause(t, ns, "weather", false)
	eventually(t, wait, "resumed offer served", func() string {
		if _, ok := routesOf()["weather"]; !ok {
			return "not served"
		}
		return ""
	})
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://seller.example/services/weather", nil))

	// Delete: the route goes, and so do its series.
	if err := c.Delete(ctx, getOffer(t, ns, "weather")); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, "deleted offer dropped", func() string {
		if _, ok := routesOf()["weather"]; ok {
			return "still served"
		}
		return ""
	})
	m := scrape()
	if strings.Contains(m, weatherSeries) {
		t.Errorf("/metrics still has series of the deleted offer:\n%s", m)
	}
	if !strings.Contains(m, `offer_name="news"`) {
		t.Errorf("/metrics lost the series of the offer that stays:\n%s", m)
	}
}

// kubeVerifier is a verifier (opts, with a facilitator that is never used
// and a discarded log) whose routes are the ServiceOffers of namespace ns,
// read by its kube route source until ctx ends.
func kubeVerifier(ctx context.Context, t *testing.T, ns string, opts verifier.Options) *verifier.Server {
	t.Helper()
	opts.NewFacilitator = func(string) (verifier.Facilitator, error) { return verifiertest.UnusedFacilitator{}, nil }
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := verifier.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	globals, err := verifier.ParseSpec("globals.yaml", []byte("facilitatorURL: http://127.0.0.1:4021\nunmatched: deny\n"))
	if err != nil {
		t.Fatal(err)
	}
	src, err := verifier.NewKubeSource(verifier.KubeSourceOptions{Kubeconfig: kube.Kubeconfig, Namespace: ns, Globals: globals})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Start(ctx, srv); err != nil {
		t.Fatal(err)
	}
	return srv
}
