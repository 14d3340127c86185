package testenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"sigs.k8s.io/yaml"

	"github.com/obolstack/obol/internal/testenv/wait"
)

// PromConfig describes what a test Prometheus scrapes and evaluates.
type PromConfig struct {
	// Targets are scraped at /metrics under the job "test". Each is a
	// host:port or an http:// URL (its host:port is used).
	Targets []string
	// Jobs are further scrape jobs.
	Jobs []ScrapeJob
	// RuleFiles are loaded as rule_files (relative paths are resolved
	// against the test's working directory).
	RuleFiles []string
	// ScrapeInterval and EvaluationInterval default to one second.
	ScrapeInterval     time.Duration
	EvaluationInterval time.Duration
	// ExtraArgs are appended to the prometheus command line.
	ExtraArgs []string
}

// ScrapeJob is one scrape_config.
type ScrapeJob struct {
	Name        string
	Targets     []string
	MetricsPath string            // default /metrics
	Labels      map[string]string // added to every target's series
}

// Prometheus is a running prometheus server on a loopback port.
type Prometheus struct {
	// URL is the server's base URL, e.g. http://127.0.0.1:41234.
	URL string
	// API is a client for its HTTP API.
	API promv1.API
	// ConfigFile is the generated prometheus.yml.
	ConfigFile string
	// PollTimeout bounds the WaitFor helpers (default 30s).
	PollTimeout time.Duration

	dir  string
	cmd  *exec.Cmd
	done chan struct{}
	werr error
	logs *logBuffer
}

// StartPrometheus runs the prometheus binary with a config generated from
// cfg, temporary storage and --web.enable-lifecycle, and returns once it is
// ready. It stops when the test ends and prints its log if the test failed.
// A missing binary skips or fails the test (see SkipOrFail).
//
// Ready does not mean scraped: the first samples arrive a few seconds
// later. Use WaitForUp or WaitFor, never a fixed sleep.
func StartPrometheus(tb testing.TB, cfg PromConfig) *Prometheus {
	tb.Helper()
	bin, err := lookPath("prometheus")
	SkipOrFail(tb, err)

	p := &Prometheus{dir: tb.TempDir(), PollTimeout: 30 * time.Second, logs: newLogBuffer(maxLogBytes)}
	p.ConfigFile = filepath.Join(p.dir, "prometheus.yml")
	if err := p.writeConfig(cfg); err != nil {
		tb.Fatal(err)
	}
	logOnFailure(tb, "prometheus", p.logs)
	tb.Cleanup(p.Stop)

	// A free port can be taken by someone else before prometheus binds it;
	// try a few.
	for attempt := 1; ; attempt++ {
		err = p.start(bin, cfg.ExtraArgs)
		if err == nil {
			break
		}
		if attempt == 3 || !strings.Contains(p.logs.String(), "address already in use") {
			tb.Fatalf("start prometheus: %v", err)
		}
	}
	client, err := api.NewClient(api.Config{Address: p.URL})
	if err != nil {
		tb.Fatalf("prometheus API client: %v", err)
	}
	p.API = promv1.NewAPI(client)
	return p
}

func (p *Prometheus) writeConfig(cfg PromConfig) error {
	every := func(d time.Duration) string {
		if d <= 0 {
			d = time.Second
		}
		return model.Duration(d).String()
	}
	type staticConfig struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels,omitempty"`
	}
	type scrapeConfig struct {
		JobName       string         `json:"job_name"`
		MetricsPath   string         `json:"metrics_path"`
		StaticConfigs []staticConfig `json:"static_configs"`
	}
	file := struct {
		Global struct {
			ScrapeInterval     string `json:"scrape_interval"`
			ScrapeTimeout      string `json:"scrape_timeout"`
			EvaluationInterval string `json:"evaluation_interval"`
		} `json:"global"`
		RuleFiles     []string       `json:"rule_files,omitempty"`
		ScrapeConfigs []scrapeConfig `json:"scrape_configs"`
	}{ScrapeConfigs: []scrapeConfig{}}
	file.Global.ScrapeInterval = every(cfg.ScrapeInterval)
	file.Global.ScrapeTimeout = file.Global.ScrapeInterval
	file.Global.EvaluationInterval = every(cfg.EvaluationInterval)
	for _, f := range cfg.RuleFiles {
		abs, err := filepath.Abs(f)
		if err != nil {
			return fmt.Errorf("rule file %s: %w", f, err)
		}
		file.RuleFiles = append(file.RuleFiles, abs)
	}
	jobs := cfg.Jobs
	if len(cfg.Targets) > 0 {
		jobs = append([]ScrapeJob{{Name: "test", Targets: cfg.Targets}}, jobs...)
	}
	for _, j := range jobs {
		if j.Name == "" {
			return errors.New("prometheus config: a scrape job needs a Name")
		}
		sc := scrapeConfig{JobName: j.Name, MetricsPath: j.MetricsPath}
		if sc.MetricsPath == "" {
			sc.MetricsPath = "/metrics"
		}
		targets := make([]string, len(j.Targets))
		for i, t := range j.Targets {
			targets[i] = strings.TrimSuffix(strings.TrimPrefix(t, "http://"), "/")
		}
		sc.StaticConfigs = []staticConfig{{Targets: targets, Labels: j.Labels}}
		file.ScrapeConfigs = append(file.ScrapeConfigs, sc)
	}
	b, err := yaml.Marshal(file)
	if err != nil {
		return fmt.Errorf("prometheus config: %w", err)
	}
	return os.WriteFile(p.ConfigFile, b, 0o644)
}

