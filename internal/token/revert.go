package token

import (
	"errors"
	"strings"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/rpc"
)

// RevertReason extracts the Error(string) reason of a reverted eth_call,
// eth_estimateGas or eth_sendRawTransaction from err: first from the
// JSON-RPC error's data (go-ethereum's rpc.DataError, anywhere in the wrap
// chain), then from a message of the form "execution reverted: REASON". It
// returns "" when err carries no reason (nil, a transport error, a revert
// without reason). A Panic(uint256) revert yields "assert failed" style text.
func RevertReason(err error) string {
	if err == nil {
		return ""
	}
	var de rpc.DataError
	if errors.As(err, &de) {
		switch d := de.ErrorData().(type) {
		case string:
			if b, derr := hexutil.Decode(d); derr == nil {
				if r := RevertReasonFromData(b); r != "" {
					return r
				}
			}
		case []byte:
			if r := RevertReasonFromData(d); r != "" {
				return r
			}
		}
	}
	const marker = "execution reverted: "
	msg := err.Error()
	if i := strings.Index(msg, marker); i >= 0 {
		return strings.TrimSpace(msg[i+len(marker):])
	}
	return ""
}

// RevertReasonFromData decodes raw revert data: Error(string) gives its
// message, Panic(uint256) a description of the panic code, anything else "".
func RevertReasonFromData(data []byte) string {
	r, err := abi.UnpackRevert(data)
	if err != nil {
		return ""
	}
	return r
}

// IsRevert reports whether err is a JSON-RPC "execution reverted" error (as
// opposed to a transport or node failure), with or without a reason.
func IsRevert(err error) bool {
	if err == nil {
		return false
	}
	if RevertReason(err) != "" {
		return true
	}
	return strings.Contains(err.Error(), "execution reverted")
}
