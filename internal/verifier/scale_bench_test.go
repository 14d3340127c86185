package verifier

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/obolstack/obol/internal/evm"
)

// Benchmarks at the scale of an operator selling many APIs: 2 and 10,000
// routes, requests to the first, the last and no route, reloads that drop or
// add half the offers, and a scrape of 10,000 offers on each of 3 chains.

// scaleChains are the chains scale configs spread their offers over; each
// chain gets its own offer namespace (one offer charges on one chain).
var scaleChains = []string{"base-sepolia", "base", "polygon"}

// scaleSpec is a pricing spec with n priced prefix routes /svc/<i>/* (offer
// svc-<i>) and one free route, on chains[0] unless perChain spreads n
// offers over each chain.
func scaleSpec(upstream string, n int, chains []string) *Spec {
	s := &Spec{
		Source: "scale.yaml", PayTo: testPayTo, Chain: chains[0],
		FacilitatorURL: "http://127.0.0.1:4021", Upstream: upstream,
	}
	for ci, ch := range chains {
		for i := 0; i < n; i++ {
			rs := RouteSpec{Pattern: fmt.Sprintf("/svc/%d/*", i), Price: "0.001", OfferName: fmt.Sprintf("svc-%d", i)}
			if len(chains) > 1 {
				rs.Pattern = fmt.Sprintf("/c%d/svc/%d/*", ci, i)
				rs.Network = ch
				rs.OfferNamespace = fmt.Sprintf("chain-%d", ci)
			}
			s.Routes = append(s.Routes, rs)
		}
	}
	s.Routes = append(s.Routes, RouteSpec{Pattern: "/health", Price: "0", OfferName: "health"})
	return s
}

