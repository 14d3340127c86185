// Package verifiercmd implements `obol verifier`: the seller's x402 payment
// gate as a server.
package verifiercmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/devstack/stackfile"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/facilitator"
	"github.com/obolstack/obol/internal/verifier"
)

// NewCmdVerifier is the `obol verifier` group.
func NewCmdVerifier(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "verifier",
		Short: "Run the seller's x402 payment gate",
		Long: `The verifier answers unpaid requests to priced routes with HTTP 402 and an
x402 challenge, has a facilitator verify and settle payments, and forwards
paid requests to the upstream (proxy mode) or answers Traefik's ForwardAuth.`,
	}
	cmd.AddCommand(NewCmdServe(f, nil))
	return cmd
}

// Route sources.
const (
	SourceFile = "file"
	SourceKube = "kube"
)

// ServeOptions are the inputs of `obol verifier serve`.
type ServeOptions struct {
	IO     *cmdutil.IOStreams
	Logger func() *slog.Logger

	ConfigPath      string
	Listen          string
	RouteSource     string
	Watch           bool
	ShutdownTimeout time.Duration
	DevStack        string
	DevStackSet     bool

	Kubeconfig string
	Context    string
	Namespace  string

	// Upstream is the tuning of the connections to upstreams.
	Upstream verifier.TransportOptions

	// Test hooks.
	Registry       *evm.Registry
	NewFacilitator func(url string) (verifier.Facilitator, error)
	// Started receives the listen address once the server accepts
	// connections.
	Started chan<- string
	// Stop ends the server like SIGTERM when closed (nil: signals only).
	Stop <-chan struct{}
}

