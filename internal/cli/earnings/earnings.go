// Package earnings implements `obol earnings`: revenue, settlements and spend
// from Prometheus or a /metrics page, as a TUI, a plain table or JSON.
package earnings

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/devstack/stackfile"
	"github.com/obolstack/obol/internal/earnings"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/kube"
)

// Options are the inputs of `obol earnings`.
type Options struct {
	IO     *cmdutil.IOStreams
	Output string
	Now    func() time.Time
	Logger *slog.Logger

	Kubeconfig string
	Context    string

	Prometheus string
	MetricsURL string
	Window     string
	Watch      bool
	Refresh    time.Duration
	// Timeout bounds every fetch of the figures (all of its queries).
	Timeout time.Duration

	// Registry resolves chains and tokens; nil means a fresh one with the
	// built-in chains (plus the token of a running `obol dev`).
	Registry *evm.Registry

	// RunTUI runs the interactive program (tests replace it).
	RunTUI func(ctx context.Context, opts *Options, m earnings.Model) error
}

// DefaultTimeout bounds one fetch unless --timeout says otherwise.
const DefaultTimeout = 30 * time.Second

// NewCmdEarnings builds the command; runF replaces earningsRun in tests.
func NewCmdEarnings(f *cmdutil.Factory, runF func(*Options) error) *cobra.Command {
	opts := &Options{IO: f.IO, Now: f.Now}
	cmd := &cobra.Command{
		Use:   "earnings",
		Short: "Show revenue, settlements and spend of x402 offers",
		Long: `Show what your x402 offers earned — charged calls and revenue per offer and
chain for a window and over the counters' lifetime, settlement rate, last
settlement and an hourly trend — and what the buyer proxy spent.

Figures come from Prometheus (the chart's recording rules when loaded, raw
PromQL otherwise; the view says which) — the 24h and 7d figures are the
rules' increase() over the window, the numbers a Grafana panel on the rules
shows — or, with --metrics-url, straight from a
verifier's /metrics page (lifetime figures only: a scrape has no history).
With neither flag, obol finds the monitoring stack's Prometheus in the
current cluster and port-forwards to it.

Revenue is exact: it is read from the verifier's counter of charged atomic
units per asset, never computed as calls × price. On a terminal the view is
interactive (tab switch view, s sort, / filter namespace, r refresh,
q quit); otherwise, or with -o json, it prints once. NO_COLOR disables colour.`,
		Example: `  # the interactive view, Prometheus found in the cluster
  obol earnings

  # a Prometheus you can reach, last 7 days, refreshed every 10s
  obol earnings --prometheus http://127.0.0.1:9090 --window 7d --watch

  # straight from a verifier (e.g. obol dev), as JSON
  obol earnings --metrics-url http://127.0.0.1:8080/metrics -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Output = f.Global.Output
			opts.Kubeconfig, opts.Context = f.Global.Kubeconfig, f.Global.Context
			opts.Logger = f.Logger
			if opts.Prometheus != "" && opts.MetricsURL != "" {
				return &cmdutil.FlagError{Err: errors.New("--prometheus and --metrics-url are exclusive: pick one source")}
			}
			if _, err := earnings.ParseWindow(opts.Window); err != nil {
				return &cmdutil.FlagError{Err: fmt.Errorf("--window: %w", err)}
			}
			if opts.Timeout <= 0 {
				return &cmdutil.FlagError{Err: fmt.Errorf("--timeout %s: must be positive, e.g. 30s", opts.Timeout)}
			}
			if opts.Refresh <= 0 {
				return &cmdutil.FlagError{Err: fmt.Errorf("--refresh %s: must be positive, e.g. 10s", opts.Refresh)}
			}
			if runF != nil {
				return runF(opts)
			}
			return earningsRun(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Prometheus, "prometheus", "", "Prometheus base URL, e.g. http://127.0.0.1:9090")
	fl.StringVar(&opts.MetricsURL, "metrics-url", "", "a verifier's /metrics URL (lifetime figures only), e.g. http://127.0.0.1:8080/metrics")
	fl.StringVar(&opts.Window, "window", "24h", "window of the windowed figures: 24h, 7d or 30d")
	fl.BoolVar(&opts.Watch, "watch", false, "refresh every --refresh (interactive view; repeated output otherwise)")
	fl.DurationVar(&opts.Refresh, "refresh", 10*time.Second, "refresh interval with --watch")
	fl.DurationVar(&opts.Timeout, "timeout", DefaultTimeout, "give up on one fetch of the figures after this long")
	return cmd
}

func earningsRun(ctx context.Context, opts *Options) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := signal.NotifyContext(ctx, os.Interrupt)
	defer cancel()
	if opts.Now == nil {
		opts.Now = time.Now
	}
	window, _ := earnings.ParseWindow(opts.Window)
	if opts.Registry == nil {
		opts.Registry = evm.NewRegistry()
	}
	loadDevToken(opts)

	src, stop, err := source(ctx, opts)
	if err != nil {
		return err
	}
	defer stop()
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	collect := func(ctx context.Context) (earnings.Snapshot, error) {
		ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
		defer cancel()
		s, err := earnings.Collect(ctx, src, window, opts.Now(), opts.Registry)
		if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return s, fmt.Errorf("no answer within --timeout %s: %w", opts.Timeout, err)
		}
		return s, err
	}

	writeSnapshot := func(s earnings.Snapshot) error {
		return cmdutil.PrintStructured(opts.IO.Out, opts.Output, s, func(w io.Writer) error {
			return earnings.WriteTable(w, &s)
		})
	}
	interactive := opts.Output == cmdutil.OutputTable && opts.IO.IsStdoutTTY()
	if !interactive {
		for first := true; ; first = false {
			s, err := collect(ctx)
			if err != nil {
				return err
			}
			if !first && opts.Output == cmdutil.OutputTable {
				fmt.Fprintln(opts.IO.Out)
			}
			if err := writeSnapshot(s); err != nil {
				return err
			}
			if !opts.Watch {
				return nil
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(opts.Refresh):
			}
		}
	}

	cfg := earnings.Config{Fetch: collect, Now: opts.Now, FetchTimeout: opts.Timeout}
	if opts.Watch {
		cfg.Refresh = opts.Refresh
	}
	if f, ok := opts.IO.Out.(*os.File); ok {
		cfg.Renderer = earnings.NewRenderer(f)
	}
	run := opts.RunTUI
	if run == nil {
		run = runTUI
	}
	return run(ctx, opts, earnings.NewModel(cfg))
}

func runTUI(ctx context.Context, opts *Options, m earnings.Model) error {
	p := tea.NewProgram(m, tea.WithAltScreen(), tea.WithContext(ctx),
		tea.WithInput(opts.IO.In), tea.WithOutput(opts.IO.Out))
	_, err := p.Run()
	if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		return nil
	}
	return err
}

// source picks the figures' source from the flags, or finds Prometheus in
// the cluster.
func source(ctx context.Context, opts *Options) (earnings.Source, func(), error) {
	noop := func() {}
	switch {
	case opts.Prometheus != "":
		s, err := earnings.NewPrometheusSource(opts.Prometheus)
		return s, noop, err
	case opts.MetricsURL != "":
		return earnings.NewMetricsSource(opts.MetricsURL), noop, nil
	}
	url, stop, err := discoverPrometheus(ctx, opts)
	if err != nil {
		return nil, nil, err
	}
	s, err := earnings.NewPrometheusSource(url)
	if err != nil {
		stop()
		return nil, nil, err
	}
	return s, stop, nil
}

// loadDevToken registers the token of a running `obol dev` (its stack file,
// $OBOL_DEV_STACK or the user cache dir) so its revenue shows in token
// units; without the file, its amounts stay in atomic units.
func loadDevToken(opts *Options) {
	info, err := stackfile.Read(stackfile.DefaultPath())
	if err != nil {
		if !errors.Is(err, stackfile.ErrNotFound) && opts.Logger != nil {
			opts.Logger.Warn("ignoring the obol dev stack file", "err", err)
		}
		return
	}
	info.Register(opts.Registry)
}

const sourceHint = "pass --prometheus URL or --metrics-url URL"

func discoverPrometheus(ctx context.Context, opts *Options) (string, func(), error) {
	k := kube.Options{Kubeconfig: opts.Kubeconfig, Context: opts.Context}
	cfg, err := k.RESTConfig()
	if err != nil {
		return "", nil, fmt.Errorf("no cluster to find Prometheus in (%v): %s", err, sourceHint)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", nil, fmt.Errorf("no cluster to find Prometheus in (%v): %s", err, sourceHint)
	}
	lctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	t, err := kube.FindPrometheus(lctx, cs)
	if err != nil {
		if errors.Is(err, kube.ErrNoPrometheus) {
			return "", nil, fmt.Errorf("%w in the cluster of context %q: install the monitoring stack, or %s", err, contextName(k), sourceHint)
		}
		return "", nil, fmt.Errorf("cannot reach the cluster to find Prometheus (%v): %s", err, sourceHint)
	}
	url, stop, err := kube.PortForward(lctx, cfg, t.Forward(), opts.IO.ErrOut)
	if err != nil {
		return "", nil, fmt.Errorf("port-forward to %s: %w; or %s", t, err, sourceHint)
	}
	if opts.Logger != nil {
		opts.Logger.Info("port-forwarding to Prometheus", "target", t.String(), "local", url)
	}
	return url, stop, nil
}

func contextName(k kube.Options) string {
	if k.Context != "" {
		return k.Context
	}
	raw, err := k.ClientConfig().RawConfig()
	if err != nil {
		return ""
	}
	return raw.CurrentContext
}
