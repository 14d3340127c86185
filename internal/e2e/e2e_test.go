// Package e2e runs obol against a real single-node Kubernetes cluster with
// real pods (hack/cluster.sh), the way a user would: the obol binary's
// commands from the host, the chart's servers from the obol image in the
// cluster, an in-cluster development chain and facilitator, and the
// cluster's prometheus-operator and Prometheus.
//
// It runs only when OBOL_E2E=1 (`make e2e` sets it, starts the cluster and
// tears it down); OBOL_E2E_BIN names the obol binary whose version matches
// the imported image.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/obolstack/obol/internal/kube"
	"github.com/obolstack/obol/internal/testenv"
)

// env is what the steps share.
type env struct {
	cluster *testenv.RealCluster
	obol    string
	ns      string
	work    string

	// set by the steps
	paidCalls int    // calls paid for the offer so far
	keyDir    string // the devnet accounts' key files (obol dev keys)
}

// The offer the test sells: the devnet's demo API at a price of 0.001 test
// USDC (1000 atomic units) paid to the devnet's seller account. An offer
// mounts its upstream Service at its path (the verifier strips the path
// before forwarding), so the demo API's /weather is offerPath + /weather.
const (
	offerName    = "weather"
	offerPath    = "/demo"
	paidCity     = "Porto"
	paidCallPath = "/weather?city=" + paidCity
	offerPrice   = "0.001"
	priceAtomic  = 1000
	sellerAddr   = "0x45d85c1c6e4CF0f3055A928fd6D1903CBf70ec0B"
	tokenAddr    = "0x2b1894172E4e079140C3DaE53394356262b7e258"
)

func TestMarketplaceInCluster(t *testing.T) {
	if os.Getenv("OBOL_E2E") != "1" {
		t.Skip("the end-to-end test runs with `make e2e` (OBOL_E2E=1, a running test cluster)")
	}
	c := testenv.Cluster(t)
	bin := os.Getenv("OBOL_E2E_BIN")
	if bin == "" {
		t.Fatal("OBOL_E2E_BIN must name the obol binary (make e2e builds bin/obol)")
	}
	e := &env{cluster: c, obol: bin, ns: "obol-system", work: t.TempDir()}
	steps := []struct {
		name string
		run  func(*testing.T, *env)
	}{
		{"StackInstall", stepStackInstall},
		{"SellCreate", stepSellCreate},
		{"PaidCall", stepPaidCall},
		{"Monitoring", stepMonitoring},
		{"BuyerProxy", stepBuyerProxy},
		{"Dashboard", stepDashboard},
		{"PauseResumeDelete", stepPauseResumeDelete},
		{"UpgradeUnderLoad", stepUpgradeUnderLoad},
		{"VerifierPodDelete", stepVerifierPodDelete},
		{"Uninstall", stepUninstall},
	}
	for _, s := range steps {
		start := time.Now()
		ok := t.Run(s.name, func(t *testing.T) { s.run(t, e) })
		t.Logf("step %s: %s in %s", s.name, map[bool]string{true: "ok", false: "FAILED"}[ok], time.Since(start).Round(time.Millisecond))
		if !ok {
			e.dumpState(t)
			t.FailNow()
		}
	}
}

