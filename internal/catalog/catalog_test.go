package catalog_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/obolstack/obol/internal/catalog"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/verifier/verifiertest"
)

// Seller is a real verifier with three public routes (two paid) and a
// private one.
func seller(t *testing.T) *httptest.Server {
	t.Helper()
	return verifiertest.Serve(t, `payTo: 0x209693Bc6afc0C5328bA36FaF03C514EF312287C
chain: base-sepolia
facilitatorURL: http://127.0.0.1:4021
upstream: http://127.0.0.1:9
routes:
  - pattern: /weather/*
    price: "0.001"
    description: Weather now
    discovery: {category: weather}
  - pattern: /summarize
    price: "0.25"
    description: Summaries
    discovery: {method: POST}
  - pattern: /hidden
    price: "1"
    discovery: {public: false}
  - pattern: /health
    price: "0"
`)
}

func TestReadVerifierOrigin(t *testing.T) {
	ts := seller(t)
	c, err := catalog.Read(context.Background(), ts.Client(), evm.NewRegistry(), ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Offers) != 2 || c.Free != 1 || !c.Sources[0].Found || !c.Sources[1].Found || c.Sources[0].Offers != 2 || c.Sources[1].Offers != 2 {
		t.Fatalf("catalog %+v", c)
	}
	want := map[string]string{ts.URL + "/summarize": "POST 0.25 USDC", ts.URL + "/weather": "GET 0.001 USDC"}
	for _, o := range c.Offers {
		if got := o.Method + " " + o.Price + " " + o.Symbol; got != want[o.URL] {
			t.Errorf("%s: %s, want %s", o.URL, got, want[o.URL])
		}
		if o.Network != "eip155:84532" || o.PayTo != "0x209693Bc6afc0C5328bA36FaF03C514EF312287C" || len(o.Accepts) != 1 {
			t.Errorf("%s: terms %+v", o.URL, o)
		}
	}
	if c.Offers[1].Category != "weather" || c.Offers[1].Description != "Weather now" {
		t.Errorf("weather offer %+v", c.Offers[1])
	}
}

// An origin with no discovery documents is an error that names both.
func TestReadOriginWithoutDiscovery(t *testing.T) {
	ts := httptest.NewServer(http.NotFoundHandler())
	defer ts.Close()
	_, err := catalog.Read(context.Background(), ts.Client(), nil, ts.URL)
	if !errors.Is(err, catalog.ErrNoDiscovery) || !strings.Contains(err.Error(), "/openapi.json: answered 404") || !strings.Contains(err.Error(), "/.well-known/x402: answered 404") {
		t.Fatalf("err = %v", err)
	}
}

// A minimal /.well-known/x402 (URLs only, as x402scan accepts it): each
// resource is asked for its 402.
func TestReadMinimalWellKnownProbes(t *testing.T) {
	ts := seller(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/x402", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"version":1,"resources":["` + ts.URL + `/weather/today","` + ts.URL + `/health"]}`))
	})
	other := httptest.NewServer(mux)
	defer other.Close()
	c, err := catalog.Read(context.Background(), other.Client(), evm.NewRegistry(), other.URL)
	if err != nil {
		t.Fatal(err)
	}
	if c.Sources[0].Found || !c.Sources[1].Found || len(c.Offers) != 2 {
		t.Fatalf("catalog %+v", c)
	}
	if o := c.Offers[0]; o.Price != "0.001" || o.Symbol != "USDC" || o.From != "402" {
		t.Errorf("probed offer %+v", o)
	}
	if o := c.Offers[1]; o.Price != "" || !strings.Contains(o.Description, "not 402") {
		t.Errorf("free resource %+v", o)
	}
}

func TestOrigin(t *testing.T) {
	for in, want := range map[string]string{
		"https://api.example.com/v1/x?y=1": "https://api.example.com",
		"api.example.com":                  "https://api.example.com",
		"127.0.0.1:8080":                   "http://127.0.0.1:8080",
		"localhost:8080/openapi.json":      "http://localhost:8080",
	} {
		if got, err := catalog.Origin(in); err != nil || got != want {
			t.Errorf("Origin(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := catalog.Origin("ftp://x"); err == nil {
		t.Error("ftp origin accepted")
	}
}
