package offer

import (
	"strings"
	"testing"
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
