package stackcmd

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/stack"
	"github.com/obolstack/obol/internal/testenv"
)

var (
	kube    *testenv.Kube
	kubeErr error
)

func TestMain(m *testing.M) {
	kube, kubeErr = testenv.StartKube(testenv.WithCRDs(
		"../../../testdata/crds/prometheus-operator",
		"../../../testdata/crds/gateway-api",
	))
	code := m.Run()
	kube.Stop()
	os.Exit(code)
}

func testFactory() (*cmdutil.Factory, *bytes.Buffer, *bytes.Buffer) {
	f, _ := cmdutil.NewTestFactory()
	ios, _, out, errOut := cmdutil.Test()
	f.IO = ios
	return f, out, errOut
}

func TestInstallFlags(t *testing.T) {
	f, _, _ := testFactory()
	f.Global.Namespace = "payments"
	f.Global.Kubeconfig = "/tmp/kc"
	var got *InstallOptions
	cmd := NewCmdInstall(f, func(o *InstallOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"-f", "a.yaml", "--values", "b.yaml", "--set", "verifier.payTo=0xabc", "--set", "buyer.enabled=false",
		"--dry-run", "--wait", "--timeout", "90s", "--release-name", "shop"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got.ValueFiles, ",") != "a.yaml,b.yaml" || strings.Join(got.Sets, ",") != "verifier.payTo=0xabc,buyer.enabled=false" {
		t.Errorf("values flags: %v %v", got.ValueFiles, got.Sets)
	}
	if !got.DryRun || !got.Wait || got.Timeout != 90*time.Second || got.ReleaseName != "shop" || got.Upgrade {
		t.Errorf("options %+v", got)
	}
	if got.Namespace != "payments" || got.Kubeconfig != "/tmp/kc" {
		t.Errorf("global flags not carried: ns=%q kubeconfig=%q", got.Namespace, got.Kubeconfig)
	}

	var up *InstallOptions
	cmd = NewCmdUpgrade(f, func(o *InstallOptions) error { up = o; return nil })
	cmd.SetArgs([]string{"--reset-values"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if !up.Upgrade || !up.ResetValues || up.Timeout != stack.DefaultTimeout || up.ReleaseName != "obol" {
		t.Errorf("upgrade options %+v", up)
	}
}

func TestRenderCommand(t *testing.T) {
	f, out, errOut := testFactory()
	cmd := NewCmdRender(f, nil)
	cmd.SetArgs([]string{"--set", "verifier.payTo=0x3333333333333333333333333333333333333333"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "kind: CustomResourceDefinition") || !strings.Contains(out.String(), `payTo: "0x3333333333333333333333333333333333333333"`) {
		t.Errorf("render output lacks CRDs or the payTo:\n%.2000s", out)
	}
	if strings.Contains(out.String(), "kind: ServiceMonitor") {
		t.Error("render without --api-versions included a ServiceMonitor")
	}
	if !strings.Contains(errOut.String(), "Note: monitoring:") {
		t.Errorf("no note about the skipped monitoring objects on stderr: %q", errOut)
	}

	f, out, errOut = testFactory()
	cmd = NewCmdRender(f, nil)
	cmd.SetArgs([]string{"-a", "monitoring.coreos.com/v1", "--skip-crds"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"kind: ServiceMonitor", "kind: PodMonitor", "kind: PrometheusRule"} {
		if !strings.Contains(out.String(), k) {
			t.Errorf("render -a monitoring.coreos.com/v1 lacks %s", k)
		}
	}
	if strings.Contains(out.String(), "kind: CustomResourceDefinition") {
		t.Error("--skip-crds printed CRDs")
	}
	if errOut.Len() != 0 {
		t.Errorf("unexpected stderr %q", errOut)
	}
}

func TestRenderBadValues(t *testing.T) {
	f, _, _ := testFactory()
	cmd := NewCmdRender(f, nil)
	cmd.SetArgs([]string{"-f", filepath.Join(t.TempDir(), "nope.yaml")})
	err := cmd.Execute()
	if err == nil || !strings.Contains(err.Error(), "values file") {
		t.Errorf("missing values file: %v", err)
	}
	cmd = NewCmdRender(f, nil)
	cmd.SetArgs([]string{"--set", "monitoring.enabled=sometimes"})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "auto, true or false") {
		t.Errorf("bad monitoring.enabled: %v", err)
	}
}

// `obol stack install --dry-run` through the CLI's run function against the
// test API server (kubeconfig file written for it): every object accepted.
func TestInstallDryRunAgainstAPIServer(t *testing.T) {
	testenv.SkipOrFail(t, kubeErr)
	kube.LogOnFailure(t)
	ns := kube.NewNamespace(t)

	f, out, errOut := testFactory()
	f.Global.Kubeconfig = kube.Kubeconfig
	f.Global.Namespace = ns
	f.Global.Output = cmdutil.OutputJSON
	cmd := NewCmdInstall(f, nil)
	cmd.SetArgs([]string{"--dry-run", "--set", "verifier.payTo=0x4444444444444444444444444444444444444444", "--set", "frontend.serviceAccount.name=ui-" + ns})
	if err := cmd.Execute(); err != nil {
		t.Fatalf("obol stack install --dry-run: %v\nstderr:\n%s", err, errOut)
	}
	var res stack.Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("-o json output: %v\n%s", err, out)
	}
	if !res.DryRun || res.Namespace != ns || res.Release != "obol" {
		t.Errorf("result %+v", res)
	}
	kinds := map[string]int{}
	for _, o := range res.Objects {
		kinds[o.Kind]++
	}
	if kinds["ServiceMonitor"] != 1 || kinds["PrometheusRule"] != 1 || kinds["Deployment"] != 3 || kinds["CustomResourceDefinition"] < 2 {
		t.Errorf("dry-run objects %v", kinds)
	}
	t.Logf("dry run accepted %d objects: %v", len(res.Objects), kinds)

	// Table output, and status of a release that does not exist.
	f, out, _ = testFactory()
	f.Global.Kubeconfig = kube.Kubeconfig
	f.Global.Namespace = ns
	cmd = NewCmdInstall(f, nil)
	cmd.SetArgs([]string{"--dry-run", "--set", "frontend.rbac.create=false"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "Dry run: the API server accepted the") {
		t.Errorf("table output:\n%s", out)
	}
	f, _, _ = testFactory()
	f.Global.Kubeconfig = kube.Kubeconfig
	f.Global.Namespace = ns
	cmd = NewCmdStatus(f, nil)
	cmd.SetArgs(nil)
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "obol stack install") {
		t.Errorf("status without a release: %v", err)
	}
}

func TestInstallUnreachableCluster(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600)
	f, _, _ := testFactory()
	f.Global.Kubeconfig = kc
	cmd := NewCmdInstall(f, nil)
	cmd.SetArgs([]string{"--dry-run", "--timeout", "5s"})
	err := cmd.Execute()
	if err == nil || !strings.Contains(err.Error(), "cluster") {
		t.Errorf("unreachable cluster: %v", err)
	}
}

// A real install, `status -o json` and uninstall, all through the CLI.
func TestInstallStatusUninstallCLI(t *testing.T) {
	testenv.SkipOrFail(t, kubeErr)
	kube.LogOnFailure(t)
	ns := kube.NewNamespace(t)
	run := func(cmd func(*cmdutil.Factory) *cobra.Command, output string, args ...string) (string, string, error) {
		f, out, errOut := testFactory()
		f.Global.Kubeconfig = kube.Kubeconfig
		f.Global.Namespace = ns
		f.Global.Output = output
		c := cmd(f)
		c.SetArgs(args)
		err := c.Execute()
		return out.String(), errOut.String(), err
	}
	install := func(f *cmdutil.Factory) *cobra.Command { return NewCmdInstall(f, nil) }
	status := func(f *cmdutil.Factory) *cobra.Command { return NewCmdStatus(f, nil) }
	uninstall := func(f *cmdutil.Factory) *cobra.Command { return NewCmdUninstall(f, nil) }

	out, errOut, err := run(install, cmdutil.OutputTable, "--release-name", "obol-cli", "--set", "frontend.serviceAccount.name=ui-cli")
	if err != nil {
		t.Fatalf("install: %v\n%s", err, errOut)
	}
	if !strings.Contains(out, "Installed release obol-cli in namespace "+ns+": revision 1, deployed") {
		t.Errorf("install output:\n%s", out)
	}
	out, _, err = run(status, cmdutil.OutputJSON, "--release-name", "obol-cli")
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	var st stack.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	if st.Release != "obol-cli" || st.Status != "deployed" || len(st.Deployments) != 3 || !st.Monitoring {
		t.Errorf("status %+v", st)
	}
	out, _, err = run(status, cmdutil.OutputTable, "--release-name", "obol-cli")
	if err != nil || !strings.Contains(out, "obol-cli-verifier") || !strings.Contains(out, "0/1") {
		t.Errorf("status table (%v):\n%s", err, out)
	}
	out, errOut, err = run(uninstall, cmdutil.OutputTable, "--release-name", "obol-cli")
	if err != nil {
		t.Fatalf("uninstall: %v", err)
	}
	if !strings.Contains(out, "Uninstalled release obol-cli") || !strings.Contains(errOut, "CRDs") {
		t.Errorf("uninstall output:\n%s\nstderr:\n%s", out, errOut)
	}
}

// --devnet turns the devnet on; a later --set still wins.
func TestDevnetFlag(t *testing.T) {
	f, out, _ := testFactory()
	cmd := NewCmdRender(f, nil)
	cmd.SetArgs([]string{"--devnet", "--skip-crds"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"name: obol-devchain", "name: obol-facilitator", "name: facilitator-forward", `chain: "obol-dev"`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("render --devnet lacks %q", want)
		}
	}
	v := valueFlags{Devnet: true, Sets: []string{"devnet.enabled=false"}}
	vals, err := v.values()
	if err != nil {
		t.Fatal(err)
	}
	if on := vals["devnet"].(map[string]any)["enabled"]; on != false {
		t.Errorf("--devnet --set devnet.enabled=false gave %v", on)
	}

	var got *InstallOptions
	cmd = NewCmdInstall(f, func(o *InstallOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"--devnet"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if vals, err := got.values(); err != nil || vals["devnet"].(map[string]any)["enabled"] != true {
		t.Errorf("install --devnet values %v %v", vals, err)
	}
}
