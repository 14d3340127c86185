package evm

import (
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"
)

func TestNormalizeEveryReferenceChain(t *testing.T) {
	rows := []struct {
		name, caip2, usdc, eipName string
	}{
		{"base", "eip155:8453", "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913", "USD Coin"},
		{"base-sepolia", "eip155:84532", "0x036CbD53842c5426634e7929541eC2318f3dCF7e", "USDC"},
		{"ethereum", "eip155:1", "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48", "USD Coin"},
		{"polygon", "eip155:137", "0x3c499c542cEF5E3811e1192ce70d8cC03d5c3359", "USD Coin"},
		{"polygon-amoy", "eip155:80002", "0x41E94Eb019C0762f9Bfcf9Fb1E58725BfB0e7582", "USD Coin"},
		{"avalanche", "eip155:43114", "0xB97EF9Ef8734C71904D8002F8b6Bc66Dd9c48a6E", "USD Coin"},
		{"avalanche-fuji", "eip155:43113", "0x5425890298aed601595a70AB815c96711a31Bc65", "USD Coin"},
		{"arbitrum-one", "eip155:42161", "0xaf88d065e77c8cC2239327C5EDb3A432268e5831", "USD Coin"},
		{"arbitrum-sepolia", "eip155:421614", "0x75faf114eafb1BDbe2F0316DF893fd58CE46AA4d", "USD Coin"},
	}
	r := NewRegistry()
	for _, row := range rows {
		for _, in := range []string{row.name, row.caip2, strings.ToUpper(row.name), " " + row.caip2 + " "} {
			got, err := r.Normalize(in)
			if err != nil || got != row.caip2 {
				t.Errorf("Normalize(%q) = %q, %v; want %q", in, got, err, row.caip2)
			}
		}
		tok, err := r.Token(row.caip2, "")
		if err != nil {
			t.Fatal(err)
		}
		if tok.Address != common.HexToAddress(row.usdc) || tok.Decimals != 6 || tok.EIP712Name != row.eipName || tok.EIP712Version != "2" || tok.Symbol != "USDC" {
			t.Errorf("%s token = %+v", row.name, tok)
		}
		if _, err := r.Token(row.name, row.usdc); err != nil {
			t.Errorf("token by address on %s: %v", row.name, err)
		}
	}
	for alias, want := range map[string]string{"mainnet": "eip155:1", "arbitrum": "eip155:42161", "fuji": "eip155:43113", "dev": "eip155:1337", "local": "eip155:1337", "84532": "eip155:84532"} {
		if got, err := r.Normalize(alias); err != nil || got != want {
			t.Errorf("alias %q = %q, %v; want %q", alias, got, err, want)
		}
	}
	if len(r.Chains()) != 10 {
		t.Fatalf("want 9 reference chains + dev, got %d", len(r.Chains()))
	}
}

func TestUnknownChainListsKnown(t *testing.T) {
	_, err := NewRegistry().Normalize("solana")
	if err == nil || !strings.Contains(err.Error(), `unknown chain "solana"`) || !strings.Contains(err.Error(), "base-sepolia") {
		t.Fatalf("want an error naming the input and listing known chains, got %v", err)
	}
	if _, err := NewRegistry().Normalize(""); err == nil {
		t.Fatal("empty chain must be an error")
	}
}

func TestDevChainConfigurable(t *testing.T) {
	r := NewRegistry()
	addr := common.HexToAddress("0x5FbDB2315678afecb367f032d93F642f64180aa3")
	r.SetDevChain(31337, Token{Address: addr, Symbol: "USDC", Decimals: 6, EIP712Name: "USDC", EIP712Version: "2"})
	c, err := r.Chain("obol-dev")
	if err != nil || c.CAIP2 != "eip155:31337" {
		t.Fatalf("dev chain = %+v, %v", c, err)
	}
	tok, err := r.Token("eip155:31337", "USDC")
	if err != nil || tok.Address != addr || tok.TransferMethod != "eip3009" {
		t.Fatalf("dev token = %+v, %v", tok, err)
	}
}

// A dev chain with no registered token (a cluster devnet, no stack file on
// this machine) resolves to the token every default dev chain deploys; a
// registered one replaces it.
func TestDevChainDefaultToken(t *testing.T) {
	r := NewRegistry()
	tok, err := r.Token(DevChainName, "")
	if err != nil {
		t.Fatalf("Token(%s, \"\"): %v", DevChainName, err)
	}
	if tok.Address.Hex() != DevTokenAddress || tok.EIP712Name != DevTokenName || tok.EIP712Version != DevTokenVersion || tok.Decimals != DevTokenDecimals {
		t.Errorf("default dev token = %+v", tok)
	}
	if _, err := r.Token(DevChainName, DevTokenAddress); err != nil {
		t.Errorf("Token by the default address: %v", err)
	}
	other := Token{Address: common.HexToAddress("0x00000000000000000000000000000000000000aa"), Symbol: "USDC", Decimals: 6, EIP712Name: "USD Coin", EIP712Version: "2"}
	r.SetDevChain(DevChainID, other)
	if got, err := r.Token(DevChainName, ""); err != nil || got.Address != other.Address {
		t.Errorf("after SetDevChain: %+v, %v; want the registered token", got, err)
	}
	r2 := NewRegistry()
	r2.SetDevChain(31337, other)
	if got, _ := r2.Token("eip155:31337", ""); got.Address != other.Address {
		t.Errorf("chain 31337: %+v", got)
	}
}
