// Package token is the Go binding of EIP-3009 tokens: it packs and unpacks
// calls to obol's own ObolUSD (embed/token) and, because the method
// signatures are the same, to USDC on any chain. It deploys ObolUSD and
// extracts revert reasons from JSON-RPC errors.
//
// It is written on go-ethereum's accounts/abi package; there is no generated
// code. Nothing here keeps state besides the parsed ABI.
package token

import (
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"

	tokenasset "github.com/obolstack/obol/embed/token"
	"github.com/obolstack/obol/internal/evm"
)

// Method names of the ABI.
const (
	MethodTransferWithAuthorization = "transferWithAuthorization"
	MethodReceiveWithAuthorization  = "receiveWithAuthorization"
	MethodCancelAuthorization       = "cancelAuthorization"
	MethodAuthorizationState        = "authorizationState"
	MethodBalanceOf                 = "balanceOf"
	MethodMint                      = "mint"
	MethodTransfer                  = "transfer"
)

// Phrases contained in the revert reasons of ObolUSD and of USDC
// (FiatTokenV2); match them with strings.Contains on RevertReason's result.
const (
	ReasonAuthorizationUsed   = "authorization is used"          // nonce used or canceled
	ReasonNotYetValid         = "authorization is not yet valid" // block.timestamp <= validAfter
	ReasonExpired             = "authorization is expired"       // block.timestamp >= validBefore
	ReasonInvalidSignature    = "invalid signature"              // wrong signer, domain, malleable s, bad v
	ReasonInsufficientBalance = "transfer amount exceeds balance"
	ReasonCallerNotPayee      = "caller must be the payee" // receiveWithAuthorization sent by someone else
)

var (
	parseOnce sync.Once
	parsed    abi.ABI
	parseErr  error
	bytecode  []byte
)

func load() {
	parsed, parseErr = abi.JSON(strings.NewReader(string(tokenasset.ABIJSON)))
	if parseErr != nil {
		parseErr = fmt.Errorf("parse embedded ObolUSD ABI: %w (run make contracts)", parseErr)
		return
	}
	bytecode = common.FromHex(strings.TrimSpace(tokenasset.BinHex))
	if len(bytecode) == 0 {
		parseErr = errors.New("embedded ObolUSD bytecode is empty (run make contracts)")
	}
}

// ABI returns the token's parsed ABI (ObolUSD's, a superset of the EIP-3009
// and ERC-20 methods USDC has). It panics if the embedded ABI is corrupt,
// which the package's tests rule out.
func ABI() abi.ABI {
	parseOnce.Do(load)
	if parseErr != nil {
		panic(parseErr)
	}
	return parsed
}

// Bytecode returns a copy of ObolUSD's creation bytecode (without
// constructor arguments).
func Bytecode() []byte {
	ABI()
	return common.CopyBytes(bytecode)
}

// ErrSignature reports a signature that is not a 65-byte r‖s‖v EOA signature.
var ErrSignature = errors.New("signature must be 65 bytes r‖s‖v with v 0, 1, 27 or 28")

// SplitSignature splits a 65-byte r‖s‖v signature; v 0/1 becomes 27/28.
func SplitSignature(sig []byte) (v uint8, r, s [32]byte, err error) {
	if len(sig) != 65 {
		return 0, r, s, fmt.Errorf("%w: got %d bytes", ErrSignature, len(sig))
	}
	v = sig[64]
	if v < 27 {
		v += 27
	}
	if v != 27 && v != 28 {
		return 0, r, s, fmt.Errorf("%w: got v=%d", ErrSignature, sig[64])
	}
	copy(r[:], sig[:32])
	copy(s[:], sig[32:64])
	return v, r, s, nil
}

func checkAuthorization(a evm.Authorization) error {
	for _, f := range []struct {
		name string
		v    *big.Int
	}{{"value", a.Value}, {"validAfter", a.ValidAfter}, {"validBefore", a.ValidBefore}} {
		if f.v == nil {
			return fmt.Errorf("authorization.%s is missing", f.name)
		}
		if f.v.Sign() < 0 || f.v.BitLen() > 256 {
			return fmt.Errorf("authorization.%s %s is not a uint256", f.name, f.v)
		}
	}
	return nil
}

