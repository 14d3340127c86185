// Command loadproxy is the baseline of `make loadtest`: a bare
// httputil.ReverseProxy in front of one upstream, with the transport the
// verifier proxies with (verifier.NewUpstreamTransport and its defaults), so
// the load test can tell the gate's own cost from the cost of proxying.
//
//	go run ./hack/loadproxy --listen 127.0.0.1:9101 --upstream http://127.0.0.1:9100
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/obolstack/obol/internal/verifier"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadproxy:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:9101", "address to listen on")
	upstream := flag.String("upstream", "", "upstream base URL")
	flag.Parse()
	target, err := url.Parse(*upstream)
	if err != nil || target.Host == "" {
		return fmt.Errorf("--upstream %q: want an absolute URL", *upstream)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.SetXForwarded()
		},
		Transport: verifier.NewUpstreamTransport(verifier.TransportOptions{}),
	}
	srv := &http.Server{Addr: *listen, Handler: rp, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
