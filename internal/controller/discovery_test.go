package controller_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
	"github.com/obolstack/obol/internal/verifier"
	"github.com/obolstack/obol/internal/x402"
)

// The verifier's discovery documents over the kube route source, against
// the real API server and controller: a public offer is listed with its
// declared discovery (and its 402 carries the bazaar extension), a private
// one is not listed but answers 402, and a paused or deleted offer leaves
// /openapi.json and /.well-known/x402.
func TestVerifierKubeDiscovery(t *testing.T) {
	ns, c := setup(t)
	ensureGatewayAPI(t)
	startManager(t, newReconciler(c, "obol"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	createUpstream(t, ns, "weather-api", 8080)

	weather := newOffer(ns, "weather")
	weather.Spec.Description = "Weather now"
	weather.Spec.Discovery = &v1alpha1.OfferDiscovery{Category: "weather",
		InputSchema: &apiextensionsv1.JSON{Raw: []byte(`{"type":"object","properties":{"city":{"type":"string"}}}`)}}
	news := newOffer(ns, "news")
	private := false
	news.Spec.Discovery = &v1alpha1.OfferDiscovery{Public: &private}
	for _, o := range []*v1alpha1.ServiceOffer{weather, news} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"weather", "news"} {
		eventually(t, wait, name+" published", func() string {
			return condIs(getOffer(t, ns, name), v1alpha1.ConditionRoutePublished, "True", "")
		})
	}

	srv := kubeVerifier(ctx, t, ns, verifier.Options{})
	get := func(target string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "https://seller.example"+target, nil))
		return rec
	}
	listed := func() (paths []string, resources []string) {
		var doc struct {
			Paths map[string]map[string]struct {
				PaymentInfo json.RawMessage `json:"x-payment-info"`
				Tags        []string        `json:"tags"`
			} `json:"paths"`
		}
		if err := json.Unmarshal(get(verifier.PathOpenAPI).Body.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		for p, ops := range doc.Paths {
			if ops["get"].PaymentInfo == nil {
				t.Errorf("%s listed without x-payment-info", p)
			}
			paths = append(paths, p)
		}
		var wk struct {
			Resources []string `json:"resources"`
		}
		if err := json.Unmarshal(get(verifier.PathWellKnownX402).Body.Bytes(), &wk); err != nil {
			t.Fatal(err)
		}
		return paths, wk.Resources
	}
	lists := func(want bool) func() string {
		return func() string {
			paths, res := listed()
			has := strings.Join(paths, " ") == "/services/weather" && strings.Join(res, " ") == "https://seller.example/services/weather"
			gone := len(paths) == 0 && len(res) == 0
			if want && !has || !want && !gone {
				return "paths " + strings.Join(paths, " ") + "; resources " + strings.Join(res, " ")
			}
			return ""
		}
	}
	eventually(t, wait, "weather listed, news not", lists(true))

	// The listed offer's 402 carries the bazaar extension; the private
	// one is charged all the same.
	rec := get("/services/weather")
	ch, err := x402.ParseChallenge(rec.Header(), rec.Body.Bytes())
	if err != nil || rec.Code != http.StatusPaymentRequired {
		t.Fatalf("weather: %d %v", rec.Code, err)
	}
	if _, ok := ch.Extensions["bazaar"]; !ok {
		t.Errorf("weather 402 has no bazaar extension: %s", rec.Body)
	}
	if rec := get("/services/news"); rec.Code != http.StatusPaymentRequired {
		t.Errorf("private offer: %d, want 402", rec.Code)
	}

	pause(t, ns, "weather", true)
	eventually(t, wait, "paused offer unlisted", lists(false))
	pause(t, ns, "weather", false)
	eventually(t, wait, "resumed offer listed", lists(true))
	if err := c.Delete(ctx, getOffer(t, ns, "weather")); err != nil {
		t.Fatal(err)
	}
	eventually(t, wait, "deleted offer unlisted", lists(false))
}
