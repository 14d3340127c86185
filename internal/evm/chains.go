// Package evm knows EVM chains and their stablecoins, converts exact decimal
// prices to atomic units, and signs and recovers EIP-3009
// TransferWithAuthorization messages (EIP-712).
package evm

import (
	"fmt"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/ethereum/go-ethereum/common"
)

// Development chain defaults (obol dev, tests).
const (
	DevChainName    = "obol-dev"
	DevChainID      = 1337
	DevTokenSymbol  = "USDC"
	DevTokenName    = "USDC" // EIP-712 domain name, like USDC on Base Sepolia
	DevTokenVersion = "2"
	// DevTokenAddress is where every development chain with the default
	// accounts deploys its token (the deployer's first contract; see
	// devchain.Layout): obol dev, obol dev chain, the chart's devnet.
	DevTokenAddress  = "0x2b1894172E4e079140C3DaE53394356262b7e258"
	DevTokenDecimals = 6
)

// devDefaultToken is the token a development chain with the default
// settings deploys, assumed when no dev token was registered (a devnet in
// a cluster, with no stack file on this machine).
func devDefaultToken(c Chain) Token {
	return Token{Chain: c.CAIP2, Address: common.HexToAddress(DevTokenAddress), Symbol: DevTokenSymbol,
		Decimals: DevTokenDecimals, EIP712Name: DevTokenName, EIP712Version: DevTokenVersion, TransferMethod: "eip3009"}
}

// Chain is one EVM network.
type Chain struct {
	Name    string   `json:"name"`    // canonical short name, e.g. base-sepolia
	CAIP2   string   `json:"caip2"`   // canonical id, e.g. eip155:84532
	ChainID int64    `json:"chainId"` // EIP-155 chain id
	Aliases []string `json:"aliases,omitempty"`
	Testnet bool     `json:"testnet"`
	Dev     bool     `json:"dev,omitempty"`
}

// ChainIDBig returns the chain id as a big.Int.
func (c Chain) ChainIDBig() *big.Int { return big.NewInt(c.ChainID) }

// Token is an ERC-20 with EIP-3009 on one chain.
type Token struct {
	Chain          string         `json:"chain"` // CAIP-2
	Address        common.Address `json:"address"`
	Symbol         string         `json:"symbol"`
	Decimals       uint8          `json:"decimals"`
	EIP712Name     string         `json:"eip712Name"`
	EIP712Version  string         `json:"eip712Version"`
	TransferMethod string         `json:"transferMethod"` // eip3009 | permit2
}

// Domain returns the token's EIP-712 domain on chainID.
func (t Token) Domain(chainID int64) Domain {
	return Domain{Name: t.EIP712Name, Version: t.EIP712Version, ChainID: big.NewInt(chainID), VerifyingContract: t.Address}
}

// Registry holds the known chains and tokens. The zero value is empty; use
// NewRegistry for the built-in table. Safe for concurrent use.
type Registry struct {
	mu     sync.RWMutex
	chains []Chain
	tokens map[string][]Token // by CAIP-2
}

type builtin struct {
	name    string
	id      int64
	testnet bool
	aliases []string
	usdc    string
	eipName string
}

// The reference table: USDC, 6 decimals, EIP-712 version "2".
var builtins = []builtin{
	{"base", 8453, false, []string{"base-mainnet"}, "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913", "USD Coin"},
	{"base-sepolia", 84532, true, []string{"basesepolia", "base-testnet"}, "0x036CbD53842c5426634e7929541eC2318f3dCF7e", "USDC"},
	{"ethereum", 1, false, []string{"mainnet", "eth", "ethereum-mainnet"}, "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48", "USD Coin"},
	{"polygon", 137, false, []string{"polygon-mainnet", "matic"}, "0x3c499c542cEF5E3811e1192ce70d8cC03d5c3359", "USD Coin"},
	{"polygon-amoy", 80002, true, []string{"amoy"}, "0x41E94Eb019C0762f9Bfcf9Fb1E58725BfB0e7582", "USD Coin"},
	{"avalanche", 43114, false, []string{"avalanche-c", "avax"}, "0xB97EF9Ef8734C71904D8002F8b6Bc66Dd9c48a6E", "USD Coin"},
	{"avalanche-fuji", 43113, true, []string{"fuji"}, "0x5425890298aed601595a70AB815c96711a31Bc65", "USD Coin"},
	{"arbitrum-one", 42161, false, []string{"arbitrum", "arbitrum-mainnet"}, "0xaf88d065e77c8cC2239327C5EDb3A432268e5831", "USD Coin"},
	{"arbitrum-sepolia", 421614, true, nil, "0x75faf114eafb1BDbe2F0316DF893fd58CE46AA4d", "USD Coin"},
}

