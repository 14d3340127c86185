// Package buyercmd implements `obol buyer serve`, the in-cluster buyer proxy.
package buyercmd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/obolstack/obol/internal/buyer/proxy"
	"github.com/obolstack/obol/internal/cli/cmdutil"
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
	StateFile string
	Listen    string
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
402 the proxy pays from a pool of pre-signed EIP-3009 authorizations (one
file per upstream in --config-dir, as a PurchaseRequest carries them), only
when the seller's terms match an authorization exactly and within the
upstream's daily spend cap. Every authorization taken is written to --state
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
  POST /admin/reload                          re-read --config-dir
  GET  /healthz, /metrics`,
		Example: `  obol buyer serve --config-dir /etc/obol/buyer --state /var/lib/obol/buyer/state.json
  curl -s localhost:8402/upstream/weather/forecast
  curl -s localhost:8402/status | jq`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.ConfigDir == "" {
				return &cmdutil.FlagError{Err: errors.New("--config-dir is required: the directory with one upstream file per PurchaseRequest")}
			}
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
	cmd.Flags().StringVar(&opts.StateFile, "state", "", "state file recording used authorizations")
	cmd.Flags().StringVar(&opts.Listen, "listen", ":8402", "address to listen on")
	cmd.Flags().StringSliceVar(&opts.StripHeaders, "strip-header", nil, "caller header never forwarded to a seller, besides hop-by-hop ones and Authorization, Cookie, Proxy-Authorization (repeatable; an upstream's forwardHeaders may allow one)")
	cmd.Flags().DurationVar(&opts.ShutdownTimeout, "shutdown-timeout", cmdutil.DefaultShutdownTimeout, "on SIGTERM, how long to let running (paid) requests finish before exiting")
	cmd.Flags().DurationVar(&opts.ReloadEvery, "reload-interval", 30*time.Second, "re-read --config-dir this often (0 = only on POST /admin/reload)")
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
	srv, err := proxy.New(proxy.Options{ConfigDir: opts.ConfigDir, State: st, Registerer: reg, Logger: log, StripHeaders: opts.StripHeaders})
	if err != nil {
		return err
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
	fmt.Fprintf(f.IO.ErrOut, "buyer proxy listening on http://%s (config %s, state %s)\n", ln.Addr(), opts.ConfigDir, opts.StateFile)
	if opts.Started != nil {
		opts.Started <- ln.Addr().String()
	}
	// Stop accepting on SIGTERM, let paid requests in flight finish (their
	// outcome is recorded), then exit.
	return cmdutil.Serve(ctx, hs, ln, opts.ShutdownTimeout, log)
}
