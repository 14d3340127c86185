package controllercmd

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/kube"
	"github.com/obolstack/obol/internal/testenv"
	"github.com/obolstack/obol/internal/testenv/wait"
)

func TestNewCmdControllerParsesFlags(t *testing.T) {
	f, _ := cmdutil.NewTestFactory()
	f.Global.Kubeconfig = "/k"
	var got *Options
	cmd := NewCmdController(f, func(o *Options) error { got = o; return nil })
	cmd.SetArgs([]string{"--leader-elect", "--metrics-bind-address", "0", "--health-probe-bind-address", ":9",
		"--verifier-service", "v", "--verifier-namespace", "obol", "--verifier-port", "9090",
		"--gateway-name", "gw", "--gateway-namespace", "gwns", "--public-base-url", "https://x"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if !got.LeaderElect || got.MetricsAddr != "0" || got.ProbeAddr != ":9" || got.VerifierService != "v" ||
		got.VerifierNamespace != "obol" || got.VerifierPort != 9090 || got.GatewayName != "gw" ||
		got.GatewayNamespace != "gwns" || got.PublicBaseURL != "https://x" || got.Kube.Kubeconfig != "/k" {
		t.Errorf("options = %+v", got)
	}

	// defaults
	cmd = NewCmdController(f, func(o *Options) error { got = o; return nil })
	cmd.SetArgs(nil)
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got.VerifierService != "obol-verifier" || got.VerifierPort != 8080 || got.LeaderElect || got.LeaderElectionID == "" {
		t.Errorf("defaults = %+v", got)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// `obol controller` runs a manager against a real API server, with leader
// election, health probes and metrics, and stops cleanly.
func TestRunServesProbesAndMetrics(t *testing.T) {
	k, err := testenv.StartKube(testenv.WithCRDs("../../../charts/obol/crds"))
	defer k.Stop()
	testenv.SkipOrFail(t, err)
	k.LogOnFailure(t)
	t.Setenv("POD_NAMESPACE", "default")

	_, ios := cmdutil.NewTestFactory()
	probe, metrics := freePort(t), freePort(t)
	opts := &Options{IO: ios, Kube: kube.Options{Kubeconfig: k.Kubeconfig},
		MetricsAddr: metrics, ProbeAddr: probe, LeaderElect: true, LeaderElectionID: "obol-controller-test",
		VerifierService: "obol-verifier", VerifierPort: 8080, GatewayName: "gw", GatewayNamespace: "gw",
		GatewayMissingRetry: time.Second, Resync: time.Minute}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // also when the test fails before its own cancel
	done := make(chan error, 1)
	go func() { done <- Run(ctx, opts) }()

	get := func(url string) (int, error) {
		resp, err := http.Get(url)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	// The readiness endpoint is the event that says the manager is up.
	wait.For(t, 60*time.Second, "/readyz to answer 200", func() error {
		select {
		case err := <-done:
			t.Fatalf("controller exited: %v", err)
		default:
		}
		code, err := get(fmt.Sprintf("http://%s/readyz", probe))
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("status %d", code)
		}
		return err
	})
	if code, err := get(fmt.Sprintf("http://%s/healthz", probe)); err != nil || code != 200 {
		t.Errorf("/healthz = %d %v", code, err)
	}
	if code, err := get(fmt.Sprintf("http://%s/metrics", metrics)); err != nil || code != 200 {
		t.Errorf("/metrics = %d %v", code, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("controller did not stop within 30s")
	}
}
