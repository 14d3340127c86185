// Command benchreport reads `go test -bench` output on stdin, echoes it, and
// prints each benchmark's ns/op and allocs/op next to its ratio to the
// baseline (the benchmark whose name contains "Baseline"). Repeated runs
// (-count N) are folded into their median.
//
//	go test -run '^$' -bench . -benchmem -count 5 ./internal/verifier/ | go run ./internal/verifier/benchreport
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

type result struct {
	name   string
	nsOp   float64
	bOp    float64
	allocs float64
}

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	var results []result
	sc := bufio.NewScanner(in)
	failed := false
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(out, line)
		if strings.HasPrefix(line, "FAIL") || strings.HasPrefix(line, "--- FAIL") {
			failed = true
		}
		if r, ok := parseLine(line); ok {
			results = append(results, r)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if failed {
		return fmt.Errorf("benchmarks failed")
	}
	results = medians(results)
	var base *result
	for i := range results {
		if strings.Contains(results[i].name, "Baseline") {
			base = &results[i]
		}
	}
	if len(results) == 0 {
		return fmt.Errorf("no benchmark results on stdin")
	}
	fmt.Fprintln(out)
	fmt.Fprintf(out, "%-32s %14s %12s %12s %10s\n", "benchmark", "ns/op", "B/op", "allocs/op", "x baseline")
	for _, r := range results {
		ratio := "-"
		if base != nil && base.nsOp > 0 {
			ratio = strconv.FormatFloat(r.nsOp/base.nsOp, 'f', 2, 64)
		}
		fmt.Fprintf(out, "%-32s %14.0f %12.0f %12.0f %10s\n", r.name, r.nsOp, r.bOp, r.allocs, ratio)
	}
	if base == nil {
		fmt.Fprintln(out, "(no Baseline benchmark in the run: ratios not computed)")
	}
	return nil
}

// medians folds repeated runs of a benchmark (-count N) into one result,
// the median of each figure, in first-seen order: one noisy run on a busy
// machine does not decide the ratio.
func medians(rs []result) []result {
	var order []string
	groups := map[string][]result{}
	for _, r := range rs {
		if _, ok := groups[r.name]; !ok {
			order = append(order, r.name)
		}
		groups[r.name] = append(groups[r.name], r)
	}
	out := make([]result, 0, len(order))
	for _, name := range order {
		g := groups[name]
		pick := func(f func(result) float64) float64 {
			v := make([]float64, len(g))
			for i, r := range g {
				v[i] = f(r)
			}
			sort.Float64s(v)
			if len(v)%2 == 1 {
				return v[len(v)/2]
			}
			return (v[len(v)/2-1] + v[len(v)/2]) / 2
		}
		out = append(out, result{name: name,
			nsOp:   pick(func(r result) float64 { return r.nsOp }),
			bOp:    pick(func(r result) float64 { return r.bOp }),
			allocs: pick(func(r result) float64 { return r.allocs })})
	}
	return out
}

// parseLine reads "BenchmarkX-2  1000  1234 ns/op  56 B/op  7 allocs/op".
func parseLine(line string) (result, bool) {
	f := strings.Fields(line)
	if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
		return result{}, false
	}
	name := f[0]
	if i := strings.LastIndex(name, "-"); i > 0 {
		if _, err := strconv.Atoi(name[i+1:]); err == nil {
			name = name[:i]
		}
	}
	r := result{name: strings.TrimPrefix(name, "Benchmark")}
	ok := false
	for i := 2; i+1 < len(f); i++ {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			continue
		}
		switch f[i+1] {
		case "ns/op":
			r.nsOp, ok = v, true
		case "B/op":
			r.bOp = v
		case "allocs/op":
			r.allocs = v
		}
	}
	return r, ok
}
