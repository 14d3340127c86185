package cmdutil

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Output formats accepted by -o/--output.
const (
	OutputTable = "table"
	OutputJSON  = "json"
	OutputYAML  = "yaml"
)

// GlobalOptions are the persistent flags of the root command.
type GlobalOptions struct {
	Kubeconfig string
	Context    string
	Namespace  string
	Output     string
	LogLevel   string
}

// Factory carries the dependencies commands receive. It is built once by the
// root command; tests build their own.
type Factory struct {
	IO     *IOStreams
	Global *GlobalOptions
	// Now is the clock; tests inject a fixed one.
	Now func() time.Time
	// Logger is created after flags are parsed (it depends on --log-level).
	Logger *slog.Logger
}

// NewTestFactory returns a factory on buffer streams with defaults, plus the
// stdout and stderr buffers.
func NewTestFactory() (*Factory, *IOStreams) {
	ios, _, _, errOut := Test()
	return &Factory{
		IO:     ios,
		Global: &GlobalOptions{Output: OutputTable, LogLevel: "info"},
		Now:    time.Now,
		Logger: slog.New(slog.NewTextHandler(errOut, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}, ios
}

// ParseLogLevel turns --log-level into a slog level.
func ParseLogLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "", "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("invalid --log-level %q: use debug, info, warn or error", s)
}

// ValidateOutput checks an -o value against the formats a command supports.
func ValidateOutput(format string, allowed ...string) error {
	if len(allowed) == 0 {
		allowed = []string{OutputTable, OutputJSON, OutputYAML}
	}
	for _, a := range allowed {
		if format == a {
			return nil
		}
	}
	return fmt.Errorf("invalid --output %q: use one of %s", format, strings.Join(allowed, ", "))
}
