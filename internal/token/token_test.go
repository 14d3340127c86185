package token

import (
	"bytes"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/accounts/abi"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/obolstack/obol/internal/evm"
)

func TestEmbeddedABIHasEIP3009AndERC20(t *testing.T) {
	a := ABI()
	want := map[string]string{
		"transferWithAuthorization": "transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)",
		"receiveWithAuthorization":  "receiveWithAuthorization(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)",
		"cancelAuthorization":       "cancelAuthorization(address,bytes32,uint8,bytes32,bytes32)",
		"authorizationState":        "authorizationState(address,bytes32)",
		"DOMAIN_SEPARATOR":          "DOMAIN_SEPARATOR()",
		"name":                      "name()",
		"symbol":                    "symbol()",
		"decimals":                  "decimals()",
		"version":                   "version()",
		"totalSupply":               "totalSupply()",
		"balanceOf":                 "balanceOf(address)",
		"transfer":                  "transfer(address,uint256)",
		"approve":                   "approve(address,uint256)",
		"allowance":                 "allowance(address,address)",
		"transferFrom":              "transferFrom(address,address,uint256)",
		"mint":                      "mint(address,uint256)",
	}
	for name, sig := range want {
		m, ok := a.Methods[name]
		if !ok {
			t.Errorf("ABI lacks method %s", name)
			continue
		}
		if m.Sig != sig {
			t.Errorf("method %s: signature %s, want %s", name, m.Sig, sig)
		}
	}
	// The well-known USDC selectors.
	if got := fmt.Sprintf("%x", a.Methods["transferWithAuthorization"].ID); got != "e3ee160e" {
		t.Errorf("transferWithAuthorization selector %s, want e3ee160e", got)
	}
	if got := fmt.Sprintf("%x", a.Methods["authorizationState"].ID); got != "e94a0102" {
		t.Errorf("authorizationState selector %s, want e94a0102", got)
	}
	for _, ev := range []string{"Transfer", "Approval", "AuthorizationUsed", "AuthorizationCanceled"} {
		if _, ok := a.Events[ev]; !ok {
			t.Errorf("ABI lacks event %s", ev)
		}
	}
	if len(a.Constructor.Inputs) != 4 {
		t.Errorf("constructor has %d inputs, want 4 (name, symbol, version, decimals)", len(a.Constructor.Inputs))
	}
	if len(Bytecode()) < 1000 {
		t.Errorf("bytecode only %d bytes", len(Bytecode()))
	}
	b := Bytecode()
	b[0] ^= 0xff
	if bytes.Equal(b, Bytecode()) {
		t.Error("Bytecode returns shared memory")
	}
}

func testAuthorization(t *testing.T) (evm.Authorization, []byte) {
	t.Helper()
	key, err := crypto.HexToECDSA(strings.Repeat("11", 32))
	if err != nil {
		t.Fatal(err)
	}
	a := evm.Authorization{
		From:        crypto.PubkeyToAddress(key.PublicKey),
		To:          common.HexToAddress("0x00000000000000000000000000000000000000aa"),
		Value:       big.NewInt(1000),
		ValidAfter:  big.NewInt(1),
		ValidBefore: big.NewInt(2_000_000_000),
	}
	a.Nonce[31] = 7
	d := evm.Domain{Name: "USDC", Version: "2", ChainID: big.NewInt(1337), VerifyingContract: common.HexToAddress("0x01")}
	sig, err := evm.Sign(key, d, a)
	if err != nil {
		t.Fatal(err)
	}
	return a, sig
}

func TestPackTransferWithAuthorizationRoundTrip(t *testing.T) {
	a, sig := testAuthorization(t)
	for _, method := range []string{MethodTransferWithAuthorization, MethodReceiveWithAuthorization} {
		pack := PackTransferWithAuthorization
		if method == MethodReceiveWithAuthorization {
			pack = PackReceiveWithAuthorization
		}
		data, err := pack(a, sig)
		if err != nil {
			t.Fatal(err)
		}
		m := ABI().Methods[method]
		if !bytes.Equal(data[:4], m.ID) {
			t.Fatalf("%s: selector %x, want %x", method, data[:4], m.ID)
		}
		vals, err := m.Inputs.Unpack(data[4:])
		if err != nil {
			t.Fatal(err)
		}
		if vals[0].(common.Address) != a.From || vals[1].(common.Address) != a.To ||
			vals[2].(*big.Int).Cmp(a.Value) != 0 || vals[3].(*big.Int).Cmp(a.ValidAfter) != 0 ||
			vals[4].(*big.Int).Cmp(a.ValidBefore) != 0 || vals[5].([32]byte) != a.Nonce {
			t.Errorf("%s: fields do not round-trip: %v", method, vals)
		}
		r, s := vals[7].([32]byte), vals[8].([32]byte)
		if vals[6].(uint8) != sig[64] || !bytes.Equal(r[:], sig[:32]) || !bytes.Equal(s[:], sig[32:64]) {
			t.Errorf("%s: signature split wrong", method)
		}
	}
}