func packAuthorization(method string, a evm.Authorization, sig []byte) ([]byte, error) {
	if err := checkAuthorization(a); err != nil {
		return nil, err
	}
	v, r, s, err := SplitSignature(sig)
	if err != nil {
		return nil, err
	}
	return Pack(method, a.From, a.To, a.Value, a.ValidAfter, a.ValidBefore, a.Nonce, v, r, s)
}

// Pack packs a call of any method of the ABI, naming the method on error.
func Pack(method string, args ...any) ([]byte, error) {
	data, err := ABI().Pack(method, args...)
	if err != nil {
		return nil, fmt.Errorf("pack %s: %w", method, err)
	}
	return data, nil
}

// PackTransferWithAuthorization packs transferWithAuthorization(from, to,
// value, validAfter, validBefore, nonce, v, r, s) from an authorization and
// its 65-byte signature.
func PackTransferWithAuthorization(a evm.Authorization, sig []byte) ([]byte, error) {
	return packAuthorization(MethodTransferWithAuthorization, a, sig)
}

// PackReceiveWithAuthorization packs receiveWithAuthorization; the
// transaction must be sent by a.To. The signature must be over the
// ReceiveWithAuthorization type, not TransferWithAuthorization.
func PackReceiveWithAuthorization(a evm.Authorization, sig []byte) ([]byte, error) {
	return packAuthorization(MethodReceiveWithAuthorization, a, sig)
}

// PackCancelAuthorization packs cancelAuthorization(authorizer, nonce, v, r, s).
func PackCancelAuthorization(authorizer common.Address, nonce [32]byte, sig []byte) ([]byte, error) {
	v, r, s, err := SplitSignature(sig)
	if err != nil {
		return nil, err
	}
	return Pack(MethodCancelAuthorization, authorizer, nonce, v, r, s)
}

// PackAuthorizationState packs authorizationState(authorizer, nonce); unpack
// the answer with UnpackBool (true = used or canceled).
func PackAuthorizationState(authorizer common.Address, nonce [32]byte) ([]byte, error) {
	return Pack(MethodAuthorizationState, authorizer, nonce)
}

// PackBalanceOf packs balanceOf(addr); unpack the answer with UnpackUint.
func PackBalanceOf(addr common.Address) ([]byte, error) {
	return Pack(MethodBalanceOf, addr)
}

// PackMint packs ObolUSD's owner-only mint(to, amount).
func PackMint(to common.Address, amount *big.Int) ([]byte, error) {
	if amount == nil || amount.Sign() < 0 {
		return nil, fmt.Errorf("pack mint: amount %v is not a non-negative integer", amount)
	}
	return Pack(MethodMint, to, amount)
}

// PackTransfer packs the ERC-20 transfer(to, value).
func PackTransfer(to common.Address, value *big.Int) ([]byte, error) {
	if value == nil || value.Sign() < 0 {
		return nil, fmt.Errorf("pack transfer: value %v is not a non-negative integer", value)
	}
	return Pack(MethodTransfer, to, value)
}

// UnpackBool decodes a single ABI bool return value.
func UnpackBool(data []byte) (bool, error) {
	w, err := oneWord(data, "bool")
	if err != nil {
		return false, err
	}
	for _, b := range w[:31] {
		if b != 0 {
			return false, fmt.Errorf("decode bool: word %x is not 0 or 1", w)
		}
	}
	switch w[31] {
	case 0:
		return false, nil
	case 1:
		return true, nil
	}
	return false, fmt.Errorf("decode bool: word %x is not 0 or 1", w)
}

// UnpackUint decodes a single ABI uint256 return value.
func UnpackUint(data []byte) (*big.Int, error) {
	w, err := oneWord(data, "uint256")
	if err != nil {
		return nil, err
	}
	return new(big.Int).SetBytes(w), nil
}

// UnpackString decodes a single ABI string return value (name, symbol, version).
func UnpackString(data []byte) (string, error) {
	typ, _ := abi.NewType("string", "", nil)
	out, err := abi.Arguments{{Type: typ}}.Unpack(data)
	if err != nil {
		return "", fmt.Errorf("decode string: %w", err)
	}
	return out[0].(string), nil
}

func oneWord(data []byte, what string) ([]byte, error) {
	if len(data) != 32 {
		if len(data) == 0 {
			return nil, fmt.Errorf("decode %s: empty return data (is there a contract at that address?)", what)
		}
		return nil, fmt.Errorf("decode %s: want 32 bytes of return data, got %d", what, len(data))
	}
	return data, nil
}
