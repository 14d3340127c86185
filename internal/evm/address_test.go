package evm

import (
	"strings"
	"testing"
)

func TestParseAddress(t *testing.T) {
	for _, tc := range []struct {
		in, err string
	}{
		{"0x70997970C51812dc3A010C7d01b50e0d17dc79C8", ""},
		{"0x70997970c51812dc3a010c7d01b50e0d17dc79c8", ""}, // all lower: no checksum to check
		{"0x70997970C51812DC3A010C7D01B50E0D17DC79C8", ""}, // all upper
		{"0x70997970C51812dc3A010C7d01b50e0d17dc79c8", "EIP-55"},
		{"70997970C51812dc3A010C7d01b50e0d17dc79C8", "not an address"},
		{"0x1234", "not an address"},
		{"", "no address"},
	} {
		_, err := ParseAddress(tc.in)
		if tc.err == "" && err != nil {
			t.Errorf("%q: %v", tc.in, err)
		}
		if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%q: err = %v, want %q", tc.in, err, tc.err)
		}
	}
}

func TestParsePayToRefusesTheZeroAddress(t *testing.T) {
	if _, err := ParsePayTo("0x0000000000000000000000000000000000000000"); err != ErrZeroAddress {
		t.Errorf("zero address: err = %v", err)
	}
	if a, err := ParsePayTo(" 0x70997970c51812dc3a010c7d01b50e0d17dc79c8 "); err != nil || a.Hex() != "0x70997970C51812dc3A010C7d01b50e0d17dc79C8" {
		t.Errorf("= %s, %v", a.Hex(), err)
	}
}
