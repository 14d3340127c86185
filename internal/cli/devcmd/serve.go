package devcmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/devstack"
)

// ServeOptions are the inputs `obol dev upstream` and `obol dev forward`
// share: where to listen, and when to stop.
type ServeOptions struct {
	IO     *cmdutil.IOStreams
	Logger *slog.Logger
	Listen string
	// Context ends the server; the command cancels it on Ctrl-C or SIGTERM.
	Context context.Context
	// Ready, if set, gets the bound address once the server listens (tests).
	Ready func(addr string)
}

// listen opens --listen, saying which flag to change when it is taken.
func (o *ServeOptions) listen() (net.Listener, error) {
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w (pass another --listen)", o.Listen, err)
	}
	return ln, nil
}

// UpstreamOptions are the inputs of `obol dev upstream`.
type UpstreamOptions struct {
	ServeOptions
}

// NewCmdUpstream builds `obol dev upstream`; runF replaces upstreamRun in tests.
func NewCmdUpstream(f *cmdutil.Factory, runF func(*UpstreamOptions) error) *cobra.Command {
	opts := &UpstreamOptions{ServeOptions{IO: f.IO}}
	cmd := &cobra.Command{
		Use:   "upstream",
		Short: "Serve the demo API (GET /weather, /joke) that obol dev sells",
		Long: `Serve the small JSON API that obol dev puts behind its verifier, on its own:
GET / (free index), GET /weather?city=NAME and GET /joke. It knows nothing
about payments; put a verifier in front of it (obol sell create in a cluster,
or a pricing file) to sell it.`,
		Example: `  obol dev upstream --listen 127.0.0.1:9090
  curl -s 'http://127.0.0.1:9090/weather?city=Porto'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Logger = f.Logger
			if runF != nil {
				return runF(opts)
			}
			opts.Context = cmd.Context() // ends on SIGINT/SIGTERM (root.SignalContext)
			return upstreamRun(opts)
		},
	}
	cmd.Flags().StringVar(&opts.Listen, "listen", "127.0.0.1:9090", "address to listen on (:9090 for all interfaces, as in a pod)")
	return cmd
}

func upstreamRun(opts *UpstreamOptions) error {
	ln, err := opts.listen()
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: devstack.Upstream(), ReadHeaderTimeout: 10 * time.Second}
	return serveUntilDone(opts.Context, opts.IO.ErrOut, "demo upstream", ln, opts.Ready,
		func() error { return hs.Serve(ln) },
		func(ctx context.Context) error { return hs.Shutdown(ctx) })
}

// ForwardOptions are the inputs of `obol dev forward`.
type ForwardOptions struct {
	ServeOptions
	To string
	// Drain bounds how long forwarding goes on once asked to stop.
	Drain time.Duration
}

// forwardQuiet is how long no connection may be open before a stopping
// forwarder exits.
const forwardQuiet = time.Second

// NewCmdForward builds `obol dev forward`; runF replaces forwardRun in tests.
func NewCmdForward(f *cmdutil.Factory, runF func(*ForwardOptions) error) *cobra.Command {
	opts := &ForwardOptions{ServeOptions: ServeOptions{IO: f.IO}}
	cmd := &cobra.Command{
		Use:   "forward",
		Short: "Forward a loopback TCP port to another address (devnet plumbing)",
		Long: `Accept TCP connections on --listen and copy each, both ways, to --to.

The verifier talks plain HTTP to a facilitator only on loopback. The devnet
that obol stack install --devnet runs puts this next to each verifier, on
127.0.0.1:4021, forwarding to the devnet's facilitator Service, so a
development cluster needs no TLS. Never use it to carry real payments.

On SIGTERM it keeps forwarding, new connections too, until no connection has
been open for a second (at most --drain): the verifier next to it stops at
the same time and still settles the paid requests it is finishing through
it. Cutting those connections once lost settlement answers (a payment
charged on chain, answered 402).`,
		Example: `  obol dev forward --listen 127.0.0.1:4021 --to obol-facilitator.obol-system.svc:4021`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Logger = f.Logger
			if opts.To == "" {
				return &cmdutil.FlagError{Err: errors.New("--to is required: the host:port to forward to")}
			}
			if _, _, err := net.SplitHostPort(opts.To); err != nil {
				return &cmdutil.FlagError{Err: fmt.Errorf("invalid --to %q: %w (want host:port)", opts.To, err)}
			}
			if runF != nil {
				return runF(opts)
			}
			opts.Context = cmd.Context() // ends on SIGINT/SIGTERM (root.SignalContext)
			return forwardRun(opts)
		},
	}
	cmd.Flags().StringVar(&opts.Listen, "listen", "127.0.0.1:4021", "address to accept connections on")
	cmd.Flags().StringVar(&opts.To, "to", "", "host:port each connection is forwarded to (required)")
	cmd.Flags().DurationVar(&opts.Drain, "drain", cmdutil.DefaultShutdownTimeout, "on SIGTERM, keep forwarding until no connection is open (at most this long)")
	return cmd
}

func forwardRun(opts *ForwardOptions) error {
	ln, err := opts.listen()
	if err != nil {
		return err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = map[net.Conn]struct{}{}
	)
	track := func(c net.Conn, add bool) {
		mu.Lock()
		defer mu.Unlock()
		if add {
			conns[c] = struct{}{}
		} else {
			delete(conns, c)
		}
	}
	serve := func() error {
		for {
			in, err := ln.Accept()
			if err != nil {
				return err
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer in.Close()
				track(in, true)
				defer track(in, false)
				out, err := net.DialTimeout("tcp", opts.To, 10*time.Second)
				if err != nil {
					log.Warn("forward: dial failed", "to", opts.To, "err", err)
					return
				}
				defer out.Close()
				track(out, true)
				defer track(out, false)
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(out, in); closeWrite(out); done <- struct{}{} }()
				go func() { _, _ = io.Copy(in, out); closeWrite(in); done <- struct{}{} }()
				<-done
				<-done
			}()
		}
	}
	open := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(conns)
	}
	// Keep forwarding until no connection has been open for forwardQuiet
	// (the process next to us finished with us), or Drain is over.
	shutdown := func(context.Context) error {
		drain := opts.Drain
		if drain <= 0 {
			drain = cmdutil.DefaultShutdownTimeout
		}
		deadline := time.Now().Add(drain)
		quietSince := time.Now()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for time.Now().Before(deadline) {
			if open() > 0 {
				quietSince = time.Now()
			} else if time.Since(quietSince) >= forwardQuiet {
				break
			}
			<-tick.C
		}
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
		return nil
	}
	return serveUntilDone(opts.Context, opts.IO.ErrOut, "forwarding to "+opts.To, ln, opts.Ready, serve, shutdown)
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

// serveUntilDone runs serve until ctx ends, then shutdown; an error from
// serve other than a closed listener ends the command.
func serveUntilDone(ctx context.Context, errOut io.Writer, what string, ln net.Listener, ready func(string),
	serve func() error, shutdown func(context.Context) error) error {
	if ctx == nil {
		ctx = context.Background()
	}
	fmt.Fprintf(errOut, "%s: listening on %s. Press Ctrl-C to stop.\n", what, ln.Addr())
	if ready != nil {
		ready(ln.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- serve() }()
	select {
	case err := <-errc:
		if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := shutdown(sctx)
	<-errc
	return err
}
