// Package verifiertest runs a real verifier for the tests of other
// packages: a buyer, a catalog reader, a controller that feeds it routes.
package verifiertest

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/obolstack/obol/internal/verifier"
	"github.com/obolstack/obol/internal/x402"
)

// UnusedFacilitator is the facilitator of a verifier that is never paid in
// the test (discovery documents, 402 challenges, routes): every call fails.
type UnusedFacilitator struct{}

func (UnusedFacilitator) Verify(context.Context, x402.VerifyRequest) (*x402.VerifyResponse, error) {
	return nil, errors.New("not used")
}

func (UnusedFacilitator) Settle(context.Context, x402.SettleRequest) (*x402.SettleResponse, error) {
	return nil, errors.New("not used")
}

// New is a verifier serving the pricing file doc with fac as its
// facilitator (nil: UnusedFacilitator), closed when the test ends.
func New(t testing.TB, doc string, fac verifier.Facilitator) *verifier.Server {
	t.Helper()
	if fac == nil {
		fac = UnusedFacilitator{}
	}
	srv, err := verifier.New(verifier.Options{NewFacilitator: func(string) (verifier.Facilitator, error) { return fac, nil }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	cfg, err := verifier.ParseAndCompile("pricing.yaml", []byte(doc), nil, verifier.Environment{})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.ApplyConfig(cfg); err != nil {
		t.Fatal(err)
	}
	return srv
}

// Serve is New with no facilitator, served on loopback until the test ends.
func Serve(t testing.TB, doc string) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(New(t, doc, nil))
	t.Cleanup(ts.Close)
	return ts
}
