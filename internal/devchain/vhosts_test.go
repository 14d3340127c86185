package devchain

import (
	"reflect"
	"testing"
)

func TestVirtualHosts(t *testing.T) {
	t.Parallel()
	for host, want := range map[string][]string{
		"127.0.0.1": {"localhost", "127.0.0.1"},
		"localhost": {"localhost", "localhost"},
		"0.0.0.0":   {"*"},
		"::":        {"*"},
		"":          {"*"},
		"10.1.2.3":  {"localhost", "10.1.2.3"},
	} {
		if got := virtualHosts(host); !reflect.DeepEqual(got, want) {
			t.Errorf("virtualHosts(%q) = %q, want %q", host, got, want)
		}
	}
}
