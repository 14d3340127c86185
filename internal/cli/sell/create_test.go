package sell

import (
	"os"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/kube"
	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
	"github.com/obolstack/obol/internal/offer"
)

const payTo = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"

func TestNewCmdCreateParsesFlags(t *testing.T) {
	f, _ := cmdutil.NewTestFactory()
	f.Global.Namespace = "shop"
	var got *CreateOptions
	cmd := NewCmdCreate(f, func(o *CreateOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"qwen", "--upstream", "ollama.llm:11434", "--price", "0.002", "--chain", "base",
		"--pay-to", payTo, "--type", "inference", "--model", "qwen3:8b", "--path", "/qwen",
		"--description", "Qwen", "--asset", "USDC", "--settle", "after-response", "--wait", "--dry-run"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got.Name != "qwen" || got.Upstream != "ollama.llm:11434" || got.Price != "0.002" || got.Chain != "base" ||
		got.PayTo != payTo || got.Type != "inference" || got.Model != "qwen3:8b" || got.Path != "/qwen" ||
		got.Description != "Qwen" || got.Asset != "USDC" || got.Settle != "after-response" || !got.Wait || !got.DryRun || got.Kube.Namespace != "shop" {
		t.Errorf("options = %+v", got)
	}
}

func TestBuildOfferFillsRegistryFacts(t *testing.T) {
	o, err := BuildOffer(&CreateOptions{Request: offer.Request{Name: "weather", Upstream: "weather-api:8080", Price: "0.001",
		Chain: "base-sepolia", PayTo: strings.ToLower(payTo)}}, "demo")
	if err != nil {
		t.Fatal(err)
	}
	p := o.Spec.Payment
	if p.Network != "eip155:84532" || p.PayTo != payTo || p.Scheme != v1alpha1.SchemeExact {
		t.Errorf("payment = %+v (want CAIP-2 network, checksummed payTo)", p)
	}
	if p.Asset == nil || p.Asset.Address != "0x036CbD53842c5426634e7929541eC2318f3dCF7e" || p.Asset.Decimals != 6 ||
		p.Asset.Symbol != "USDC" || p.Asset.EIP712Name != "USDC" || p.Asset.EIP712Version != "2" || p.Asset.TransferMethod != v1alpha1.TransferEIP3009 {
		t.Errorf("asset = %+v", p.Asset)
	}
	if o.Spec.Path != "/services/weather" || o.Spec.Type != v1alpha1.OfferTypeHTTP || o.Namespace != "demo" {
		t.Errorf("spec = %+v", o.Spec)
	}
}

func TestBuildOfferRejectsBadInput(t *testing.T) {
	base := CreateOptions{Request: offer.Request{Name: "weather", Upstream: "weather-api:8080", Price: "0.001", Chain: "base-sepolia", PayTo: payTo}}
	for name, tc := range map[string]struct {
		mutate func(*CreateOptions)
		want   string
	}{
		"checksum":      {func(o *CreateOptions) { o.PayTo = "0x70997970C51812dc3A010C7d01b50e0d17dc79c8" }, "--pay-to"},
		"short address": {func(o *CreateOptions) { o.PayTo = "0x1234" }, "--pay-to"},
		"no address":    {func(o *CreateOptions) { o.PayTo = "" }, "--pay-to"},
		"zero address":  {func(o *CreateOptions) { o.PayTo = "0x0000000000000000000000000000000000000000" }, "zero address"},
		"chain":         {func(o *CreateOptions) { o.Chain = "base-goerli" }, "--chain"},
		"price digits":  {func(o *CreateOptions) { o.Price = "0.0000001" }, "--price"},
		"price format":  {func(o *CreateOptions) { o.Price = "1,5" }, "--price"},
		"price zero":    {func(o *CreateOptions) { o.Price = "0" }, "zero"},
		"no price":      {func(o *CreateOptions) { o.Price = "" }, "--price"},
		"asset":         {func(o *CreateOptions) { o.Asset = "DAI" }, "--asset"},
		"name":          {func(o *CreateOptions) { o.Name = "Weather_API" }, "name"},
		"path":          {func(o *CreateOptions) { o.Path = "weather" }, "--path"},
		"type":          {func(o *CreateOptions) { o.Type = "grpc" }, "--type"},
		"model":         {func(o *CreateOptions) { o.Type = "inference" }, "--model"},
		"upstream":      {func(o *CreateOptions) { o.Upstream = "weather-api" }, "--upstream"},
		"settle":        {func(o *CreateOptions) { o.Settle = "streaming" }, "--settle: \"streaming\": use after-response"},
	} {
		opts := base
		tc.mutate(&opts)
		_, err := BuildOffer(&opts, "demo")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", name, err, tc.want)
		}
	}
}

// --dry-run needs no cluster and prints a manifest that decodes strictly
// into the ServiceOffer type (the envtest suite also has the API server
// accept it).
func TestDryRunPrintsManifest(t *testing.T) {
	f, ios := cmdutil.NewTestFactory()
	out := ios.Out.(interface{ String() string })
	opts := &CreateOptions{IO: f.IO, Kube: kube.Options{Namespace: "demo", Kubeconfig: "/nonexistent"}, Output: "yaml",
		Request: offer.Request{Name: "weather", Upstream: "weather-api:8080", Price: "0.001", Chain: "base-sepolia", PayTo: payTo}, DryRun: true}
	if err := createRun(t.Context(), opts); err != nil {
		t.Fatal(err)
	}
	var o v1alpha1.ServiceOffer
	if err := yaml.UnmarshalStrict([]byte(out.String()), &o); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if o.APIVersion != "obol.org/v1alpha1" || o.Kind != "ServiceOffer" || o.Name != "weather" || o.Namespace != "demo" ||
		o.Spec.Payment.Price.PerRequest != "0.001" {
		t.Errorf("manifest = %s", out)
	}
	if !strings.Contains(out.String(), `payTo: "`+payTo+`"`) {
		t.Errorf("addresses must be quoted in YAML (a YAML 1.1 reader may take 0x... for a number):\n%s", out)
	}
	if strings.Contains(out.String(), "status") || strings.Contains(out.String(), "creationTimestamp") {
		t.Errorf("manifest carries status or creationTimestamp:\n%s", out)
	}
}

// --settle is written into spec.settle; without it the type's default is
// (on-headers for inference, after-response otherwise).
func TestBuildOfferSettleMode(t *testing.T) {
	for _, tc := range []struct {
		typ, model, settle string
		want               v1alpha1.SettleMode
	}{
		{"http", "", "", v1alpha1.SettleAfterResponse},
		{"inference", "qwen3:8b", "", v1alpha1.SettleOnHeaders},
		{"http", "", "on-headers", v1alpha1.SettleOnHeaders},
		{"inference", "qwen3:8b", "After-Response", v1alpha1.SettleAfterResponse},
	} {
		o, err := BuildOffer(&CreateOptions{Request: offer.Request{Name: "x", Upstream: "x:8080", Price: "0.001",
			Chain: "base-sepolia", PayTo: payTo, Type: tc.typ, Model: tc.model, Settle: tc.settle}}, "demo")
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		if o.Spec.Settle != tc.want {
			t.Errorf("type %s --settle %q: spec.settle = %q, want %q", tc.typ, tc.settle, o.Spec.Settle, tc.want)
		}
	}
}

func TestCreateDiscoveryFlags(t *testing.T) {
	f, _ := cmdutil.NewTestFactory()
	var got *CreateOptions
	cmd := NewCmdCreate(f, func(o *CreateOptions) error { got = o; return nil })
	dir := t.TempDir()
	example := dir + "/today.json"
	if err := os.WriteFile(example, []byte(`{"temp": 21.5}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd.SetArgs([]string{"weather", "--upstream", "weather-api:8080", "--price", "0.001", "--chain", "base-sepolia",
		"--pay-to", payTo, "--method", "get", "--category", "weather", "--private",
		"--input-schema", `{"type":"object","properties":{"city":{"type":"string"}}}`,
		"--output-schema", `{"type":"object","required":["temp"]}`, "--output-example", "@" + example})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got.Method != "get" || got.Category != "weather" || !got.Private || got.OutputExample != "@"+example {
		t.Fatalf("options = %+v", got.Request)
	}
	o, err := BuildOffer(got, "demo")
	if err != nil {
		t.Fatal(err)
	}
	d := o.Spec.Discovery
	if d == nil || d.Public == nil || *d.Public || d.Method != "get" || d.Category != "weather" ||
		string(d.OutputExample.Raw) != `{"temp":21.5}` || string(d.InputSchema.Raw) != `{"type":"object","properties":{"city":{"type":"string"}}}` {
		t.Errorf("discovery = %+v", d)
	}
	if o.IsPublic() {
		t.Error("--private offer is public")
	}

	// Problems name the flag.
	for _, c := range []struct {
		mutate func(*CreateOptions)
		want   string
	}{
		{func(o *CreateOptions) { o.Method = "TRACE" }, "--method"},
		{func(o *CreateOptions) { o.InputSchema = `{"$ref":"#/x"}` }, "--input-schema"},
		{func(o *CreateOptions) { o.OutputExample = `{"t":1}` }, "--output-example: does not match outputSchema"},
		{func(o *CreateOptions) { o.OutputSchema = "@" + dir + "/missing.json" }, "--output-schema"},
	} {
		opts := *got
		c.mutate(&opts)
		if _, err := BuildOffer(&opts, "demo"); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("want an error naming %q, got %v", c.want, err)
		}
	}
}
