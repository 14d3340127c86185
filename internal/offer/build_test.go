package offer

import (
	"errors"
	"strings"
	"testing"

	"github.com/obolstack/obol/internal/evm"
)

func TestParseUpstream(t *testing.T) {
	for _, tc := range []struct {
		in, svc, ns string
		port        int32
		err         string
	}{
		{"weather:8080", "weather", "", 8080, ""},
		{"ollama.llm:11434", "ollama", "llm", 11434, ""},
		{"ollama.llm.svc.cluster.local:11434", "ollama", "llm", 11434, ""},
		{"weather", "", "", 0, "SVC[.NAMESPACE]:PORT"},
		{"weather:0", "", "", 0, "port"},
		{"weather:http", "", "", 0, "port"},
		{"Weather:80", "", "", 0, "Service name"},
		{"", "", "", 0, "required"},
	} {
		svc, ns, port, err := ParseUpstream(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: err = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || svc != tc.svc || ns != tc.ns || port != tc.port {
			t.Errorf("%q = %s %s %d %v", tc.in, svc, ns, port, err)
		}
	}
}

// A problem is reported once, where the request went wrong: no price is
// "price: required", not also "set at least one of perRequest, …".
func TestBuildReportsEachFieldOnce(t *testing.T) {
	_, err := Build(evm.NewRegistry(), Request{Name: "weather", Upstream: "weather-api:8080", Chain: "base-sepolia",
		PayTo: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"}, "demo")
	var oe *Error
	if !errors.As(err, &oe) || len(oe.Problems) != 1 || oe.Problems[0].Field != FieldPrice {
		t.Fatalf("err = %v, want one price problem", err)
	}
}