// NewRegistry returns the built-in chains with their USDC, plus the local
// development chain (id 1337, aliases "dev", "local"), whose token address is
// unknown until SetDevToken is called.
func NewRegistry() *Registry {
	r := &Registry{tokens: map[string][]Token{}}
	for _, b := range builtins {
		c := Chain{Name: b.name, CAIP2: caip2(b.id), ChainID: b.id, Aliases: b.aliases, Testnet: b.testnet}
		r.chains = append(r.chains, c)
		r.tokens[c.CAIP2] = []Token{{
			Chain: c.CAIP2, Address: common.HexToAddress(b.usdc), Symbol: "USDC", Decimals: 6,
			EIP712Name: b.eipName, EIP712Version: "2", TransferMethod: "eip3009",
		}}
	}
	r.chains = append(r.chains, Chain{Name: DevChainName, CAIP2: caip2(DevChainID), ChainID: DevChainID,
		Aliases: []string{"dev", "local", "localhost"}, Testnet: true, Dev: true})
	return r
}

var (
	defaultOnce sync.Once
	defaultReg  *Registry
)

// Default returns the process-wide registry (NewRegistry on first use).
// `obol dev` and the facilitator register the dev token in it.
func Default() *Registry {
	defaultOnce.Do(func() { defaultReg = NewRegistry() })
	return defaultReg
}

func caip2(id int64) string { return "eip155:" + strconv.FormatInt(id, 10) }

// SetDevChain sets the development chain's id (default 1337) and registers
// its token, replacing any previous dev token.
func (r *Registry) SetDevChain(chainID int64, token Token) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, c := range r.chains {
		if c.Dev {
			delete(r.tokens, c.CAIP2)
			c.ChainID = chainID
			c.CAIP2 = caip2(chainID)
			r.chains[i] = c
			token.Chain = c.CAIP2
			if token.TransferMethod == "" {
				token.TransferMethod = "eip3009"
			}
			r.tokens[c.CAIP2] = []Token{token}
			return
		}
	}
}

// AddToken registers another token on a known chain.
func (r *Registry) AddToken(t Token) error {
	c, err := r.Chain(t.Chain)
	if err != nil {
		return err
	}
	t.Chain = c.CAIP2
	if t.TransferMethod == "" {
		t.TransferMethod = "eip3009"
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	list := r.tokens[c.CAIP2]
	for i, old := range list {
		if old.Address == t.Address {
			list[i] = t
			return nil
		}
	}
	r.tokens[c.CAIP2] = append(list, t)
	return nil
}

// Chains lists the known chains in table order.
func (r *Registry) Chains() []Chain {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return append([]Chain(nil), r.chains...)
}

// Chain resolves a name, alias or CAIP-2 id (case-insensitive; a bare chain id
// such as "84532" works too). The error lists the known names.
func (r *Registry) Chain(s string) (Chain, error) {
	key := strings.ToLower(strings.TrimSpace(s))
	r.mu.RLock()
	defer r.mu.RUnlock()
	if key != "" {
		for _, c := range r.chains {
			if key == c.Name || key == c.CAIP2 || key == strconv.FormatInt(c.ChainID, 10) {
				return c, nil
			}
			for _, a := range c.Aliases {
				if key == a {
					return c, nil
				}
			}
		}
	}
	names := make([]string, 0, len(r.chains))
	for _, c := range r.chains {
		names = append(names, c.Name)
	}
	sort.Strings(names)
	if key == "" {
		return Chain{}, fmt.Errorf("no chain given: use a name or CAIP-2 id (known: %s)", strings.Join(names, ", "))
	}
	return Chain{}, fmt.Errorf("unknown chain %q: use a name or CAIP-2 id such as eip155:84532 (known: %s)", s, strings.Join(names, ", "))
}

// Normalize returns the canonical CAIP-2 id of a chain name, alias or id.
func (r *Registry) Normalize(s string) (string, error) {
	c, err := r.Chain(s)
	if err != nil {
		return "", err
	}
	return c.CAIP2, nil
}

// Tokens lists the tokens known on a chain.
func (r *Registry) Tokens(chain string) ([]Token, error) {
	c, err := r.Chain(chain)
	if err != nil {
		return nil, err
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return append([]Token(nil), r.tokens[c.CAIP2]...), nil
}

// Token finds a token on a chain by address or symbol; an empty asset means
// the chain's default token (its USDC).
func (r *Registry) Token(chain, asset string) (Token, error) {
	c, err := r.Chain(chain)
	if err != nil {
		return Token{}, err
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	list := r.tokens[c.CAIP2]
	if len(list) == 0 && c.Dev && c.ChainID == DevChainID {
		list = []Token{devDefaultToken(c)}
	}
	if len(list) == 0 {
		if c.Dev {
			return Token{}, fmt.Errorf("no token registered on the development chain %s: start it with `obol dev chain` or give the asset explicitly", c.CAIP2)
		}
		return Token{}, fmt.Errorf("no token known on %s", c.Name)
	}
	a := strings.TrimSpace(asset)
	if a == "" {
		return list[0], nil
	}
	for _, t := range list {
		if strings.EqualFold(a, t.Address.Hex()) || strings.EqualFold(a, t.Symbol) {
			return t, nil
		}
	}
	known := make([]string, 0, len(list))
	for _, t := range list {
		known = append(known, t.Symbol+" "+t.Address.Hex())
	}
	return Token{}, fmt.Errorf("unknown asset %q on %s (known: %s)", asset, c.Name, strings.Join(known, ", "))
}

// NormalizeNetwork resolves s in the default registry.
func NormalizeNetwork(s string) (string, error) { return Default().Normalize(s) }