func TestPackRejectsBadInput(t *testing.T) {
	a, sig := testAuthorization(t)
	if _, err := PackTransferWithAuthorization(a, sig[:64]); !errors.Is(err, ErrSignature) {
		t.Errorf("64-byte signature: err %v, want ErrSignature", err)
	}
	bad := append([]byte(nil), sig...)
	bad[64] = 29
	if _, err := PackTransferWithAuthorization(a, bad); !errors.Is(err, ErrSignature) {
		t.Errorf("v=29: err %v, want ErrSignature", err)
	}
	low := append([]byte(nil), sig...)
	low[64] -= 27
	data, err := PackTransferWithAuthorization(a, low)
	if err != nil {
		t.Fatalf("v=0/1 should be normalized: %v", err)
	}
	if data[4+6*32+31] != sig[64] {
		t.Errorf("v not normalized to %d", sig[64])
	}
	noValue := a
	noValue.Value = nil
	if _, err := PackTransferWithAuthorization(noValue, sig); err == nil || !strings.Contains(err.Error(), "authorization.value") {
		t.Errorf("missing value: err %v", err)
	}
	neg := a
	neg.ValidBefore = big.NewInt(-1)
	if _, err := PackTransferWithAuthorization(neg, sig); err == nil || !strings.Contains(err.Error(), "validBefore") {
		t.Errorf("negative validBefore: err %v", err)
	}
	if _, err := PackMint(a.To, nil); err == nil {
		t.Error("mint of nil amount packed")
	}
}

func TestUnpack(t *testing.T) {
	one := common.LeftPadBytes([]byte{1}, 32)
	if v, err := UnpackBool(one); err != nil || !v {
		t.Errorf("UnpackBool(1) = %v, %v", v, err)
	}
	if v, err := UnpackBool(make([]byte, 32)); err != nil || v {
		t.Errorf("UnpackBool(0) = %v, %v", v, err)
	}
	if _, err := UnpackBool(common.LeftPadBytes([]byte{2}, 32)); err == nil {
		t.Error("UnpackBool(2) accepted")
	}
	if _, err := UnpackBool(nil); err == nil || !strings.Contains(err.Error(), "empty return data") {
		t.Errorf("UnpackBool(nil): %v", err)
	}
	n, err := UnpackUint(common.LeftPadBytes(big.NewInt(1_000_000_000).Bytes(), 32))
	if err != nil || n.Int64() != 1_000_000_000 {
		t.Errorf("UnpackUint = %v, %v", n, err)
	}
	if _, err := UnpackUint(make([]byte, 31)); err == nil {
		t.Error("UnpackUint(31 bytes) accepted")
	}
	str, _ := abi.NewType("string", "", nil)
	enc, _ := abi.Arguments{{Type: str}}.Pack("USD Coin")
	if s, err := UnpackString(enc); err != nil || s != "USD Coin" {
		t.Errorf("UnpackString = %q, %v", s, err)
	}
	data, err := PackAuthorizationState(common.HexToAddress("0x02"), [32]byte{1})
	if err != nil || len(data) != 4+64 {
		t.Errorf("PackAuthorizationState: %d bytes, %v", len(data), err)
	}
	data, err = PackBalanceOf(common.HexToAddress("0x02"))
	if err != nil || len(data) != 4+32 {
		t.Errorf("PackBalanceOf: %d bytes, %v", len(data), err)
	}
}

type dataErr struct {
	msg  string
	data any
}

func (e dataErr) Error() string  { return e.msg }
func (e dataErr) ErrorData() any { return e.data }

func revertData(t *testing.T, reason string) []byte {
	t.Helper()
	str, _ := abi.NewType("string", "", nil)
	enc, err := abi.Arguments{{Type: str}}.Pack(reason)
	if err != nil {
		t.Fatal(err)
	}
	return append(crypto.Keccak256([]byte("Error(string)"))[:4], enc...)
}

func TestRevertReason(t *testing.T) {
	reason := "ObolUSD: authorization is used or canceled"
	data := revertData(t, reason)
	hexData := fmt.Sprintf("0x%x", data)
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"data error with hex", dataErr{"execution reverted", hexData}, reason},
		{"wrapped data error", fmt.Errorf("estimate gas: %w", dataErr{"execution reverted", hexData}), reason},
		{"bytes data", dataErr{"execution reverted", data}, reason},
		{"message only", errors.New("execution reverted: ERC20: transfer amount exceeds balance"), "ERC20: transfer amount exceeds balance"},
		{"transport error", errors.New("dial tcp 127.0.0.1:1: connection refused"), ""},
		{"revert without reason", dataErr{"execution reverted", "0x"}, ""},
	}
	for _, c := range cases {
		if got := RevertReason(c.err); got != c.want {
			t.Errorf("%s: RevertReason = %q, want %q", c.name, got, c.want)
		}
	}
	if !strings.Contains(RevertReasonFromData(data), ReasonAuthorizationUsed) {
		t.Error("RevertReasonFromData lost the reason")
	}
	if RevertReasonFromData([]byte{1, 2}) != "" {
		t.Error("garbage data gave a reason")
	}
	if !IsRevert(dataErr{"execution reverted", "0x"}) || IsRevert(errors.New("connection refused")) {
		t.Error("IsRevert misclassifies")
	}
}