// obolCmd runs the obol binary against the test cluster and returns its
// standard output; it fails the test (with both outputs) when the command
// fails or takes longer than timeout.
func (e *env) obolCmd(t *testing.T, timeout time.Duration, args ...string) string {
	t.Helper()
	out, errOut, err := e.obolTry(timeout, args...)
	if err != nil {
		t.Fatalf("obol %s: %v\n--- stdout ---\n%s\n--- stderr ---\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// obolTry runs the obol binary and returns its outputs and error.
func (e *env) obolTry(timeout time.Duration, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.obol, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+e.cluster.Kubeconfig, "NO_COLOR=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %s: %w", timeout, err)
	}
	return stdout.String(), stderr.String(), err
}

// eventually polls cond every 250ms until it returns nil, failing the test
// with what and cond's last error after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// deploymentsReady reports an error naming the first Deployment in ns that
// is not fully rolled out.
func (e *env) deploymentsReady(t *testing.T, ns string) ([]appsv1.Deployment, error) {
	list, err := e.cluster.Clientset.AppsV1().Deployments(ns).List(ctx(t), metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	if len(list.Items) == 0 {
		return nil, fmt.Errorf("no Deployment in %s", ns)
	}
	for _, d := range list.Items {
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		if d.Status.ObservedGeneration < d.Generation || d.Status.UpdatedReplicas != want ||
			d.Status.ReadyReplicas != want || d.Status.AvailableReplicas != want || d.Status.Replicas != want {
			return nil, fmt.Errorf("deployment %s/%s: %d/%d ready, %d updated, %d total", ns, d.Name, d.Status.ReadyReplicas, want, d.Status.UpdatedReplicas, d.Status.Replicas)
		}
	}
	return list.Items, nil
}

// serviceURL is http://CLUSTER-IP:PORT of a Service: the host reaches
// ClusterIPs through kube-proxy's rules.
func (e *env) serviceURL(t *testing.T, ns, name string) string {
	t.Helper()
	s, err := e.cluster.Clientset.CoreV1().Services(ns).Get(ctx(t), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get service %s/%s: %v", ns, name, err)
	}
	if s.Spec.ClusterIP == "" || s.Spec.ClusterIP == corev1.ClusterIPNone || len(s.Spec.Ports) == 0 {
		t.Fatalf("service %s/%s has no cluster IP and port", ns, name)
	}
	return fmt.Sprintf("http://%s:%d", s.Spec.ClusterIP, s.Spec.Ports[0].Port)
}

// httpGet does one GET with a 10s timeout and returns the status and body.
func httpGet(url string, header http.Header) (int, string, error) {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(c, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b), err
}

// dumpState logs pods, events and the logs of pods that are not ready, to
// explain a failed step.
func (e *env) dumpState(t *testing.T) {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pods, err := e.cluster.Clientset.CoreV1().Pods("").List(c, metav1.ListOptions{})
	if err != nil {
		t.Logf("list pods: %v", err)
		return
	}
	var b strings.Builder
	for _, p := range pods.Items {
		fmt.Fprintf(&b, "%s/%s %s", p.Namespace, p.Name, p.Status.Phase)
		for _, cs := range p.Status.ContainerStatuses {
			fmt.Fprintf(&b, " [%s ready=%v restarts=%d", cs.Name, cs.Ready, cs.RestartCount)
			if w := cs.State.Waiting; w != nil {
				fmt.Fprintf(&b, " waiting=%s: %s", w.Reason, w.Message)
			}
			if x := cs.LastTerminationState.Terminated; x != nil {
				fmt.Fprintf(&b, " last=%s exit %d", x.Reason, x.ExitCode)
			}
			b.WriteString("]")
		}
		b.WriteString("\n")
	}
	t.Logf("pods:\n%s", b.String())
	for _, ns := range []string{e.ns, "monitoring"} {
		pods, err := e.cluster.Clientset.CoreV1().Pods(ns).List(c, metav1.ListOptions{})
		if err != nil {
			continue
		}
		for _, p := range pods.Items {
			for _, cs := range p.Status.ContainerStatuses {
				if cs.Ready {
					continue
				}
				tail := int64(40)
				logs, err := e.cluster.Clientset.CoreV1().Pods(ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: cs.Name, TailLines: &tail}).DoRaw(c)
				if err != nil && !errors.Is(err, context.Canceled) {
					logs = []byte(err.Error())
				}
				t.Logf("logs of %s/%s %s:\n%s", ns, p.Name, cs.Name, logs)
			}
		}
		ev, err := e.cluster.Clientset.CoreV1().Events(ns).List(c, metav1.ListOptions{})
		if err == nil {
			var eb strings.Builder
			for _, x := range ev.Items {
				if x.Type != corev1.EventTypeNormal {
					fmt.Fprintf(&eb, "%s %s/%s: %s %s\n", x.Type, x.InvolvedObject.Kind, x.InvolvedObject.Name, x.Reason, x.Message)
				}
			}
			if eb.Len() > 0 {
				t.Logf("warning events in %s:\n%s", ns, eb.String())
			}
		}
	}
}

func stepStackInstall(t *testing.T, e *env) {
	// pullPolicy Never: the image exists only as the imported tarball, and
	// a pull must not leave the machine. Short scrape intervals keep the
	// monitoring step short.
	out := e.obolCmd(t, 6*time.Minute, "stack", "install", "--devnet", "--wait", "--timeout", "5m",
		"--set", "image.pullPolicy=Never",
		"--set", "monitoring.serviceMonitor.interval=5s", "--set", "monitoring.serviceMonitor.scrapeTimeout=4s",
		"--set", "monitoring.podMonitor.interval=5s", "--set", "monitoring.podMonitor.scrapeTimeout=4s")
	t.Logf("obol stack install --devnet --wait:\n%s", out)
	deps, err := e.deploymentsReady(t, e.ns)
	if err != nil {
		t.Fatalf("after --wait: %v", err)
	}
	for _, d := range deps {
		t.Logf("deployment %s: %d/%d ready", d.Name, d.Status.ReadyReplicas, d.Status.Replicas)
	}
	st := e.obolCmd(t, time.Minute, "stack", "status")
	t.Logf("obol stack status:\n%s", st)
	for _, d := range deps {
		want := fmt.Sprintf("%d/%d", d.Status.ReadyReplicas, d.Status.ReadyReplicas)
		if !strings.Contains(st, d.Name) || !strings.Contains(st, want) {
			t.Errorf("obol stack status does not show deployment %s as %s", d.Name, want)
		}
	}
	if !strings.Contains(st, "deployed") {
		t.Errorf("obol stack status does not say the release is deployed")
	}
}

// promSample is one element of an instant query's vector.
type promSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// promQuery runs an instant query on the cluster's Prometheus (through its
// Service's cluster IP) and returns the vector.
func (e *env) promQuery(t *testing.T, q string) ([]promSample, error) {
	t.Helper()
	base := e.serviceURL(t, "monitoring", "monitoring-prometheus")
	status, body, err := httpGet(base+"/api/v1/query?query="+url.QueryEscape(q), nil)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("query %s: HTTP %d: %s", q, status, body)
	}
	var r struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string       `json:"resultType"`
			Result     []promSample `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		return nil, fmt.Errorf("query %s: %w", q, err)
	}
	if r.Status != "success" || r.Data.ResultType != "vector" {
		return nil, fmt.Errorf("query %s: status %s, result type %s", q, r.Status, r.Data.ResultType)
	}
	return r.Data.Result, nil
}

// value is a sample's value as a float.
func (s promSample) value() float64 {
	str, _ := s.Value[1].(string)
	f, _ := strconv.ParseFloat(str, 64)
	return f
}

func stepSellCreate(t *testing.T, e *env) {
	// The devnet's demo API is the upstream: a Service with a ready endpoint.
	eventually(t, time.Minute, "the upstream Service obol-upstream to have a ready endpoint", func() error {
		sl, err := e.cluster.Clientset.DiscoveryV1().EndpointSlices(e.ns).List(ctx(t), metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=obol-upstream"})
		if err != nil {
			return err
		}
		for _, s := range sl.Items {
			for _, ep := range s.Endpoints {
				if ep.Conditions.Ready != nil && *ep.Conditions.Ready {
					return nil
				}
			}
		}
		return errors.New("no ready endpoint")
	})
	out := e.obolCmd(t, 3*time.Minute, "sell", "create", offerName, "-n", e.ns, "--upstream", "obol-upstream:9090",
		"--price", offerPrice, "--chain", "obol-dev", "--pay-to", sellerAddr, "--path", offerPath, "--wait", "--timeout", "2m")
	t.Logf("obol sell create --wait:\n%s", out)
	st := e.obolCmd(t, time.Minute, "sell", "status", offerName, "-n", e.ns)
	t.Logf("obol sell status:\n%s", st)
	if !strings.Contains(st, "Ready") {
		t.Errorf("obol sell status does not show Ready")
	}
	// The controller published the route as an HTTPRoute.
	raw, err := e.cluster.Clientset.Discovery().RESTClient().Get().
		AbsPath("/apis/gateway.networking.k8s.io/v1/namespaces", e.ns, "httproutes").DoRaw(ctx(t))
	if err != nil {
		t.Fatalf("list HTTPRoutes: %v", err)
	}
	if !strings.Contains(string(raw), offerPath) {
		t.Errorf("no HTTPRoute in %s sends %s: %s", e.ns, offerPath, raw)
	}
}

func stepPaidCall(t *testing.T, e *env) {
	verifier := e.serviceURL(t, e.ns, "obol-verifier")
	// kube-proxy programs a new Service asynchronously: wait for an answer.
	var status int
	var body string
	eventually(t, time.Minute, "the verifier to answer an unpaid call", func() error {
		var err error
		status, body, err = httpGet(verifier+offerPath, nil)
		return err
	})
	t.Logf("unpaid GET %s: HTTP %d", offerPath, status)
	if status != http.StatusPaymentRequired {
		t.Fatalf("unpaid call: HTTP %d, want 402: %s", status, body)
	}

	e.keyDir = filepath.Join(e.work, "keys")
	e.obolCmd(t, time.Minute, "dev", "keys", "--key-dir", e.keyDir, "-o", "json")
	rpc := e.serviceURL(t, e.ns, "obol-devchain")
	before := balanceOf(t, rpc, sellerAddr)

	// The paid call goes through a port-forward to a verifier pod, as a
	// seller's first check from a laptop would.
	fwd := e.portForwardService(t, e.ns, "obol-verifier")
	out := e.obolCmd(t, 2*time.Minute, "buy", "pay", fwd+offerPath+paidCallPath, "--key-file", filepath.Join(e.keyDir, "buyer-1.key"),
		"--chain", "obol-dev", "--max-amount", "0.01")
	e.paidCalls++
	t.Logf("obol buy pay %s (through a port-forward):\n%s", offerPath+paidCallPath, out)
	assertWeather(t, out)
	after := balanceOf(t, rpc, sellerAddr)
	delta := new(big.Int).Sub(after, before)
	t.Logf("seller %s balance on the in-cluster chain: %s -> %s atomic units (moved %s)", sellerAddr, before, after, delta)
	if delta.Cmp(big.NewInt(priceAtomic)) != 0 {
		t.Fatalf("seller balance moved by %s atomic units, want exactly %d", delta, priceAtomic)
	}
	// Two more paid calls, straight to the Service's cluster IP.
	for i := 0; i < 2; i++ {
		e.obolCmd(t, 2*time.Minute, "buy", "pay", verifier+offerPath, "--key-file", filepath.Join(e.keyDir, "buyer-1.key"),
			"--chain", "obol-dev", "--max-amount", "0.01")
		e.paidCalls++
	}
	final := balanceOf(t, rpc, sellerAddr)
	if got, want := new(big.Int).Sub(final, before), big.NewInt(int64(e.paidCalls)*priceAtomic); got.Cmp(want) != 0 {
		t.Fatalf("after %d paid calls the seller gained %s atomic units, want %s", e.paidCalls, got, want)
	}
	t.Logf("after %d paid calls the seller's balance is %s", e.paidCalls, final)
}

func stepMonitoring(t *testing.T, e *env) {
	// Both monitors are scraped: up == 1 for the verifier's ServiceMonitor
	// and the buyer's PodMonitor.
	var ups []promSample
	eventually(t, 4*time.Minute, "Prometheus to scrape the verifier and the buyer (up == 1)", func() error {
		var err error
		ups, err = e.promQuery(t, fmt.Sprintf(`up{namespace=%q}`, e.ns))
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, s := range ups {
			if s.value() == 1 {
				seen[s.Metric["container"]] = true
			}
		}
		if !seen["verifier"] || !seen["buyer"] {
			return fmt.Errorf("up == 1 for containers %v, want the verifier (ServiceMonitor) and the buyer (PodMonitor)", seen)
		}
		return nil
	})
	for _, s := range ups {
		t.Logf("up{job=%q, pod=%q} = %v", s.Metric["job"], s.Metric["pod"], s.value())
	}
	// The PrometheusRule's recording rules count the paid calls.
	q := fmt.Sprintf(`x402:revenue:lifetime_by_offer{offer_namespace=%q, offer_name=%q}`, e.ns, offerName)
	eventually(t, 2*time.Minute, "the recording rule "+q+" to count the paid calls", func() error {
		v, err := e.promQuery(t, q)
		if err != nil {
			return err
		}
		if len(v) != 1 || v[0].value() != float64(e.paidCalls) {
			return fmt.Errorf("got %v, want one sample of %d", v, e.paidCalls)
		}
		return nil
	})
	qa := fmt.Sprintf(`x402:revenue_atomic:lifetime_by_offer_chain_asset{offer_namespace=%q, offer_name=%q}`, e.ns, offerName)
	var atomic []promSample
	eventually(t, time.Minute, "the recording rule "+qa, func() error {
		var err error
		atomic, err = e.promQuery(t, qa)
		if err != nil {
			return err
		}
		if len(atomic) != 1 || atomic[0].value() != float64(e.paidCalls*priceAtomic) {
			return fmt.Errorf("got %v, want one sample of %d", atomic, e.paidCalls*priceAtomic)
		}
		return nil
	})
	t.Logf("%s = %d; %s = %v", q, e.paidCalls, qa, atomic[0].value())

	// obol earnings finds the cluster's Prometheus by itself.
	out := e.obolCmd(t, 2*time.Minute, "earnings", "-o", "json")
	t.Logf("obol earnings -o json:\n%s", out)
	var snap struct {
		Source struct {
			Kind           string `json:"kind"`
			RecordingRules string `json:"recordingRules"`
		} `json:"source"`
		Offers []struct {
			Namespace    string `json:"namespace"`
			Name         string `json:"name"`
			ChargedCalls struct {
				Lifetime int64 `json:"lifetime"`
			} `json:"chargedCalls"`
			Revenue []struct {
				LifetimeAtomic string `json:"lifetimeAtomic"`
			} `json:"revenue"`
		} `json:"offers"`
	}
	if err := json.Unmarshal([]byte(out), &snap); err != nil {
		t.Fatalf("obol earnings -o json: %v", err)
	}
	found := false
	for _, o := range snap.Offers {
		if o.Namespace != e.ns || o.Name != offerName {
			continue
		}
		found = true
		if o.ChargedCalls.Lifetime != int64(e.paidCalls) {
			t.Errorf("earnings: %d charged calls, want %d", o.ChargedCalls.Lifetime, e.paidCalls)
		}
		if len(o.Revenue) != 1 || o.Revenue[0].LifetimeAtomic != strconv.Itoa(e.paidCalls*priceAtomic) {
			t.Errorf("earnings: revenue %+v, want %d atomic units", o.Revenue, e.paidCalls*priceAtomic)
		}
	}
	if !found {
		t.Errorf("earnings shows no row for %s/%s", e.ns, offerName)
	}
}

// balanceOf reads the devnet token balance of addr over the chain's JSON-RPC.
func balanceOf(t *testing.T, rpcURL, addr string) *big.Int {
	t.Helper()
	data := "0x70a08231" + strings.Repeat("0", 24) + strings.ToLower(strings.TrimPrefix(addr, "0x"))
	return tokenCall(t, rpcURL, data, "the devnet chain to answer eth_call balanceOf")
}

// tokenCall runs eth_call against the devnet token with the given calldata,
// retrying until the chain answers, and returns the result as a number.
func tokenCall(t *testing.T, rpcURL, data, what string) *big.Int {
	t.Helper()
	req := fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"eth_call","params":[{"to":%q,"data":%q},"latest"]}`, tokenAddr, data)
	var out *big.Int
	eventually(t, 30*time.Second, what, func() error {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, err := http.NewRequestWithContext(c, http.MethodPost, rpcURL, strings.NewReader(req))
		if err != nil {
			return err
		}
		r.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var res struct {
			Result string          `json:"result"`
			Error  json.RawMessage `json:"error"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
			return err
		}
		if len(res.Error) > 0 || res.Result == "" {
			return fmt.Errorf("eth_call: %s", res.Error)
		}
		v, ok := new(big.Int).SetString(strings.TrimPrefix(res.Result, "0x"), 16)
		if !ok {
			return fmt.Errorf("eth_call result %q", res.Result)
		}
		out = v
		return nil
	})
	return out
}

// portForwardService forwards a local port to a ready pod of the Service
// and returns http://127.0.0.1:PORT; the forward stops with the test.
func (e *env) portForwardService(t *testing.T, ns, svc string) string {
	t.Helper()
	s, err := e.cluster.Clientset.CoreV1().Services(ns).Get(ctx(t), svc, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get service %s/%s: %v", ns, svc, err)
	}
	pods, err := e.cluster.Clientset.CoreV1().Pods(ns).List(ctx(t), metav1.ListOptions{LabelSelector: labels.SelectorFromSet(s.Spec.Selector).String()})
	if err != nil || len(pods.Items) == 0 {
		t.Fatalf("pods of service %s/%s: %v (%d)", ns, svc, err, len(pods.Items))
	}
	port := s.Spec.Ports[0].TargetPort.IntValue()
	if port == 0 {
		for _, c := range pods.Items[0].Spec.Containers {
			for _, p := range c.Ports {
				if p.Name == s.Spec.Ports[0].TargetPort.StrVal {
					port = int(p.ContainerPort)
				}
			}
		}
	}
	target := kube.PodPort{Namespace: ns, Pod: pods.Items[0].Name, Port: int32(port)}
	u, stop, err := kube.PortForward(ctx(t), e.cluster.Config, target, io.Discard)
	if err != nil {
		t.Fatalf("port-forward: %v", err)
	}
	t.Cleanup(stop)
	return u
}

func stepPauseResumeDelete(t *testing.T, e *env) {
	verifier := e.serviceURL(t, e.ns, "obol-verifier")
	statusIs := func(want int) func() error {
		return func() error {
			got, body, err := httpGet(verifier+offerPath, nil)
			if err != nil {
				return err
			}
			if got != want {
				return fmt.Errorf("HTTP %d: %.200s", got, body)
			}
			return nil
		}
	}
	series := fmt.Sprintf(`obol_x402_verifier_charged_requests_total{offer_namespace=%q, offer_name=%q}`, e.ns, offerName)
	pruned := func() error {
		v, err := e.promQuery(t, series)
		if err != nil {
			return err
		}
		if len(v) != 0 {
			return fmt.Errorf("still %d series: %v", len(v), v)
		}
		return nil
	}
	t.Logf("obol sell pause:\n%s", e.obolCmd(t, time.Minute, "sell", "pause", offerName, "-n", e.ns))
	eventually(t, time.Minute, "the paused offer's route to be withdrawn (404)", statusIs(http.StatusNotFound))
	eventually(t, 2*time.Minute, "the paused offer's series to be pruned in Prometheus", pruned)
	if out, errOut, err := e.obolTry(time.Minute, "buy", "pay", verifier+offerPath, "--key-file", filepath.Join(e.keyDir, "buyer-1.key"),
		"--chain", "obol-dev", "--max-amount", "0.01"); err == nil {
		t.Fatalf("obol buy pay on a paused offer succeeded:\n%s\n%s", out, errOut)
	} else {
		t.Logf("obol buy pay on the paused offer failed as it should: %v\n%s", err, strings.TrimSpace(errOut))
	}

	t.Logf("obol sell resume:\n%s", e.obolCmd(t, time.Minute, "sell", "resume", offerName, "-n", e.ns))
	eventually(t, time.Minute, "the resumed offer to ask for payment again (402)", statusIs(http.StatusPaymentRequired))
	e.obolCmd(t, 2*time.Minute, "buy", "pay", verifier+offerPath, "--key-file", filepath.Join(e.keyDir, "buyer-1.key"),
		"--chain", "obol-dev", "--max-amount", "0.01")
	e.paidCalls++
	t.Logf("paid call after resume: ok (%d paid calls in all)", e.paidCalls)
	// Pausing withdrew the route and pruned its series, so the counter
	// started again at the resume: it holds the one call since.
	eventually(t, time.Minute, "Prometheus to count the paid call after resume", func() error {
		v, err := e.promQuery(t, "sum("+series+")")
		if err != nil {
			return err
		}
		if len(v) != 1 || v[0].value() != 1 {
			return fmt.Errorf("got %v, want 1", v)
		}
		return nil
	})

	t.Logf("obol sell delete --wait:\n%s", e.obolCmd(t, 3*time.Minute, "sell", "delete", offerName, "-n", e.ns, "--wait", "--timeout", "2m"))
	eventually(t, time.Minute, "the deleted offer's route to be gone (404)", statusIs(http.StatusNotFound))
	raw, err := e.cluster.Clientset.Discovery().RESTClient().Get().
		AbsPath("/apis/gateway.networking.k8s.io/v1/namespaces", e.ns, "httproutes").DoRaw(ctx(t))
	if err != nil {
		t.Fatalf("list HTTPRoutes: %v", err)
	}
	if strings.Contains(string(raw), offerPath) {
		t.Errorf("an HTTPRoute for %s is left after delete: %s", offerPath, raw)
	}
	eventually(t, 2*time.Minute, "the verifier's series for the deleted offer to be pruned in Prometheus", pruned)
	t.Logf("%s: no series after delete", series)
}

func stepUpgradeUnderLoad(t *testing.T, e *env) {
	e.obolCmd(t, 3*time.Minute, "sell", "create", offerName, "-n", e.ns, "--upstream", "obol-upstream:9090",
		"--price", offerPrice, "--chain", "obol-dev", "--pay-to", sellerAddr, "--path", offerPath, "--wait", "--timeout", "2m")
	verifier := e.serviceURL(t, e.ns, "obol-verifier")
	eventually(t, time.Minute, "the re-created offer to ask for payment", func() error {
		st, _, err := httpGet(verifier+offerPath, nil)
		if err != nil {
			return err
		}
		if st != http.StatusPaymentRequired {
			return fmt.Errorf("HTTP %d", st)
		}
		return nil
	})
	// Paid calls, one after another, for as long as the upgrade runs
	// (bounded: at most 300 calls).
	done := make(chan struct{})
	type result struct {
		ok, failed int
		errs       []string
	}
	res := make(chan result, 1)
	go func() {
		var r result
		for i := 0; i < 300; i++ {
			select {
			case <-done:
				res <- r
				return
			default:
			}
			out, errOut, err := e.obolTry(time.Minute, "buy", "pay", verifier+offerPath+paidCallPath, "--key-file", filepath.Join(e.keyDir, "buyer-3.key"),
				"--chain", "obol-dev", "--max-amount", "0.01")
			if err != nil {
				r.failed++
				r.errs = append(r.errs, fmt.Sprintf("%v: %s %s", err, strings.TrimSpace(out), strings.TrimSpace(errOut)))
			} else {
				r.ok++
			}
		}
		res <- r
	}()
	out := e.obolCmd(t, 6*time.Minute, "stack", "upgrade", "--set", "verifier.replicas=2", "--wait", "--timeout", "5m")
	close(done)
	r := <-res
	t.Logf("obol stack upgrade --set verifier.replicas=2 --wait:\n%s", out)
	t.Logf("paid calls during the rollout: %d answered 200, %d failed", r.ok, r.failed)
	if r.failed > 0 {
		t.Errorf("%d paid calls failed during the rollout:\n%s", r.failed, strings.Join(r.errs, "\n"))
	}
	if r.ok == 0 {
		t.Errorf("no paid call completed during the rollout")
	}
	d, err := e.cluster.Clientset.AppsV1().Deployments(e.ns).Get(ctx(t), "obol-verifier", metav1.GetOptions{})
	if err != nil || d.Status.ReadyReplicas != 2 {
		t.Fatalf("verifier after upgrade: %v ready, %v", d.Status.ReadyReplicas, err)
	}
}

func stepUninstall(t *testing.T, e *env) {
	out := e.obolCmd(t, 3*time.Minute, "stack", "uninstall", "--wait")
	t.Logf("obol stack uninstall --wait:\n%s", out)
	deps, err := e.cluster.Clientset.AppsV1().Deployments(e.ns).List(ctx(t), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(deps.Items) != 0 {
		t.Errorf("%d Deployments left in %s after uninstall", len(deps.Items), e.ns)
	}
	for _, crd := range []string{"serviceoffers.obol.org", "purchaserequests.obol.org"} {
		if _, err := e.cluster.Clientset.Discovery().RESTClient().Get().
			AbsPath("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd).DoRaw(ctx(t)); err != nil {
			t.Errorf("CRD %s gone after uninstall: %v", crd, err)
		}
	}
	raw, err := e.cluster.Clientset.Discovery().RESTClient().Get().
		AbsPath("/apis/obol.org/v1alpha1/namespaces", e.ns, "serviceoffers", offerName).DoRaw(ctx(t))
	if err != nil {
		t.Errorf("ServiceOffer %s/%s gone after uninstall: %v", e.ns, offerName, err)
	} else {
		t.Logf("ServiceOffer %s/%s kept after uninstall (%d bytes)", e.ns, offerName, len(raw))
	}
}
