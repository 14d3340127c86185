// Package proxy is the buyer proxy: it pays x402 sellers on behalf of
// in-cluster callers from pools of pre-signed EIP-3009 authorizations, one
// pool per upstream (one PurchaseRequest), within spend caps, and never
// uses an authorization twice, across restarts.
package proxy

import (
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ethereum/go-ethereum/common"
	"sigs.k8s.io/yaml"

	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/x402"
)

// UpstreamConfig is one file in the config directory: a paid upstream and
// the authorizations pre-signed for it (what a PurchaseRequest carries).
type UpstreamConfig struct {
	// Name identifies the upstream (the PurchaseRequest's name); it is the
	// `upstream` metric label and the /upstream/<name>/ path prefix.
	Name string `json:"name"`
	// Endpoint is the seller's base URL.
	Endpoint string `json:"endpoint"`
	// RemoteModel is the model name the seller expects (`remote_model`
	// label); OpenAI-compatible requests for any of Models are routed here
	// and their "model" rewritten to it.
	RemoteModel string   `json:"remoteModel,omitempty"`
	Models      []string `json:"models,omitempty"`
	// Payment terms the authorizations were signed for.
	Network       string `json:"network"`
	PayTo         string `json:"payTo"`
	Asset         string `json:"asset"`
	Price         string `json:"price"` // atomic units per request
	EIP712Name    string `json:"eip712Name,omitempty"`
	EIP712Version string `json:"eip712Version,omitempty"`
	// MaxSpendPerDay caps atomic units spent in any rolling 24 hours ("" or
	// "0": no cap).
	MaxSpendPerDay string `json:"maxSpendPerDay,omitempty"`
	// ForwardHeaders names caller headers this seller may receive although
	// the proxy strips them by default (Authorization, Cookie,
	// Proxy-Authorization, or the operator's --strip-header list).
	ForwardHeaders []string `json:"forwardHeaders,omitempty"`
	// PreSignedAuths is the pool.
	PreSignedAuths []x402.ExactEVMPayload `json:"preSignedAuths"`

	file        string
	chain       string // canonical CAIP-2
	price       *big.Int
	dailyCap    *big.Int // nil: no cap
	endpointURL *url.URL
}

// Chain is the canonical CAIP-2 id.
func (u *UpstreamConfig) Chain() string { return u.chain }

// Config is everything loaded from the config directory.
type Config struct {
	Upstreams []*UpstreamConfig
}

// LoadDir reads every *.yaml, *.yml and *.json file of dir (one upstream
// each). Errors name the file and field.
func LoadDir(dir string, reg *evm.Registry) (*Config, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read buyer config dir: %w", err)
	}
	files := map[string][]byte{}
	for _, e := range entries {
		if e.IsDir() || !isUpstreamFile(e.Name()) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read buyer config: %w", err)
		}
		files[path] = b
	}
	return build(files, reg)
}

// LoadData reads the upstream files held as data (a ConfigMap's keys, named
// where in errors: "ns/name key"); keys that are not *.yaml, *.yml or
// *.json are ignored, as in a directory.
func LoadData(where string, data map[string]string, reg *evm.Registry) (*Config, error) {
	files := map[string][]byte{}
	for k, v := range data {
		if isUpstreamFile(k) {
			files[where+" "+k] = []byte(v)
		}
	}
	return build(files, reg)
}

func isUpstreamFile(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	return !strings.HasPrefix(name, ".") && (ext == ".yaml" || ext == ".yml" || ext == ".json")
}

// build parses and cross-checks upstream files keyed by where they came from.
func build(files map[string][]byte, reg *evm.Registry) (*Config, error) {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	cfg := &Config{}
	seen := map[string]string{}
	models := map[string]string{}
	for _, path := range names {
		u, err := parseUpstream(path, files[path], reg)
		if err != nil {
			return nil, err
		}
		if prev, ok := seen[u.Name]; ok {
			return nil, fmt.Errorf("%s: upstream name %q is also used by %s", path, u.Name, prev)
		}
		seen[u.Name] = path
		for _, m := range u.Models {
			if prev, ok := models[m]; ok {
				return nil, fmt.Errorf("%s: model %q is already mapped to upstream %q", path, m, prev)
			}
			models[m] = u.Name
		}
		cfg.Upstreams = append(cfg.Upstreams, u)
	}
	sort.Slice(cfg.Upstreams, func(i, j int) bool { return cfg.Upstreams[i].Name < cfg.Upstreams[j].Name })
	return cfg, nil
}

// LoadFile reads and validates one upstream file.
func LoadFile(path string, reg *evm.Registry) (*UpstreamConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read buyer config: %w", err)
	}
	return parseUpstream(path, b, reg)
}

func parseUpstream(path string, b []byte, reg *evm.Registry) (*UpstreamConfig, error) {
	var u UpstreamConfig
	if err := yaml.UnmarshalStrict(b, &u); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	u.file = path
	if err := u.validate(reg); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &u, nil
}

// Validate checks the upstream as the proxy does when it loads the file.
func (u *UpstreamConfig) Validate(reg *evm.Registry) error { return u.validate(reg) }

func (u *UpstreamConfig) validate(reg *evm.Registry) error {
	if u.Name == "" {
		return errors.New("field name: required")
	}
	if strings.ContainsAny(u.Name, "/ ") {
		return fmt.Errorf("field name %q: must not contain '/' or spaces", u.Name)
	}
	ep, err := url.Parse(u.Endpoint)
	if err != nil || (ep.Scheme != "http" && ep.Scheme != "https") || ep.Host == "" {
		return fmt.Errorf("field endpoint %q: want an http(s) URL", u.Endpoint)
	}
	u.endpointURL = ep
	if u.chain, err = reg.Normalize(u.Network); err != nil {
		return fmt.Errorf("field network: %w", err)
	}
	if !common.IsHexAddress(u.PayTo) {
		return fmt.Errorf("field payTo %q: want a 0x address", u.PayTo)
	}
	if !common.IsHexAddress(u.Asset) {
		return fmt.Errorf("field asset %q: want the token's 0x address", u.Asset)
	}
	if u.price, err = evm.ParseAtomic(u.Price); err != nil || u.price.Sign() == 0 {
		return fmt.Errorf("field price %q: want the per-request price in atomic units, a positive integer", u.Price)
	}
	if u.MaxSpendPerDay != "" && u.MaxSpendPerDay != "0" {
		if u.dailyCap, err = evm.ParseAtomic(u.MaxSpendPerDay); err != nil {
			return fmt.Errorf("field maxSpendPerDay %q: want atomic units, a non-negative integer", u.MaxSpendPerDay)
		}
	}
	if len(u.Models) == 0 && u.RemoteModel != "" {
		u.Models = []string{u.RemoteModel}
	}
	payTo := common.HexToAddress(u.PayTo)
	for i, a := range u.PreSignedAuths {
		auth, err := evm.AuthorizationFromWire(a.Authorization)
		if err != nil {
			return fmt.Errorf("field preSignedAuths[%d]: %w", i, err)
		}
		if auth.To != payTo {
			return fmt.Errorf("field preSignedAuths[%d].authorization.to %s: differs from payTo %s", i, auth.To.Hex(), payTo.Hex())
		}
		if auth.Value.Cmp(u.price) != 0 {
			return fmt.Errorf("field preSignedAuths[%d].authorization.value %s: differs from price %s", i, auth.Value, u.price)
		}
		if _, err := evm.DecodeSignature(a.Signature); err != nil {
			return fmt.Errorf("field preSignedAuths[%d]: %w", i, err)
		}
	}
	return nil
}