func compileScale(t testing.TB, reg *evm.Registry, upstream string, n int, chains []string) *Config {
	t.Helper()
	cfg, err := Compile(scaleSpec(upstream, n, chains), reg, Environment{})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// newScaleGate is a gate serving cfg, with metrics on a fresh registry.
func newScaleGate(t testing.TB, reg *evm.Registry, cfg *Config) *testGate {
	t.Helper()
	g := &testGate{fac: &stubFacilitator{}, reg: prometheus.NewRegistry(), evm: reg}
	m, err := NewMetrics(g.reg)
	if err != nil {
		t.Fatal(err)
	}
	g.metrics = m
	g.srv, err = New(Options{
		NewFacilitator: func(string) (Facilitator, error) { return g.fac, nil },
		Registry:       reg,
		Metrics:        m,
		Gatherer:       g.reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.srv.ApplyConfig(cfg); err != nil {
		t.Fatal(err)
	}
	g.h = g.srv.Handler()
	return g
}

var scaleTargets = []struct{ name, path string }{
	{"first", "/svc/0/today"},
	{"last", "/svc/%d/today"},
	{"unmatched", "/nothing/here"},
}

func scalePath(p string, n int) string {
	if p == "/svc/%d/today" {
		return fmt.Sprintf(p, n-1)
	}
	return p
}

func BenchmarkScale402(b *testing.B) {
	up := benchUpstream(b)
	reg := evm.NewRegistry()
	for _, n := range []int{2, 10000} {
		g := newScaleGate(b, reg, compileScale(b, reg, up.String(), n, scaleChains[:1]))
		for _, tg := range scaleTargets {
			p, want := scalePath(tg.path, n), http.StatusPaymentRequired
			if tg.name == "unmatched" {
				// unmatched: deny, the default: the same lookup, then 404
				// without reaching an upstream.
				want = http.StatusNotFound
			}
			b.Run(fmt.Sprintf("routes=%d/%s", n, tg.name), func(b *testing.B) {
				serveBench(b, g.h, func(int) *http.Request { return httptest.NewRequest(http.MethodGet, p, nil) }, want)
			})
		}
	}
}

func BenchmarkScalePaid(b *testing.B) {
	up := benchUpstream(b)
	reg := evm.NewRegistry()
	for _, n := range []int{2, 10000} {
		g := newScaleGate(b, reg, compileScale(b, reg, up.String(), n, scaleChains[:1]))
		for _, tg := range scaleTargets[:2] {
			p := scalePath(tg.path, n)
			b.Run(fmt.Sprintf("routes=%d/%s", n, tg.name), func(b *testing.B) {
				req := challenge(b, g.h, p)
				buyer := newBuyer(b)
				names, values := make([]string, b.N), make([]string, b.N)
				for i := range names {
					names[i], values[i] = buyer.pay(b, g.evm, 2, req)
				}
				serveBench(b, g.h, func(i int) *http.Request {
					r := httptest.NewRequest(http.MethodGet, p, nil)
					r.Header.Set(names[i], values[i])
					return r
				}, 200)
			})
		}
	}
}

// BenchmarkScaleReload applies a config with half the offers of the one in
// force (10k→5k) or twice as many (5k→10k); compiling is the route
// source's work and is not timed.
func BenchmarkScaleReload(b *testing.B) {
	up := benchUpstream(b)
	reg := evm.NewRegistry()
	big := compileScale(b, reg, up.String(), 10000, scaleChains[:1])
	small := compileScale(b, reg, up.String(), 5000, scaleChains[:1])
	for _, tc := range []struct {
		name     string
		from, to *Config
	}{{"10k-to-5k", big, small}, {"5k-to-10k", small, big}} {
		b.Run(tc.name, func(b *testing.B) {
			g := newScaleGate(b, reg, tc.from)
			b.ReportAllocs()
			b.ResetTimer()
			var cpu time.Duration
			var cycles uint64
			for i := 0; i < b.N; i++ {
				c0, gc0 := processCPU(), gcCycles()
				if err := g.srv.ApplyConfig(tc.to); err != nil {
					b.Fatal(err)
				}
				cpu += processCPU() - c0
				cycles += gcCycles() - gc0
				b.StopTimer()
				if err := g.srv.ApplyConfig(tc.from); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/op")
			b.ReportMetric(float64(cycles)/float64(b.N), "gc-cycles/op")
		})
		// The same reload while one goroutine sends 402 requests to a kept
		// offer. Each reload is preceded by a quiet window as long as the
		// last reload, with the same traffic: on a shared machine the
		// scheduler alone delays some requests, and only what the quiet
		// windows do not show is the reload's doing.
		//
		// The loop never calls b.StopTimer or b.StartTimer: with -benchmem
		// each reads the memory statistics, which stops the world (up to
		// 4 ms here), and a stop inside a window was counted as the
		// reload's delay. ns/op is therefore a whole round (quiet window,
		// reload, restore); reload-ms is the reload alone.
		b.Run(tc.name+"/under-traffic", func(b *testing.B) {
			g := newScaleGate(b, reg, tc.from)
			var (
				window  reloadWindow
				stop    atomic.Bool
				served  atomic.Int64
				slowest [2]atomic.Int64 // quiet, reload
				wg      sync.WaitGroup
			)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stop.Load() {
					w0, start := window.Load(), time.Now()
					g.do(httptest.NewRequest(http.MethodGet, "/svc/7/x", nil))
					d, w1 := time.Since(start).Nanoseconds(), window.Load()
					if k := window.classify(w0, w1); k >= 0 && d > slowest[k].Load() {
						slowest[k].Store(d)
					}
					served.Add(1)
				}
			}()
			// settle waits until the traffic goroutine has finished two
			// requests, so none in flight started in the previous window.
			settle := func() {
				for n := served.Load(); served.Load() < n+2; {
					runtime.Gosched()
				}
			}
			pauses := gcPauses()
			last := 20 * time.Millisecond
			var reloading time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				settle()
				window.enter(windowQuiet)
				time.Sleep(last)
				window.enter(windowNone)
				settle()
				window.enter(windowReload)
				start := time.Now()
				if err := g.srv.ApplyConfig(tc.to); err != nil {
					b.Fatal(err)
				}
				last = time.Since(start)
				window.enter(windowNone)
				reloading += last
				if err := g.srv.ApplyConfig(tc.from); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			stop.Store(true)
			wg.Wait()
			b.ReportMetric(float64(reloading.Microseconds())/1000/float64(b.N), "reload-ms")
			b.ReportMetric(float64(slowest[windowReload].Load())/1e6, "slowest-request-ms")
			b.ReportMetric(float64(slowest[windowQuiet].Load())/1e6, "slowest-quiet-ms")
			b.ReportMetric(gcPauses().maxSince(pauses)*1e3, "gc-pause-max-ms")
		})
	}
}

// reloadWindow numbers the phases of BenchmarkScaleReload/under-traffic:
// a sequence number and the kind of window, in one word.
type reloadWindow struct{ atomic.Int64 }

const (
	windowQuiet  = 0
	windowReload = 1
	windowNone   = 2
)

func (w *reloadWindow) enter(kind int64) {
	w.Store((w.Load()>>2+1)<<2 | kind)
}

// classify says which window a request that started in w0 and ended in
// w1 belongs to: reload when any part of it overlapped a reload, quiet
// when it ran within one quiet window, else -1.
func (w *reloadWindow) classify(w0, w1 int64) int {
	switch {
	case w0&3 == windowReload || w1&3 == windowReload || w1>>2-w0>>2 >= 2:
		return windowReload
	case w0 == w1 && w0&3 == windowQuiet:
		return windowQuiet
	}
	return -1
}

// gcCycles is the number of completed GC cycles.
func gcCycles() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// gcHistogram is the runtime's histogram of stop-the-world GC pauses.
type gcHistogram struct {
	counts  []uint64
	buckets []float64
}

func gcPauses() gcHistogram {
	s := []metrics.Sample{{Name: "/sched/pauses/total/gc:seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64Histogram {
		return gcHistogram{}
	}
	h := s[0].Value.Float64Histogram()
	return gcHistogram{counts: append([]uint64(nil), h.Counts...), buckets: h.Buckets}
}

// maxSince is the upper bound of the longest pause since before.
func (h gcHistogram) maxSince(before gcHistogram) float64 {
	for i := len(h.counts) - 1; i >= 0; i-- {
		if i < len(before.counts) && h.counts[i] > before.counts[i] {
			return h.buckets[i+1]
		}
	}
	return 0
}

// BenchmarkScaleScrape scrapes /metrics of 10,000 offers on one chain and
// on each of 3 chains, before any traffic, into a writer that discards
// (as a socket would take it), and once gzipped as Prometheus asks for it.
func BenchmarkScaleScrape(b *testing.B) {
	up := benchUpstream(b)
	reg := evm.NewRegistry()
	for _, tc := range []struct {
		name   string
		chains []string
		gzip   bool
	}{{"offers=10000", scaleChains[:1], false}, {"offers=10000x3chains", scaleChains, false}, {"offers=10000/gzip", scaleChains[:1], true}} {
		b.Run(tc.name, func(b *testing.B) {
			g := newScaleGate(b, reg, compileScale(b, reg, up.String(), 10000, tc.chains))
			req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
			req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")
			if tc.gzip {
				req.Header.Set("Accept-Encoding", "gzip")
			}
			var w discardWriter
			b.ReportAllocs()
			b.ResetTimer()
			c0 := processCPU()
			for i := 0; i < b.N; i++ {
				w = discardWriter{header: http.Header{}}
				g.h.ServeHTTP(&w, req)
				if w.code != 0 && w.code != 200 {
					b.Fatalf("/metrics: %d", w.code)
				}
			}
			b.ReportMetric(float64((processCPU()-c0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
			b.ReportMetric(float64(w.n), "bytes/scrape")
		})
	}
}

// discardWriter is a ResponseWriter that counts and drops the body.
type discardWriter struct {
	header http.Header
	code   int
	n      int
}

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }
func (w *discardWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

// processCPU is the CPU time the process has used (user + system): on a
// shared, loaded machine it says more than the wall clock.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
