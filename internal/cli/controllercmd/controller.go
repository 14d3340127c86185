// Package controllercmd implements `obol controller`, the in-cluster
// manager that reconciles ServiceOffers into routes to the x402 verifier.
package controllercmd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/controller"
	"github.com/obolstack/obol/internal/kube"
)

// Options are the inputs of `obol controller`.
type Options struct {
	IO   *cmdutil.IOStreams
	Kube kube.Options
	Log  func() logr.Logger

	MetricsAddr             string
	ProbeAddr               string
	LeaderElect             bool
	LeaderElectionID        string
	LeaderElectionNamespace string
	// ShutdownTimeout bounds how long running reconciles may finish once
	// the context ends (0: controller-runtime's default).
	ShutdownTimeout time.Duration

	VerifierService   string
	VerifierNamespace string
	VerifierPort      int32
	GatewayName       string
	GatewayNamespace  string
	GatewaySection    string
	PublicBaseURL     string

	ProbeHealth         bool
	GatewayMissingRetry time.Duration
	Resync              time.Duration

	// PurchaseRequests: the buyer proxy's ConfigMap and URL.
	BuyerNamespace string
	BuyerConfigMap string
	BuyerURL       string
}

// NewCmdController returns `obol controller`.
func NewCmdController(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	opts := &Options{IO: f.IO}
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Run the ServiceOffer controller (in-cluster)",
		Long: `Run the controller that turns ServiceOffers into paid routes. For each
offer it validates the payment terms (known chain, checksummed payTo, a
price the asset can represent), checks the upstream Service, and publishes a
Gateway API HTTPRoute sending the offer's path to the x402 verifier Service.
It reports conditions UpstreamHealthy, PaymentGateReady, RoutePublished and
Ready, withdraws the route of a paused offer (obol.org/paused: "true") and
removes it before a deleted offer goes.

The chart runs this as a Deployment; it serves /healthz and /readyz on
--health-probe-bind-address and Prometheus metrics on --metrics-bind-address.`,
		Example: `  # in the cluster (what the chart runs)
  obol controller --leader-elect --gateway-name traefik-gateway --gateway-namespace traefik

  # against your kubeconfig, for development
  obol controller --metrics-bind-address 0 --verifier-namespace obol`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Kube = kube.Options{Kubeconfig: f.Global.Kubeconfig, Context: f.Global.Context, Namespace: f.Global.Namespace}
			opts.Log = func() logr.Logger { return logr.FromSlogHandler(f.Logger.Handler()) }
			if runF != nil {
				return runF(opts)
			}
			// The root command's context ends on SIGINT or SIGTERM.
			return Run(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.MetricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint; 0 turns it off")
	fl.StringVar(&opts.ProbeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz; 0 turns them off")
	fl.BoolVar(&opts.LeaderElect, "leader-elect", false, "elect a leader so only one replica reconciles")
	fl.StringVar(&opts.LeaderElectionID, "leader-election-id", "obol-controller.obol.org", "name of the leader election Lease")
	fl.StringVar(&opts.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the Lease (default: the controller's namespace)")
	fl.StringVar(&opts.VerifierService, "verifier-service", "obol-verifier", "name of the x402 verifier Service routes point to")
	fl.StringVar(&opts.VerifierNamespace, "verifier-namespace", "", "namespace of the verifier Service (default: the controller's namespace)")
	fl.Int32Var(&opts.VerifierPort, "verifier-port", 8080, "port of the verifier Service")
	fl.StringVar(&opts.GatewayName, "gateway-name", "traefik-gateway", "Gateway the HTTPRoutes attach to (parentRef name)")
	fl.StringVar(&opts.GatewayNamespace, "gateway-namespace", "traefik", "namespace of that Gateway (empty: each offer's namespace)")
	fl.StringVar(&opts.GatewaySection, "gateway-section", "", "listener (sectionName) of the Gateway to attach to")
	fl.StringVar(&opts.PublicBaseURL, "public-base-url", "", "URL prefix for status.endpoint, e.g. https://obol.example.com (default: the path alone)")
	fl.BoolVar(&opts.ProbeHealth, "probe-health", false, "also GET each upstream's healthPath (in-cluster DNS) for UpstreamHealthy")
	fl.DurationVar(&opts.GatewayMissingRetry, "gateway-missing-retry", controller.DefaultGatewayMissingRetry, "how often to retry while the Gateway API CRDs are missing")
	fl.DurationVar(&opts.Resync, "resync", controller.DefaultResync, "how often every offer is checked again")
	fl.StringVar(&opts.BuyerNamespace, "buyer-namespace", "", "namespace of the buyer proxy and its upstream ConfigMap (default: the controller's namespace)")
	fl.StringVar(&opts.BuyerConfigMap, "buyer-configmap", controller.DefaultBuyerConfigMap, "ConfigMap the buyer proxy mounts as --config-dir")
	fl.DurationVar(&opts.ShutdownTimeout, "shutdown-timeout", cmdutil.DefaultShutdownTimeout, "how long to let running reconciles finish on SIGTERM")
	fl.StringVar(&opts.BuyerURL, "buyer-url", "", "the buyer proxy's URL for reloads and counts (default: http://obol-buyer.<buyer-namespace>.svc:8402; \"none\" disables)")
	return cmd
}

// ControllerNamespace is where the controller runs: $POD_NAMESPACE, the
// service account's namespace, or the kubeconfig's namespace.
func ControllerNamespace(k kube.Options) string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace"); err == nil {
		if ns := strings.TrimSpace(string(b)); ns != "" {
			return ns
		}
	}
	ns, _ := k.ResolveNamespace()
	return ns
}

// Run runs the manager until ctx ends.
func Run(ctx context.Context, opts *Options) error {
	if opts.VerifierPort < 1 || opts.VerifierPort > 65535 {
		return &cmdutil.FlagError{Err: fmt.Errorf("--verifier-port %d: use 1 to 65535", opts.VerifierPort)}
	}
	if opts.VerifierService == "" || opts.GatewayName == "" {
		return &cmdutil.FlagError{Err: errors.New("--verifier-service and --gateway-name must not be empty")}
	}
	if opts.Log != nil {
		ctrl.SetLogger(opts.Log())
	}
	cfg, err := opts.Kube.RESTConfig()
	if err != nil {
		return err
	}
	cfg.Timeout = 0 // watches are long-lived; the reconciler bounds its own calls
	ns := ControllerNamespace(opts.Kube)
	verifierNS := opts.VerifierNamespace
	if verifierNS == "" {
		verifierNS = ns
	}
	leNS := opts.LeaderElectionNamespace
	if leNS == "" {
		leNS = ns
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: kube.Scheme(),
		// The buyer's ConfigMap is read and written in one namespace; a
		// cached read would watch ConfigMaps cluster-wide, which the
		// chart's RBAC (rightly) does not grant.
		Client:                  client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.ConfigMap{}}}},
		Metrics:                 metricsserver.Options{BindAddress: opts.MetricsAddr},
		HealthProbeBindAddress:  opts.ProbeAddr,
		LeaderElection:          opts.LeaderElect,
		LeaderElectionID:        opts.LeaderElectionID,
		LeaderElectionNamespace: leNS,
		// Step down cleanly on SIGTERM so a new replica takes over at once.
		LeaderElectionReleaseOnCancel: true,
		GracefulShutdownTimeout:       gracePtr(opts.ShutdownTimeout),
	})
	if err != nil {
		return fmt.Errorf("start controller manager: %w", err)
	}
	r := &controller.ServiceOfferReconciler{
		Client: mgr.GetClient(),
		Scheme: mgr.GetScheme(),
		Route: controller.RouteTarget{
			GatewayName:       opts.GatewayName,
			GatewayNamespace:  opts.GatewayNamespace,
			GatewaySection:    opts.GatewaySection,
			VerifierService:   opts.VerifierService,
			VerifierNamespace: verifierNS,
			VerifierPort:      opts.VerifierPort,
		},
		PublicBaseURL:       opts.PublicBaseURL,
		ProbeHealth:         opts.ProbeHealth,
		GatewayMissingRetry: opts.GatewayMissingRetry,
		Resync:              opts.Resync,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the ServiceOffer controller: %w", err)
	}
	buyerNS := opts.BuyerNamespace
	if buyerNS == "" {
		buyerNS = ns
	}
	buyerURL := opts.BuyerURL
	switch buyerURL {
	case "":
		buyerURL = "http://obol-buyer." + buyerNS + ".svc:8402"
	case "none":
		buyerURL = ""
	}
	pr := &controller.PurchaseRequestReconciler{
		Client: mgr.GetClient(), BuyerNamespace: buyerNS, BuyerConfigMap: opts.BuyerConfigMap, BuyerURL: buyerURL,
	}
	if err := pr.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the PurchaseRequest controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.ErrOut, "obol controller: routes go to Service %s/%s:%d via Gateway %s/%s\n",
		verifierNS, opts.VerifierService, opts.VerifierPort, opts.GatewayNamespace, opts.GatewayName)
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("controller manager: %w", err)
	}
	return nil
}

func gracePtr(d time.Duration) *time.Duration {
	if d <= 0 {
		return nil
	}
	return &d
}