func (p *Prometheus) start(bin string, extra []string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	p.URL = "http://" + addr
	args := append([]string{
		"--config.file=" + p.ConfigFile,
		"--storage.tsdb.path=" + filepath.Join(p.dir, "data"),
		"--web.listen-address=" + addr,
		"--web.enable-lifecycle",
		"--log.level=info",
	}, extra...)
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout = p.logs.prefixed("prometheus")
	p.cmd.Stderr = p.cmd.Stdout
	p.cmd.SysProcAttr = childProcAttr()
	fmt.Fprintf(p.logs, "testenv: %s %s\n", bin, strings.Join(args, " "))
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", bin, err)
	}
	p.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		p.werr = cmd.Wait()
		close(done)
	}(p.cmd, p.done)

	hc := &http.Client{Timeout: 2 * time.Second}
	var exited bool
	err = wait.Poll(30*time.Second, func() error {
		select {
		case <-p.done:
			exited = true
			return nil
		default:
		}
		resp, err := hc.Get(p.URL + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/-/ready answered %d", resp.StatusCode)
		}
		return nil
	})
	switch {
	case exited:
		return fmt.Errorf("prometheus exited before it was ready (%v); its log:\n%s", p.werr, p.logs.String())
	case err != nil:
		p.Stop()
		return fmt.Errorf("prometheus not ready at %s after 30s (%v); its log:\n%s", p.URL, err, p.logs.String())
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Stop terminates prometheus (SIGTERM, then SIGKILL after ten seconds).
// It is safe to call more than once.
func (p *Prometheus) Stop() {
	if p.cmd == nil || p.done == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Logs returns prometheus's kept output.
func (p *Prometheus) Logs() string { return p.logs.String() }

// Reload rewrites the config from cfg (same rules as StartPrometheus) and
// asks prometheus to load it.
func (p *Prometheus) Reload(tb testing.TB, cfg PromConfig) {
	tb.Helper()
	if err := p.writeConfig(cfg); err != nil {
		tb.Fatal(err)
	}
	resp, err := http.Post(p.URL+"/-/reload", "", nil)
	if err != nil {
		tb.Fatalf("reload prometheus: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("reload prometheus: HTTP %d (see its log)", resp.StatusCode)
	}
}

// Query runs an instant query now and returns its result as a vector (a
// scalar result becomes one sample without labels). Errors fail the test.
func (p *Prometheus) Query(tb testing.TB, query string) model.Vector {
	tb.Helper()
	v, err := p.query(query)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

func (p *Prometheus) query(query string) (model.Vector, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	val, _, _, err := p.API.Query(ctx, query, time.Now())
	if err != nil {
		return nil, fmt.Errorf("prometheus query %q: %w", query, err)
	}
	switch v := val.(type) {
	case model.Vector:
		return v, nil
	case *model.Scalar:
		return model.Vector{{Metric: model.Metric{}, Value: v.Value, Timestamp: v.Timestamp}}, nil
	}
	return nil, fmt.Errorf("prometheus query %q: got a %s, want a vector or scalar", query, val.Type())
}

// Value runs an instant query that should return at most one sample and
// returns its value; ok is false when the result is empty. More than one
// sample fails the test.
func (p *Prometheus) Value(tb testing.TB, query string) (v float64, ok bool) {
	tb.Helper()
	vec := p.Query(tb, query)
	switch len(vec) {
	case 0:
		return 0, false
	case 1:
		return float64(vec[0].Value), true
	}
	tb.Fatalf("prometheus query %q: %d series, want one: %v", query, len(vec), vec)
	return 0, false
}

// QueryRange runs a range query and returns its matrix. Errors fail the test.
func (p *Prometheus) QueryRange(tb testing.TB, query string, start, end time.Time, step time.Duration) model.Matrix {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	val, _, _, err := p.API.QueryRange(ctx, query, promv1.Range{Start: start, End: end, Step: step})
	if err != nil {
		tb.Fatalf("prometheus range query %q: %v", query, err)
	}
	m, ok := val.(model.Matrix)
	if !ok {
		tb.Fatalf("prometheus range query %q: got a %s, want a matrix", query, val.Type())
	}
	return m
}

// WaitFor polls the instant query until it returns exactly one sample whose
// value satisfies cond, and returns that value. It fails the test after
// PollTimeout, reporting the last result.
func (p *Prometheus) WaitFor(tb testing.TB, query string, cond func(float64) bool) float64 {
	tb.Helper()
	var got float64
	err := wait.Poll(p.PollTimeout, func() error {
		vec, err := p.query(query)
		switch {
		case err != nil:
			return err
		case len(vec) == 1 && cond(float64(vec[0].Value)):
			got = float64(vec[0].Value)
			return nil
		default:
			return fmt.Errorf("result %v", vec)
		}
	})
	if err != nil {
		tb.Fatalf("prometheus query %q: condition not met within %s; last: %v", query, p.PollTimeout, err)
	}
	return got
}

// WaitForValue polls until the query returns one sample equal to want.
func (p *Prometheus) WaitForValue(tb testing.TB, query string, want float64) {
	tb.Helper()
	p.WaitFor(tb, query, func(v float64) bool { return v == want })
}

// WaitForUp polls until every target of the job reports up == 1.
func (p *Prometheus) WaitForUp(tb testing.TB, job string, targets int) {
	tb.Helper()
	q := fmt.Sprintf(`count(up{job=%q} == 1)`, job)
	p.WaitFor(tb, q, func(v float64) bool { return int(v) == targets })
}
