// Package buyercmd implements `obol buyer serve`, the in-cluster buyer proxy.
package buyercmd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/obolstack/obol/internal/buyer/proxy"
	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/kube"
)

// NewCmdBuyer is the `obol buyer` parent.
func NewCmdBuyer(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "buyer",
		Short: "Run the buyer proxy that pays x402 sellers for in-cluster callers",
	}
	cmd.AddCommand(NewCmdServe(f, nil))
	return cmd
}

// ServeOptions are the inputs of `obol buyer serve`.
type ServeOptions struct {
	Factory   *cmdutil.Factory
	ConfigDir string
	// ConfigMap names the ConfigMap (in ConfigNamespace) read and watched
	// through the API instead of ConfigDir: the controller's writes reach
	// the proxy at once, not after the kubelet's volume refresh.
	ConfigMap       string
	ConfigNamespace string
	Kube            kube.Options
	StateFile       string
	Listen          string
	// ReloadEvery re-reads ConfigDir periodically: a mounted ConfigMap
	// changes on disk some time after the controller writes it.
	ReloadEvery time.Duration
	// StripHeaders are caller headers never forwarded to a seller, besides
	// hop-by-hop and credential headers.
	StripHeaders []string
	// ShutdownTimeout bounds how long running requests may finish once the
	// command is asked to stop (SIGTERM on a rollout).
	ShutdownTimeout time.Duration
	// Started receives the listen address once the proxy accepts
	// connections (tests).
	Started chan<- string
}

// NewCmdServe builds `obol buyer serve`.
func NewCmdServe(f *cmdutil.Factory, runF func(*ServeOptions) error) *cobra.Command {
	opts := &ServeOptions{Factory: f}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the buyer proxy",
		Long: `Serve the buyer proxy. Callers send ordinary requests; when a seller answers
402 the proxy pays from a pool of pre-signed EIP-3009 authorizations, one
upstream per PurchaseRequest: a file each in --config-dir, or a key each in
the ConfigMap --config-map (read and watched through the API, so the
controller's changes apply within a second). It pays only when the seller's
terms match an authorization exactly and within the upstream's daily spend
cap. Every authorization taken is written to --state
before the paid request leaves, so none is ever sent twice, across restarts.

A caller's credentials stay in the cluster: hop-by-hop headers,
Authorization, Cookie, Proxy-Authorization and every --strip-header are
never forwarded to a seller (an upstream file's forwardHeaders may allow
one by name). A payment goes only to the origin whose 402 asked for it and
never follows a redirect to another origin.

Endpoints:
  POST /v1/chat/completions, /v1/responses   OpenAI-compatible, routed by "model"
  ANY  /upstream/<name>/<path>                any HTTP call to an upstream
  GET  /status                                pools, spend, caps (JSON)
  POST /admin/reload                          re-read the configuration
  GET  /healthz, /metrics`,
		Example: `  obol buyer serve --config-dir /etc/obol/buyer --state /var/lib/obol/buyer/state.json
  curl -s localhost:8402/upstream/weather/forecast
  curl -s localhost:8402/status | jq`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case opts.ConfigDir == "" && opts.ConfigMap == "":
				return &cmdutil.FlagError{Err: errors.New("--config-dir or --config-map is required: where the upstream files (one per PurchaseRequest) are")}
			case opts.ConfigDir != "" && opts.ConfigMap != "":
				return &cmdutil.FlagError{Err: errors.New("--config-dir and --config-map: give one")}
			case opts.ConfigMap != "" && opts.ConfigNamespace == "":
				return &cmdutil.FlagError{Err: errors.New("--config-map needs --config-namespace (or POD_NAMESPACE)")}
			}
			opts.Kube = kube.Options{Kubeconfig: f.Global.Kubeconfig, Context: f.Global.Context}
			if opts.StateFile == "" {
				return &cmdutil.FlagError{Err: errors.New("--state is required: a file on persistent storage recording every authorization used")}
			}
			if runF != nil {
				return runF(opts)
			}
			return serveRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.ConfigDir, "config-dir", "", "directory of upstream files (*.yaml, *.json)")
	cmd.Flags().StringVar(&opts.ConfigMap, "config-map", "", "ConfigMap of upstream files, read and watched through the Kubernetes API (instead of --config-dir)")
	cmd.Flags().StringVar(&opts.ConfigNamespace, "config-namespace", os.Getenv("POD_NAMESPACE"), "namespace of --config-map (default $POD_NAMESPACE)")
	cmd.Flags().StringVar(&opts.StateFile, "state", "", "state file recording used authorizations")
	cmd.Flags().StringVar(&opts.Listen, "listen", ":8402", "address to listen on")
	cmd.Flags().StringSliceVar(&opts.StripHeaders, "strip-header", nil, "caller header never forwarded to a seller, besides hop-by-hop ones and Authorization, Cookie, Proxy-Authorization (repeatable; an upstream's forwardHeaders may allow one)")
	cmd.Flags().DurationVar(&opts.ShutdownTimeout, "shutdown-timeout", cmdutil.DefaultShutdownTimeout, "on SIGTERM, how long to let running (paid) requests finish before exiting")
	cmd.Flags().DurationVar(&opts.ReloadEvery, "reload-interval", 30*time.Second, "re-read the configuration this often (0 = only on POST /admin/reload or, with --config-map, on change)")
	return cmd
}