// NewCmdServe builds `obol verifier serve`; runF replaces serveRun in tests.
func NewCmdServe(f *cmdutil.Factory, runF func(*ServeOptions) error) *cobra.Command {
	opts := &ServeOptions{IO: f.IO, Logger: func() *slog.Logger { return f.Logger }}
	cmd := &cobra.Command{
		Use:   "serve --config pricing.yaml",
		Short: "Serve the payment gate: 402 challenges, verify, forward, settle",
		Long: `Serve the x402 payment gate.

Endpoints:
  /          proxy mode: match the route, ask for payment (402), verify it with the
             facilitator, forward to the upstream with the answer buffered, settle
             only when the upstream answered below 400, then answer with
             PAYMENT-RESPONSE (v2) or X-PAYMENT-RESPONSE (v1)
  /verify    forwardAuth mode: Traefik's ForwardAuth endpoint (reads
             X-Forwarded-Uri/-Host/-Method; verify-only or settle-first)
  /healthz   the process is up
  /readyz    a valid pricing config is loaded
  /metrics   Prometheus metrics (obol_x402_verifier_*)

The pricing file sets payTo, chain, facilitatorURL, mode and the routes; see
docs/verifier.md. With --watch a changed file is reloaded; a broken one keeps
the last good config and counts obol_x402_verifier_config_reloads_total{result="failure"}.`,
		Example: `  # gate a local API on the dev chain (obol dev chain + obol facilitator serve running)
  obol verifier serve --config docs/examples/pricing.yaml --listen 127.0.0.1:8080 --watch

  # ask for payment with curl
  curl -i http://127.0.0.1:8080/weather/today`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.ConfigPath == "" {
				return &cmdutil.FlagError{Err: errors.New("--config is required: the pricing file (see docs/examples/pricing.yaml)")}
			}
			switch opts.RouteSource {
			case SourceFile, SourceKube:
			default:
				return &cmdutil.FlagError{Err: fmt.Errorf("invalid --route-source %q: use file or kube", opts.RouteSource)}
			}
			opts.DevStackSet = cmd.Flags().Changed("dev-stack")
			if opts.DevStack == "" && !opts.DevStackSet {
				opts.DevStack = stackfile.DefaultPath()
			}
			opts.Kubeconfig, opts.Context, opts.Namespace = f.Global.Kubeconfig, f.Global.Context, f.Global.Namespace
			if runF != nil {
				return runF(opts)
			}
			return serveRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&opts.ConfigPath, "config", "c", "", "pricing file (YAML): global settings and routes")
	fl.StringVar(&opts.Listen, "listen", ":8080", "address to listen on")
	fl.StringVar(&opts.RouteSource, "route-source", SourceFile, "where routes come from: file (the pricing file) or kube (ServiceOffers; the file supplies the globals)")
	fl.BoolVar(&opts.Watch, "watch", false, "reload the pricing file when it changes")
	fl.DurationVar(&opts.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long to let running requests finish on SIGTERM")
	fl.StringVar(&opts.DevStack, "dev-stack", "", "stack file of a running obol dev, whose token is registered when present (default $OBOL_DEV_STACK or ~/.cache/obol/dev/stack.json)")
	fl.IntVar(&opts.Upstream.MaxIdleConnsPerHost, "upstream-max-idle-conns-per-host", verifier.DefaultMaxIdleConnsPerHost, "idle keep-alive connections kept per upstream")
	fl.IntVar(&opts.Upstream.MaxIdleConns, "upstream-max-idle-conns", verifier.DefaultMaxIdleConns, "idle keep-alive connections kept over all upstreams")
	fl.DurationVar(&opts.Upstream.IdleConnTimeout, "upstream-idle-timeout", verifier.DefaultIdleConnTimeout, "close an upstream connection idle this long")
	fl.DurationVar(&opts.Upstream.DialTimeout, "upstream-dial-timeout", verifier.DefaultDialTimeout, "how long connecting to an upstream may take")
	fl.DurationVar(&opts.Upstream.ResponseHeaderTimeout, "upstream-header-timeout", 0, "how long to wait for an upstream's status and headers (0: no limit, for slow inference)")
	return cmd
}

func serveRun(parent context.Context, opts *ServeOptions) error {
	if parent == nil {
		parent = context.Background()
	}
	log := opts.Logger()
	if log == nil {
		log = slog.New(slog.NewTextHandler(opts.IO.ErrOut, nil))
	}
	reg := opts.Registry
	if reg == nil {
		reg = evm.NewRegistry()
	}
	if err := registerDevStack(reg, opts, log); err != nil {
		return err
	}
	newFac := opts.NewFacilitator
	if newFac == nil {
		newFac = func(url string) (verifier.Facilitator, error) {
			c, err := facilitator.NewClient(url)
			if err != nil {
				return nil, err
			}
			return c, nil
		}
	}

	promReg := prometheus.NewRegistry()
	promReg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics, err := verifier.NewMetrics(promReg)
	if err != nil {
		return fmt.Errorf("register metrics: %w", err)
	}
	var newEndpoint func(verifier.FacilitatorEndpoint) (verifier.Facilitator, error)
	if opts.NewFacilitator == nil {
		// Facilitator headers (API keys) ride on the client's HTTP client.
		newEndpoint = func(e verifier.FacilitatorEndpoint) (verifier.Facilitator, error) {
			c, err := facilitator.NewClient(e.URL, facilitator.WithHTTPClient(verifier.FacilitatorHTTPClient(e, nil)))
			if err != nil {
				return nil, err
			}
			return c, nil
		}
	}
	srv, err := verifier.New(verifier.Options{
		NewFacilitator:         newFac,
		NewFacilitatorEndpoint: newEndpoint,
		Registry:               reg,
		Metrics:                metrics,
		Gatherer:               promReg,
		Logger:                 log,
		UpstreamTransport:      opts.Upstream,
		ClassifyFacilitatorError: func(err error) bool {
			var fe *facilitator.Error
			if errors.As(err, &fe) {
				return fe.Temporary
			}
			return errors.Is(err, context.DeadlineExceeded)
		},
	})
	if err != nil {
		return err
	}

	// The root command's context ends on SIGINT or SIGTERM.
	ctx, stop := context.WithCancel(parent)
	defer stop()
	if opts.Stop != nil {
		go func() {
			select {
			case <-opts.Stop:
				stop()
			case <-ctx.Done():
			}
		}()
	}

	src, err := routeSource(opts, reg, log)
	if err != nil {
		return err
	}
	if err := src.Start(ctx, srv); err != nil {
		return fmt.Errorf("%w\nfix the pricing file and start again", err)
	}

	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another process using the port? pick one with --listen)", opts.Listen, err)
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	addr := ln.Addr().String()
	log.Info("verifier listening", "addr", addr, "config", opts.ConfigPath, "route_source", opts.RouteSource, "watch", opts.Watch)
	if opts.Started != nil {
		opts.Started <- addr
	}

	err = cmdutil.Serve(ctx, hs, ln, opts.ShutdownTimeout, log)
	srv.Close() // logs the payments still pending, whose answers are lost
	return err
}

func routeSource(opts *ServeOptions, reg *evm.Registry, log *slog.Logger) (verifier.RouteSource, error) {
	if opts.RouteSource == SourceKube {
		data, err := os.ReadFile(opts.ConfigPath)
		if err != nil {
			return nil, fmt.Errorf("read pricing file %s for the global settings: %w", opts.ConfigPath, err)
		}
		spec, err := verifier.ParseSpec(opts.ConfigPath, data)
		if err != nil {
			return nil, err
		}
		return verifier.NewKubeSource(verifier.KubeSourceOptions{
			Kubeconfig: opts.Kubeconfig, Context: opts.Context, Namespace: opts.Namespace,
			Globals: spec, Registry: reg, Logger: log,
		})
	}
	return &verifier.FileSource{Path: opts.ConfigPath, Registry: reg, Watch: opts.Watch, Logger: log}, nil
}

// registerDevStack registers the token of a running `obol dev` so a pricing
// file on the dev chain needs no asset block.
func registerDevStack(reg *evm.Registry, opts *ServeOptions, log *slog.Logger) error {
	if opts.DevStack == "" {
		return nil
	}
	info, err := stackfile.Read(opts.DevStack)
	if err != nil {
		if errors.Is(err, stackfile.ErrNotFound) && !opts.DevStackSet {
			return nil
		}
		return err
	}
	reg.SetDevChain(info.Chain.ChainID, info.Token)
	log.Info("registered the dev chain's token from the dev stack file", "path", opts.DevStack, "chain", info.Chain.CAIP2, "token", info.Token.Address.Hex())
	return nil
}
