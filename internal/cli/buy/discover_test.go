package buy

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/obolstack/obol/internal/catalog"
	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/verifier/verifiertest"
)

func TestNewCmdDiscoverParsesFlags(t *testing.T) {
	f, _ := cmdutil.NewTestFactory()
	var got *DiscoverOptions
	cmd := NewCmdDiscover(f, func(o *DiscoverOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"https://api.example.com/x", "--timeout", "5s"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got.URL != "https://api.example.com/x" || got.Timeout.Seconds() != 5 {
		t.Errorf("options %+v", got)
	}
}

func TestDiscoverListsVerifierOffers(t *testing.T) {
	ts := verifiertest.Serve(t, `payTo: 0x209693Bc6afc0C5328bA36FaF03C514EF312287C
chain: base-sepolia
facilitatorURL: http://127.0.0.1:4021
upstream: http://127.0.0.1:9
routes:
  - pattern: /weather/*
    price: "0.001"
    description: Weather now
`)

	ios, _, out, errOut := cmdutil.Test()
	opts := &DiscoverOptions{IO: ios, Output: cmdutil.OutputTable, URL: ts.URL + "/anything", HTTPClient: ts.Client(), Registry: evm.NewRegistry()}
	if err := discoverRun(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 || strings.Join(strings.Fields(lines[0]), " ") != "METHOD URL PRICE CHAIN PAY TO DESCRIPTION" ||
		strings.Join(strings.Fields(lines[1]), " ") != "GET "+ts.URL+"/weather 0.001 USDC eip155:84532 0x209693Bc6afc0C5328bA36FaF03C514EF312287C Weather now" {
		t.Errorf("table:\n%s", out)
	}
	if !strings.Contains(errOut.String(), "/openapi.json: 1 paid resource(s)") {
		t.Errorf("stderr: %s", errOut)
	}

	out.Reset()
	opts.Output = cmdutil.OutputJSON
	if err := discoverRun(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	var c catalog.Catalog
	if err := json.Unmarshal(out.Bytes(), &c); err != nil || len(c.Offers) != 1 || c.Offers[0].Price != "0.001" || c.Offers[0].Amount != "1000" || len(c.Offers[0].Accepts) != 1 {
		t.Errorf("json (%v):\n%s", err, out)
	}
}

func TestDiscoverWithoutDiscoverySaysWhatToDo(t *testing.T) {
	ts := httptest.NewServer(http.NotFoundHandler())
	defer ts.Close()
	ios, _, _, _ := cmdutil.Test()
	err := discoverRun(context.Background(), &DiscoverOptions{IO: ios, Output: cmdutil.OutputTable, URL: ts.URL, HTTPClient: ts.Client()})
	if err == nil || !strings.Contains(err.Error(), "no x402 discovery documents") || !strings.Contains(err.Error(), "obol buy pay URL --dry-run") {
		t.Fatalf("err = %v", err)
	}
	var fe *cmdutil.FlagError
	if err := discoverRun(context.Background(), &DiscoverOptions{IO: ios, Output: cmdutil.OutputTable, URL: "ftp://x"}); !errors.As(err, &fe) {
		t.Errorf("bad URL: %v, want a flag error", err)
	}
}
