package evm

import (
	"crypto/ecdsa"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/common/hexutil"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/obolstack/obol/internal/x402"
)

// Domain is an EIP-712 domain {name, version, chainId, verifyingContract}.
type Domain struct {
	Name              string
	Version           string
	ChainID           *big.Int
	VerifyingContract common.Address
}

// Authorization is an EIP-3009 TransferWithAuthorization message.
type Authorization struct {
	From        common.Address
	To          common.Address
	Value       *big.Int
	ValidAfter  *big.Int
	ValidBefore *big.Int
	Nonce       [32]byte
}

var (
	domainTypeHash = crypto.Keccak256Hash([]byte("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"))
	// TransferWithAuthorizationTypeHash is keccak256 of the EIP-3009 struct type.
	TransferWithAuthorizationTypeHash = crypto.Keccak256Hash([]byte("TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"))
)

func word(b []byte) []byte { return common.LeftPadBytes(b, 32) }

func uintWord(v *big.Int) []byte {
	if v == nil {
		return make([]byte, 32)
	}
	return word(v.Bytes())
}

// Separator returns the EIP-712 domain separator.
func (d Domain) Separator() common.Hash {
	return crypto.Keccak256Hash(
		domainTypeHash[:],
		crypto.Keccak256([]byte(d.Name)),
		crypto.Keccak256([]byte(d.Version)),
		uintWord(d.ChainID),
		word(d.VerifyingContract[:]),
	)
}

// StructHash returns hashStruct(TransferWithAuthorization).
func (a Authorization) StructHash() common.Hash {
	return crypto.Keccak256Hash(
		TransferWithAuthorizationTypeHash[:],
		word(a.From[:]),
		word(a.To[:]),
		uintWord(a.Value),
		uintWord(a.ValidAfter),
		uintWord(a.ValidBefore),
		a.Nonce[:],
	)
}

// Digest returns keccak256(0x19 0x01 ‖ domainSeparator ‖ structHash), the
// hash an EOA signs.
func Digest(d Domain, a Authorization) common.Hash {
	sep := d.Separator()
	sh := a.StructHash()
	return crypto.Keccak256Hash([]byte{0x19, 0x01}, sep[:], sh[:])
}

// Sign signs the authorization for the domain and returns the 65-byte
// signature r‖s‖v with v = 27 or 28.
func Sign(key *ecdsa.PrivateKey, d Domain, a Authorization) ([]byte, error) {
	h := Digest(d, a)
	sig, err := crypto.Sign(h[:], key)
	if err != nil {
		return nil, fmt.Errorf("sign authorization: %w", err)
	}
	sig[64] += 27
	return sig, nil
}

// ErrSignatureLength reports a signature that is not a 65-byte EOA signature
// (smart-wallet EIP-1271/6492 signatures are longer).
var ErrSignatureLength = errors.New("signature is not 65 bytes (smart-wallet signatures are not supported)")

// Recover returns the address that produced sig over the authorization in
// the domain. It accepts v as 0/1 or 27/28.
func Recover(d Domain, a Authorization, sig []byte) (common.Address, error) {
	if len(sig) != 65 {
		return common.Address{}, fmt.Errorf("%w: got %d bytes", ErrSignatureLength, len(sig))
	}
	s := make([]byte, 65)
	copy(s, sig)
	if s[64] >= 27 {
		s[64] -= 27
	}
	if s[64] > 1 {
		return common.Address{}, fmt.Errorf("invalid signature recovery id %d", sig[64])
	}
	h := Digest(d, a)
	pub, err := crypto.SigToPub(h[:], s)
	if err != nil {
		return common.Address{}, fmt.Errorf("recover signer: %w", err)
	}
	return crypto.PubkeyToAddress(*pub), nil
}

// NewNonce returns 32 random bytes.
func NewNonce() ([32]byte, error) {
	var n [32]byte
	if _, err := rand.Read(n[:]); err != nil {
		return n, fmt.Errorf("read random nonce: %w", err)
	}
	return n, nil
}

// ClockSkew is subtracted from now for validAfter, so a buyer whose clock is
// ahead of the chain's is still valid.
const ClockSkew = 600 * time.Second

// NewAuthorization builds an authorization valid from now-ClockSkew until
// now+timeout, with a fresh random nonce.
func NewAuthorization(from, to common.Address, value *big.Int, now time.Time, timeout time.Duration) (Authorization, error) {
	nonce, err := NewNonce()
	if err != nil {
		return Authorization{}, err
	}
	return Authorization{
		From:        from,
		To:          to,
		Value:       new(big.Int).Set(value),
		ValidAfter:  big.NewInt(now.Add(-ClockSkew).Unix()),
		ValidBefore: big.NewInt(now.Add(timeout).Unix()),
		Nonce:       nonce,
	}, nil
}

// Validity errors, distinguishable with errors.Is.
var (
	ErrNotYetValid = errors.New("authorization is not valid yet")
	ErrExpired     = errors.New("authorization expired or expires too soon")
)

