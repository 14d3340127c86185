package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRatioToBaseline(t *testing.T) {
	in := `goos: linux
BenchmarkBaselineReverseProxy-2   	    7514	    100000 ns/op	   45580 B/op	      92 allocs/op
BenchmarkGatePaidProxy-2          	    4012	    250000 ns/op	   57669 B/op	     270 allocs/op
BenchmarkBaselineReverseProxy-2   	    7514	    900000 ns/op	   45580 B/op	      92 allocs/op
BenchmarkBaselineReverseProxy-2   	    7514	     90000 ns/op	   45580 B/op	      92 allocs/op
PASS
`
	var out bytes.Buffer
	if err := run(strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "GatePaidProxy") || !strings.Contains(out.String(), " 2.50\n") || !strings.Contains(out.String(), " 1.00\n") {
		t.Fatalf("report:\n%s", out.String())
	}
	if err := run(strings.NewReader("--- FAIL: BenchmarkX\nFAIL\n"), &out); err == nil {
		t.Fatal("a failed run must fail the report")
	}
}
