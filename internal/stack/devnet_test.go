package stack

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/obolstack/obol/internal/devchain"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/verifier"
)

var devnetOn = map[string]any{"devnet": map[string]any{"enabled": true}}

func argsOf(t *testing.T, objs []*unstructured.Unstructured, deployment, container string) []string {
	t.Helper()
	d := find(objs, "Deployment", deployment)
	if d == nil {
		t.Fatalf("no Deployment %s", deployment)
	}
	all := containers(t, d)
	inits, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "initContainers")
	for _, c := range inits {
		all = append(all, c.(map[string]any))
	}
	for _, c := range all {
		if c["name"] == container {
			var out []string
			for _, a := range c["args"].([]any) {
				out = append(out, a.(string))
			}
			return out
		}
	}
	t.Fatalf("Deployment %s has no container %s", deployment, container)
	return nil
}

func TestRenderDevnetOffByDefault(t *testing.T) {
	_, objs := render(t, RenderOptions{})
	for _, name := range []string{"obol-devchain", "obol-facilitator", "obol-upstream"} {
		if find(objs, "Deployment", name) != nil || find(objs, "Service", name) != nil {
			t.Errorf("%s rendered without devnet.enabled", name)
		}
	}
	if n := len(containers(t, find(objs, "Deployment", "obol-verifier"))); n != 1 {
		t.Errorf("verifier has %d containers without devnet, want 1", n)
	}
}

func TestRenderDevnet(t *testing.T) {
	_, objs := render(t, RenderOptions{Namespace: "obol-system", Values: devnetOn})
	for _, name := range []string{"obol-devchain", "obol-facilitator", "obol-upstream"} {
		if find(objs, "Deployment", name) == nil || find(objs, "Service", name) == nil {
			t.Errorf("devnet lacks the Deployment or Service %s", name)
		}
	}
	rpc := "http://obol-devchain.obol-system.svc:8545"
	chain := strings.Join(argsOf(t, objs, "obol-devchain", "chain"), " ")
	if chain != "dev chain --listen=0.0.0.0:8545 --key-dir=/tmp/keys --buyers=3" {
		t.Errorf("chain args %q", chain)
	}
	keys := strings.Join(argsOf(t, objs, "obol-facilitator", "keys"), " ")
	if !strings.Contains(keys, "dev keys --key-dir=/var/run/obol/devnet") || !strings.Contains(keys, "--wait-rpc="+rpc) {
		t.Errorf("facilitator init args %q", keys)
	}
	fac := strings.Join(argsOf(t, objs, "obol-facilitator", "facilitator"), " ")
	for _, want := range []string{
		"facilitator serve", "--chain=" + evm.DevChainName, "--rpc=" + rpc,
		"--key-file=/var/run/obol/devnet/facilitator.key",
		"--asset=" + devchain.TokenAddress().Hex(),
	} {
		if !strings.Contains(fac, want) {
			t.Errorf("facilitator args %q lack %q", fac, want)
		}
	}
	if up := strings.Join(argsOf(t, objs, "obol-upstream", "upstream"), " "); up != "dev upstream --listen=:9090" {
		t.Errorf("upstream args %q", up)
	}
	fwd := strings.Join(argsOf(t, objs, "obol-verifier", "facilitator-forward"), " ")
	if fwd != "dev forward --listen=127.0.0.1:4021 --to=obol-facilitator.obol-system.svc:4021" {
		t.Errorf("verifier forwarder args %q", fwd)
	}

	// The verifier's globals compile, pointing at the devnet: chain, token,
	// seller and the loopback forwarder.
	cm := find(objs, "ConfigMap", "obol-verifier")
	data, _, _ := unstructured.NestedString(cm.Object, "data", "config.yaml")
	spec, err := verifier.ParseSpec("config.yaml", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := verifier.Compile(spec.WithRoutes("test", []verifier.RouteSpec{{Pattern: "/weather", Price: "0.001", Upstream: "http://obol-upstream.obol-system.svc:9090"}}), evm.NewRegistry(), verifier.Environment{})
	if err != nil {
		t.Fatalf("devnet verifier config does not compile: %v\n%s", err, data)
	}
	if !cfg.Chain.Dev || cfg.Chain.ChainID != evm.DevChainID || cfg.FacilitatorURL != "http://127.0.0.1:4021" {
		t.Errorf("verifier chain %+v facilitator %s", cfg.Chain, cfg.FacilitatorURL)
	}
	r := cfg.Routes[0]
	if r.Token.Address != devchain.TokenAddress() || r.Token.EIP712Name != evm.DevTokenName || r.Token.Decimals != devchain.TokenDecimals {
		t.Errorf("route token %+v, want the devnet token", r.Token)
	}
	if !strings.Contains(data, devchain.NewAccount("seller").Address.Hex()) {
		t.Errorf("verifier payTo is not the dev seller:\n%s", data)
	}

	// An explicit payTo wins; chain and facilitator follow the devnet.
	_, objs = render(t, RenderOptions{Values: map[string]any{
		"devnet":   map[string]any{"enabled": true, "upstream": map[string]any{"enabled": false}},
		"verifier": map[string]any{"payTo": "0x1111111111111111111111111111111111111111", "chain": "base"},
	}})
	cm = find(objs, "ConfigMap", "obol-verifier")
	data, _, _ = unstructured.NestedString(cm.Object, "data", "config.yaml")
	if !strings.Contains(data, "0x1111111111111111111111111111111111111111") || !strings.Contains(data, `chain: "obol-dev"`) {
		t.Errorf("devnet with payTo:\n%s", data)
	}
	if find(objs, "Deployment", "obol-upstream") != nil {
		t.Error("devnet.upstream.enabled=false still renders the upstream")
	}
}
