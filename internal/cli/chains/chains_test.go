package chains

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/evm"
)

func TestChainsJSONListsAllChains(t *testing.T) {
	ios, _, out, _ := cmdutil.Test()
	if err := chainsRun(&Options{IO: ios, Output: "json", Registry: evm.NewRegistry()}); err != nil {
		t.Fatal(err)
	}
	var entries []Entry
	if err := json.Unmarshal(out.Bytes(), &entries); err != nil {
		t.Fatal(err)
	}
	if len(entries) != 10 {
		t.Fatalf("want 9 chains + the dev chain, got %d", len(entries))
	}
	seen := map[string]bool{}
	for _, e := range entries {
		seen[e.CAIP2] = true
		if !e.Dev && (len(e.Tokens) != 1 || e.Tokens[0].Symbol != "USDC") {
			t.Errorf("%s tokens: %+v", e.Name, e.Tokens)
		}
	}
	for _, id := range []string{"eip155:8453", "eip155:84532", "eip155:1", "eip155:137", "eip155:80002", "eip155:43114", "eip155:43113", "eip155:42161", "eip155:421614", "eip155:1337"} {
		if !seen[id] {
			t.Errorf("missing %s", id)
		}
	}
}

func TestChainsTable(t *testing.T) {
	ios, _, out, _ := cmdutil.Test()
	if err := chainsRun(&Options{IO: ios, Output: "table", Registry: evm.NewRegistry()}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "base-sepolia (testnet)") || !strings.Contains(out.String(), `"USDC" v2`) {
		t.Fatalf("table:\n%s", out.String())
	}
}
