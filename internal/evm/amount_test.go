package evm

import (
	"math/big"
	"strings"
	"testing"
)

func TestParseAmount(t *testing.T) {
	good := []struct {
		in   string
		dec  uint8
		want string
	}{
		{"0.001", 6, "1000"}, {"1", 6, "1000000"}, {"0.000001", 6, "1"}, {"1.5", 6, "1500000"},
		{"0", 6, "0"}, {".5", 6, "500000"}, {"5.", 6, "5000000"}, {"0.0010000", 6, "1000"},
		{"123456789.123456", 6, "123456789123456"}, {"1", 18, "1000000000000000000"}, {"+2", 0, "2"},
		{"00012.30", 2, "1230"},
	}
	for _, c := range good {
		got, err := ParseAmount(c.in, c.dec)
		if err != nil || got.String() != c.want {
			t.Errorf("ParseAmount(%q, %d) = %v, %v; want %s", c.in, c.dec, got, err, c.want)
		}
	}
	bad := []struct {
		in, msg string
	}{
		{"-1", "negative"}, {"abc", "not a decimal"}, {"1e-3", "not a decimal"}, {"0.0000001", "more than 6 decimal places"},
		{"", "empty"}, {"1.2.3", "not a decimal"}, {".", "not a decimal"}, {"0x10", "not a decimal"}, {"1,5", "not a decimal"},
		{" 1 2", "not a decimal"}, {"NaN", "not a decimal"}, {"∞", "not a decimal"},
	}
	for _, c := range bad {
		_, err := ParseAmount(c.in, 6)
		if err == nil || !strings.Contains(err.Error(), c.msg) || !strings.Contains(err.Error(), "\""+c.in+"\"") {
			t.Errorf("ParseAmount(%q) error = %v; want it to name the value and say %q", c.in, err, c.msg)
		}
	}
}

func TestFormatAmount(t *testing.T) {
	for _, c := range []struct {
		v    int64
		dec  uint8
		want string
	}{{1000, 6, "0.001"}, {1000000, 6, "1"}, {1, 6, "0.000001"}, {0, 6, "0"}, {1500000, 6, "1.5"}, {-1500000, 6, "-1.5"}, {7, 0, "7"}} {
		if got := FormatAmount(big.NewInt(c.v), c.dec); got != c.want {
			t.Errorf("FormatAmount(%d, %d) = %q; want %q", c.v, c.dec, got, c.want)
		}
	}
}

func FuzzParseAmount(f *testing.F) {
	for _, s := range []string{"0.001", "1", "-1", "1e6", ".5", "5.", "0.0000001", "99999999999999999999.999999", ""} {
		f.Add(s, uint8(6))
	}
	f.Fuzz(func(t *testing.T, s string, dec uint8) {
		dec %= 40
		v, err := ParseAmount(s, dec)
		if err != nil {
			return
		}
		if v.Sign() < 0 {
			t.Fatalf("negative result for %q", s)
		}
		back, err := ParseAmount(FormatAmount(v, dec), dec)
		if err != nil || back.Cmp(v) != 0 {
			t.Fatalf("round trip of %q: %v -> %q -> %v, %v", s, v, FormatAmount(v, dec), back, err)
		}
	})
}
