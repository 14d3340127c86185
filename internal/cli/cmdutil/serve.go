package cmdutil

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// DefaultShutdownTimeout is how long a server command lets running requests
// finish once asked to stop. The chart's terminationGracePeriodSeconds is
// above it, so Kubernetes does not kill a pod that is still draining.
const DefaultShutdownTimeout = 30 * time.Second

// Serve serves hs on ln until ctx ends (the root command's context ends on
// SIGINT or SIGTERM), then stops accepting connections, lets the requests
// already running finish within grace, and returns. Requests still running
// at the deadline are cut off and reported as an error.
func Serve(ctx context.Context, hs *http.Server, ln net.Listener, grace time.Duration, log *slog.Logger) error {
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	if log != nil {
		log.Info("shutting down: no new connections; letting running requests finish", "timeout", grace)
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	err := hs.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		_ = hs.Close()
		return fmt.Errorf("shutdown: requests still running after %s were cut off: %w", grace, err)
	}
	if log != nil {
		log.Info("stopped: every running request finished")
	}
	return nil
}
