package verifier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/obolstack/obol/internal/evm"
)

// ConfigSink receives configs from a route source; *Server is one.
type ConfigSink interface {
	// ApplyConfig swaps in a new config (and prunes series of offers no
	// longer served).
	ApplyConfig(cfg *Config) error
	// ReportReloadFailure records a config that could not be built; the
	// last good one stays.
	ReportReloadFailure(err error)
}

// RouteSource produces the gate's routes.
type RouteSource interface {
	// Start loads and applies the first config (an error means nothing was
	// applied), then keeps the sink current in the background until ctx
	// ends.
	Start(ctx context.Context, sink ConfigSink) error
}

// WithRoutes returns a copy of the spec's global settings with routes
// replaced, for sources that build routes elsewhere (ServiceOffers) and
// keep the pricing file's globals.
func (s *Spec) WithRoutes(source string, routes []RouteSpec) *Spec {
	c := *s
	c.Source = source
	c.Routes = append([]RouteSpec(nil), routes...)
	c.routesFromSource = true
	c.pos = map[string]Pos{}
	for k, v := range s.pos {
		if !strings.HasPrefix(k, "routes") {
			c.pos[k] = v
		}
	}
	return &c
}

// FileSource reads the routes from a pricing file and, with Watch,
// reloads it when it changes. It watches the file's directory, so editors
// that replace the file by renaming, and Kubernetes ConfigMap volumes that
// swap a symlink, are both seen. A file that fails to load keeps the last
// good config and counts a failed reload.
type FileSource struct {
	Path     string
	Registry *evm.Registry
	Env      Environment
	Watch    bool
	Logger   *slog.Logger
	// Debounce groups the bursts of events one save makes (default 150ms).
	Debounce time.Duration

	mu   sync.Mutex
	last []byte // content of the last file applied
	// failed is the content (or "missing") that last failed to load: it is
	// not retried until it changes, so unrelated writes in the directory
	// (a log file) cannot make a broken file reload in a loop.
	failed *string
}

// Load reads and compiles the file.
func (f *FileSource) Load() (*Config, []byte, error) {
	data, err := os.ReadFile(f.Path)
	if err != nil {
		return nil, nil, fmt.Errorf("read pricing file %s: %w", f.Path, err)
	}
	cfg, err := ParseAndCompile(f.Path, data, f.Registry, f.Env)
	return cfg, data, err
}

// Start applies the file and, with Watch, starts watching it.
func (f *FileSource) Start(ctx context.Context, sink ConfigSink) error {
	if f.Logger == nil {
		f.Logger = slog.New(slog.DiscardHandler)
	}
	cfg, data, err := f.Load()
	if err != nil {
		sink.ReportReloadFailure(err)
		return err
	}
	if err := sink.ApplyConfig(cfg); err != nil {
		return err
	}
	f.mu.Lock()
	f.last = data
	f.mu.Unlock()
	if !f.Watch {
		return nil
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch pricing file: %w", err)
	}
	dir := filepath.Dir(f.Path)
	if err := w.Add(dir); err != nil {
		w.Close()
		return fmt.Errorf("watch directory %s of the pricing file: %w", dir, err)
	}
	f.Logger.Info("watching pricing file for changes", "path", f.Path)
	go f.watch(ctx, w, sink)
	return nil
}

func (f *FileSource) watch(ctx context.Context, w *fsnotify.Watcher, sink ConfigSink) {
	defer w.Close()
	debounce := f.Debounce
	if debounce <= 0 {
		debounce = 150 * time.Millisecond
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			// Changes to the file itself (also by rename-replace) and
			// ConfigMap symlink swaps (..data) are ours; the content check
			// in reload skips anything that did not change the file.
			if ev.Op == fsnotify.Chmod || !f.concerns(ev.Name) {
				continue
			}
			timer.Reset(debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			f.Logger.Warn("pricing file watcher error", "err", err)
		case <-timer.C:
			f.reload(sink)
		}
	}
}

// concerns reports whether a change to path in the watched directory may
// change the pricing file.
func (f *FileSource) concerns(path string) bool {
	base := filepath.Base(path)
	return base == filepath.Base(f.Path) || strings.HasPrefix(base, "..")
}

// msgPricingUnchanged is logged when a change event left the pricing file's
// content as it was last loaded (or last refused).
const msgPricingUnchanged = "pricing file content unchanged since the last load; nothing to do"

// Reload loads the file now and applies it if its content changed.
func (f *FileSource) reload(sink ConfigSink) {
	cfg, data, err := f.Load()
	key := "missing"
	if data != nil {
		key = string(data)
	}
	f.mu.Lock()
	same := (err == nil && bytes.Equal(data, f.last)) || (err != nil && f.failed != nil && *f.failed == key)
	if err != nil {
		f.failed = &key
	} else {
		f.failed = nil
	}
	f.mu.Unlock()
	if same {
		f.Logger.Debug(msgPricingUnchanged, "path", f.Path)
		return
	}
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			err = fmt.Errorf("%w (the file was removed; keeping the last good config until it is back)", err)
		}
		sink.ReportReloadFailure(err)
		return
	}
	if err := sink.ApplyConfig(cfg); err != nil {
		sink.ReportReloadFailure(err)
		return
	}
	f.mu.Lock()
	f.last = data
	f.mu.Unlock()
}

// KubeSourceOptions configure the route source that reads ServiceOffers.
type KubeSourceOptions struct {
	Kubeconfig string
	Context    string
	Namespace  string // "" = all namespaces
	// Globals are the pricing file's global settings (payTo, chain,
	// facilitatorURL, mode, ...); the offers supply the routes.
	Globals  *Spec
	Registry *evm.Registry
	Env      Environment
	Logger   *slog.Logger
}
