package evm

import (
	"fmt"
	"math/big"
	"strings"
)

// ParseAmount converts an exact decimal price ("0.001") into atomic units of
// a token with the given decimals (1000 for 6 decimals). No floating point is
// involved. Negative values, non-numbers, exponents and more fractional
// digits than the token has are rejected with a message naming the value.
func ParseAmount(s string, decimals uint8) (*big.Int, error) {
	v := strings.TrimSpace(s)
	if v == "" {
		return nil, fmt.Errorf("invalid amount %q: empty", s)
	}
	if strings.HasPrefix(v, "-") {
		return nil, fmt.Errorf("invalid amount %q: must not be negative", s)
	}
	v = strings.TrimPrefix(v, "+")
	whole, frac, hasDot := strings.Cut(v, ".")
	if hasDot && whole == "" && frac == "" {
		return nil, fmt.Errorf("invalid amount %q: not a decimal number", s)
	}
	if !allDigits(whole) || !allDigits(frac) || (whole == "" && !hasDot) {
		return nil, fmt.Errorf("invalid amount %q: not a decimal number (use digits and at most one '.', e.g. 0.001)", s)
	}
	frac = strings.TrimRight(frac, "0")
	if len(frac) > int(decimals) {
		return nil, fmt.Errorf("invalid amount %q: more than %d decimal places, the token's precision", s, decimals)
	}
	digits := whole + frac + strings.Repeat("0", int(decimals)-len(frac))
	digits = strings.TrimLeft(digits, "0")
	if digits == "" {
		return new(big.Int), nil
	}
	if len(digits) > 78 { // beyond uint256
		return nil, fmt.Errorf("invalid amount %q: too large", s)
	}
	n, ok := new(big.Int).SetString(digits, 10)
	if !ok {
		return nil, fmt.Errorf("invalid amount %q: not a decimal number", s)
	}
	return n, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// FormatAmount renders atomic units as an exact decimal string with trailing
// zeros trimmed (1000 with 6 decimals is "0.001").
func FormatAmount(v *big.Int, decimals uint8) string {
	if v == nil {
		return "0"
	}
	neg := v.Sign() < 0
	s := new(big.Int).Abs(v).String()
	d := int(decimals)
	if len(s) <= d {
		s = strings.Repeat("0", d-len(s)+1) + s
	}
	whole, frac := s[:len(s)-d], strings.TrimRight(s[len(s)-d:], "0")
	out := whole
	if frac != "" {
		out += "." + frac
	}
	if neg {
		out = "-" + out
	}
	return out
}

// ParseAtomic parses a non-negative decimal string of atomic units ("1000").
func ParseAtomic(s string) (*big.Int, error) {
	if s == "" || !allDigits(s) || len(s) > 78 {
		return nil, fmt.Errorf("invalid atomic amount %q: want a non-negative integer", s)
	}
	n, _ := new(big.Int).SetString(s, 10)
	return n, nil
}