func serveRun(ctx context.Context, opts *ServeOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	f := opts.Factory
	log := f.Logger
	st, err := proxy.LoadState(opts.StateFile)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	for _, c := range []prometheus.Collector{collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register process metrics: %w", err)
		}
	}
	popts := proxy.Options{ConfigDir: opts.ConfigDir, State: st, Registry: evm.NewRegistry(), Registerer: reg, Logger: log, StripHeaders: opts.StripHeaders}
	var src *proxy.ConfigMapSource
	if opts.ConfigMap != "" {
		cfg, err := opts.Kube.RESTConfig()
		if err != nil {
			return fmt.Errorf("--config-map %s: %w", opts.ConfigMap, err)
		}
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return fmt.Errorf("--config-map %s: %w", opts.ConfigMap, err)
		}
		src = &proxy.ConfigMapSource{Client: cs, Namespace: opts.ConfigNamespace, Name: opts.ConfigMap, Registry: popts.Registry}
		popts.Load = src.Load
	}
	srv, err := proxy.New(popts)
	if err != nil {
		return err
	}
	if src != nil {
		src.Watch(ctx, func(cfg *proxy.Config, err error) {
			if err != nil {
				log.Warn("buyer ConfigMap changed but is invalid, keeping the previous configuration", "configmap", opts.ConfigNamespace+"/"+opts.ConfigMap, "err", err)
				return
			}
			srv.Apply(cfg)
			log.Info("buyer configuration changed", "configmap", opts.ConfigNamespace+"/"+opts.ConfigMap, "upstreams", len(cfg.Upstreams))
		})
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.Handle("/", srv.Handler())
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", opts.Listen, err)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if opts.ReloadEvery > 0 {
		go func() {
			t := time.NewTicker(opts.ReloadEvery)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if err := srv.Reload(); err != nil {
						log.Warn("reload buyer config, keeping the previous one", "err", err)
					}
				}
			}
		}()
	}
	for _, u := range srv.Status() {
		log.Info("upstream", "name", u.Name, "chain", u.Chain, "price", u.Price, "remaining", u.Remaining)
	}
	where := opts.ConfigDir
	if src != nil {
		where = "configmap " + opts.ConfigNamespace + "/" + opts.ConfigMap
	}
	fmt.Fprintf(f.IO.ErrOut, "buyer proxy listening on http://%s (config %s, state %s)\n", ln.Addr(), where, opts.StateFile)
	if opts.Started != nil {
		opts.Started <- ln.Addr().String()
	}
	// Stop accepting on SIGTERM, let paid requests in flight finish (their
	// outcome is recorded), then exit.
	return cmdutil.Serve(ctx, hs, ln, opts.ShutdownTimeout, log)
}