// CheckWindow checks validAfter ≤ now and validBefore ≥ now + minRemaining.
func CheckWindow(a Authorization, now time.Time, minRemaining time.Duration) error {
	n := big.NewInt(now.Unix())
	if a.ValidAfter != nil && a.ValidAfter.Cmp(n) > 0 {
		return fmt.Errorf("%w: validAfter %s is after now %d", ErrNotYetValid, a.ValidAfter, now.Unix())
	}
	limit := big.NewInt(now.Add(minRemaining).Unix())
	if a.ValidBefore == nil || a.ValidBefore.Cmp(limit) < 0 {
		return fmt.Errorf("%w: validBefore %v is before now+%s (%d)", ErrExpired, a.ValidBefore, minRemaining, limit)
	}
	return nil
}

// Wire renders the authorization as its x402 JSON form.
func (a Authorization) Wire() x402.EIP3009Authorization {
	return x402.EIP3009Authorization{
		From:        a.From.Hex(),
		To:          a.To.Hex(),
		Value:       bigString(a.Value),
		ValidAfter:  bigString(a.ValidAfter),
		ValidBefore: bigString(a.ValidBefore),
		Nonce:       hexutil.Encode(a.Nonce[:]),
	}
}

func bigString(v *big.Int) string {
	if v == nil {
		return "0"
	}
	return v.String()
}

// FieldError names the field of an authorization that is malformed.
type FieldError struct {
	Field string
	Value string
	Err   error
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("authorization.%s %q: %v", e.Field, e.Value, e.Err)
}

func (e *FieldError) Unwrap() error { return e.Err }

// AuthorizationFromWire parses the x402 JSON form, naming the bad field.
func AuthorizationFromWire(w x402.EIP3009Authorization) (Authorization, error) {
	var a Authorization
	var err error
	if a.From, err = parseAddress("from", w.From); err != nil {
		return a, err
	}
	if a.To, err = parseAddress("to", w.To); err != nil {
		return a, err
	}
	for _, f := range []struct {
		name string
		val  string
		dst  **big.Int
	}{{"value", w.Value, &a.Value}, {"validAfter", w.ValidAfter, &a.ValidAfter}, {"validBefore", w.ValidBefore, &a.ValidBefore}} {
		n, perr := ParseAtomic(f.val)
		if perr != nil {
			return a, &FieldError{Field: f.name, Value: f.val, Err: errors.New("want a non-negative decimal integer")}
		}
		*f.dst = n
	}
	nb, err := hexutil.Decode(w.Nonce)
	if err != nil || len(nb) != 32 {
		return a, &FieldError{Field: "nonce", Value: w.Nonce, Err: errors.New("want 0x followed by 64 hex digits")}
	}
	copy(a.Nonce[:], nb)
	return a, nil
}

func parseAddress(field, s string) (common.Address, error) {
	if !common.IsHexAddress(s) || !strings.HasPrefix(strings.ToLower(s), "0x") {
		return common.Address{}, &FieldError{Field: field, Value: s, Err: errors.New("want a 0x-prefixed 20-byte hex address")}
	}
	return common.HexToAddress(s), nil
}

// DecodeSignature parses a 0x-hex signature.
func DecodeSignature(s string) ([]byte, error) {
	b, err := hexutil.Decode(s)
	if err != nil {
		return nil, &FieldError{Field: "signature", Value: s, Err: errors.New("want 0x-prefixed hex")}
	}
	return b, nil
}

// ErrHighS reports a signature whose s is in the upper half of the curve
// order: the malleable twin of a valid signature, which EIP-2 and USDC's
// contract reject.
var ErrHighS = errors.New("signature s value is in the upper half of the curve order (a malleable signature; re-sign with a standard library)")

var secp256k1HalfN = new(big.Int).Rsh(crypto.S256().Params().N, 1)

// CheckCanonical rejects a 65-byte signature with a high s value.
func CheckCanonical(sig []byte) error {
	if len(sig) != 65 {
		return fmt.Errorf("%w: got %d bytes", ErrSignatureLength, len(sig))
	}
	if new(big.Int).SetBytes(sig[32:64]).Cmp(secp256k1HalfN) > 0 {
		return ErrHighS
	}
	return nil
}

// ValiditySkew is the clock difference allowed between whoever signs an
// authorization and whoever checks how long it is valid.
const ValiditySkew = 30 * time.Second

// ErrValidTooLong is an authorization valid for longer than allowed.
var ErrValidTooLong = errors.New("authorization is valid for too long")

// CheckMaxValidity checks validBefore ≤ now + max + ValiditySkew: an
// authorization must not outlive the window a seller asked for (its
// maxTimeoutSeconds), nor the replay records kept for that window.
func CheckMaxValidity(a Authorization, now time.Time, max time.Duration) error {
	limit := big.NewInt(now.Add(max + ValiditySkew).Unix())
	if a.ValidBefore == nil || a.ValidBefore.Cmp(limit) > 0 {
		return fmt.Errorf("%w: validBefore %v is more than %s (+%s clock skew) from now (%d): sign one valid for at most maxTimeoutSeconds",
			ErrValidTooLong, a.ValidBefore, max, ValiditySkew, now.Unix())
	}
	return nil
}
