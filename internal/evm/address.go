package evm

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ethereum/go-ethereum/common"
)

// ParseAddress accepts 0x + 40 hex digits (surrounding spaces trimmed). An
// all-lower or all-upper case address is accepted as is; a mixed-case one
// must carry the correct EIP-55 checksum, which catches a mistyped
// character.
func ParseAddress(s string) (common.Address, error) {
	v := strings.TrimSpace(s)
	if v == "" {
		return common.Address{}, errors.New("no address given: use 0x followed by 40 hex digits")
	}
	if !common.IsHexAddress(v) || !strings.HasPrefix(strings.ToLower(v), "0x") {
		return common.Address{}, fmt.Errorf("%q is not an address: use 0x followed by 40 hex digits", s)
	}
	a := common.HexToAddress(v)
	hex := v[2:]
	if hex != strings.ToLower(hex) && hex != strings.ToUpper(hex) && a.Hex() != "0x"+hex {
		// Do not print the checksummed form: after a typo it is the checksum
		// of the wrong address, and copying it would send money there.
		return common.Address{}, fmt.Errorf("%q fails its EIP-55 checksum (mixed case): a character is probably mistyped; copy the address again from its source", s)
	}
	return a, nil
}

// ErrZeroAddress refuses the zero address where money would go to it.
var ErrZeroAddress = errors.New("the zero address cannot receive payments")

// ParsePayTo is ParseAddress for an address money is sent to or charged
// in: the zero address is refused.
func ParsePayTo(s string) (common.Address, error) {
	a, err := ParseAddress(s)
	if err == nil && a == (common.Address{}) {
		return a, ErrZeroAddress
	}
	return a, err
}
