package token_test

import (
	"context"
	"crypto/ecdsa"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/core/types"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/obolstack/obol/internal/devchain"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/token"
)

// These tests run ObolUSD on the real development chain and check the
// behaviour callers rely on: EIP-3009 semantics and USDC's revert phrases.

type env struct {
	t     *testing.T
	ctx   context.Context
	chain *devchain.Chain
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	c, err := devchain.Start(ctx, devchain.Config{Buyers: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &env{t: t, ctx: ctx, chain: c}
}

// call simulates data from `from` and returns the revert reason ("" = success).
func (e *env) call(from common.Address, data []byte) string {
	e.t.Helper()
	_, err := e.chain.Client().CallContract(e.ctx, ethereum.CallMsg{From: from, To: &e.chain.Token.Address, Data: data}, nil)
	if err != nil && !token.IsRevert(err) {
		e.t.Fatalf("eth_call: %v", err)
	}
	return token.RevertReason(err)
}

// send sends data from key and requires a successful receipt.
func (e *env) send(key *ecdsa.PrivateKey, data []byte) *types.Receipt {
	e.t.Helper()
	tx, err := token.Transact(e.ctx, e.chain.Client(), key, big.NewInt(e.chain.ChainID), &e.chain.Token.Address, data)
	if err != nil {
		e.t.Fatalf("transact: %v (reason %q)", err, token.RevertReason(err))
	}
	r, err := token.WaitMined(e.ctx, e.chain.Client(), tx.Hash(), 0)
	if err != nil {
		e.t.Fatal(err)
	}
	if r.Status != types.ReceiptStatusSuccessful {
		e.t.Fatalf("transaction %s reverted", tx.Hash())
	}
	return r
}

func (e *env) balance(a common.Address) *big.Int {
	e.t.Helper()
	b, err := e.chain.BalanceOf(e.ctx, a)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

func (e *env) auth(from devchain.Account, to common.Address, value int64) evm.Authorization {
	e.t.Helper()
	a, err := evm.NewAuthorization(from.Address, to, big.NewInt(value), time.Now(), 10*time.Minute)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

func wantReason(t *testing.T, what, got, want string) {
	t.Helper()
	if !strings.Contains(got, want) {
		t.Errorf("%s: revert reason %q, want it to contain %q", what, got, want)
	}
}

// signTyped signs an EIP-712 struct hash in the chain's token domain.
func signTyped(t *testing.T, key *ecdsa.PrivateKey, d evm.Domain, structHash []byte) []byte {
	t.Helper()
	sep := d.Separator()
	digest := crypto.Keccak256([]byte{0x19, 0x01}, sep[:], structHash)
	sig, err := crypto.Sign(digest, key)
	if err != nil {
		t.Fatal(err)
	}
	sig[64] += 27
	return sig
}

func word(b []byte) []byte { return common.LeftPadBytes(b, 32) }

func TestTransferWithAuthorizationChecks(t *testing.T) {
	e := newEnv(t)
	c := e.chain
	buyer, fac := c.Buyers[0], c.Facilitator
	d := c.Domain()

	// Not yet valid: validAfter in the future.
	a := e.auth(buyer, c.Seller.Address, 10)
	a.ValidAfter = big.NewInt(time.Now().Add(time.Hour).Unix())
	sig, _ := evm.Sign(buyer.Key, d, a)
	data, _ := token.PackTransferWithAuthorization(a, sig)
	wantReason(t, "validAfter in the future", e.call(fac.Address, data), token.ReasonNotYetValid)

	// Expired: validBefore in the past.
	a = e.auth(buyer, c.Seller.Address, 10)
	a.ValidBefore = big.NewInt(time.Now().Add(-time.Minute).Unix())
	sig, _ = evm.Sign(buyer.Key, d, a)
	data, _ = token.PackTransferWithAuthorization(a, sig)
	wantReason(t, "validBefore in the past", e.call(fac.Address, data), token.ReasonExpired)

	// Signed by someone else than from.
	a = e.auth(buyer, c.Seller.Address, 10)
	sig, _ = evm.Sign(c.Buyers[1].Key, d, a)
	data, _ = token.PackTransferWithAuthorization(a, sig)
	wantReason(t, "wrong signer", e.call(fac.Address, data), token.ReasonInvalidSignature)

	// A field changed after signing.
	a = e.auth(buyer, c.Seller.Address, 10)
	sig, _ = evm.Sign(buyer.Key, d, a)
	tampered := a
	tampered.Value = big.NewInt(11)
	data, _ = token.PackTransferWithAuthorization(tampered, sig)
	wantReason(t, "tampered value", e.call(fac.Address, data), token.ReasonInvalidSignature)

	// The malleable twin (n - s, flipped v) of a valid signature is rejected.
	n := crypto.S256().Params().N
	s := new(big.Int).SetBytes(sig[32:64])
	twin := append([]byte(nil), sig...)
	copy(twin[32:64], word(new(big.Int).Sub(n, s).Bytes()))
	twin[64] = 55 - twin[64] // 27 <-> 28
	if signer, err := evm.Recover(d, a, twin); err != nil || signer != buyer.Address {
		t.Fatalf("the twin should recover to the buyer off-chain: %s, %v", signer, err)
	}
	data, err := token.PackTransferWithAuthorization(a, twin)
	if err != nil {
		t.Fatal(err)
	}
	wantReason(t, "high-s signature", e.call(fac.Address, data), token.ReasonInvalidSignature)

	// v other than 27/28 (packed by hand: PackTransferWithAuthorization refuses it).
	var r, ss [32]byte
	copy(r[:], sig[:32])
	copy(ss[:], sig[32:64])
	data, err = token.Pack(token.MethodTransferWithAuthorization, a.From, a.To, a.Value, a.ValidAfter, a.ValidBefore, a.Nonce, uint8(29), r, ss)
	if err != nil {
		t.Fatal(err)
	}
	wantReason(t, "v=29", e.call(fac.Address, data), token.ReasonInvalidSignature)

	// The untouched authorization still works, exactly once.
	data, _ = token.PackTransferWithAuthorization(a, sig)
	if reason := e.call(fac.Address, data); reason != "" {
		t.Fatalf("valid authorization reverts in simulation: %q", reason)
	}
	e.send(fac.Key, data)
	if got := e.balance(c.Seller.Address); got.Int64() != 10 {
		t.Errorf("seller balance %s, want 10", got)
	}
	wantReason(t, "replay", e.call(fac.Address, data), token.ReasonAuthorizationUsed)

	// More than the balance.
	a = e.auth(c.Buyers[1], c.Seller.Address, 0)
	a.Value = new(big.Int).Add(e.balance(c.Buyers[1].Address), big.NewInt(1))
	sig, _ = evm.Sign(c.Buyers[1].Key, d, a)
	data, _ = token.PackTransferWithAuthorization(a, sig)
	wantReason(t, "overdraft", e.call(fac.Address, data), token.ReasonInsufficientBalance)
}

func TestReceiveAndCancelAuthorization(t *testing.T) {
	e := newEnv(t)
	c := e.chain
	buyer, seller := c.Buyers[0], c.Seller
	d := c.Domain()
	abi := token.ABI()

	// receiveWithAuthorization signs a different type and must be sent by the payee.
	a := e.auth(buyer, seller.Address, 25)
	receiveType := crypto.Keccak256([]byte("ReceiveWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"))
	sh := crypto.Keccak256(receiveType, word(a.From[:]), word(a.To[:]), word(a.Value.Bytes()), word(a.ValidAfter.Bytes()), word(a.ValidBefore.Bytes()), a.Nonce[:])
	sig := signTyped(t, buyer.Key, d, sh)
	data, err := token.PackReceiveWithAuthorization(a, sig)
	if err != nil {
		t.Fatal(err)
	}
	wantReason(t, "receive sent by the facilitator", e.call(c.Facilitator.Address, data), token.ReasonCallerNotPayee)
	// A TransferWithAuthorization signature does not work for receive.
	tsig, _ := evm.Sign(buyer.Key, d, a)
	tdata, _ := token.PackReceiveWithAuthorization(a, tsig)
	wantReason(t, "receive with a transfer signature", e.call(seller.Address, tdata), token.ReasonInvalidSignature)
	e.send(seller.Key, data)
	if got := e.balance(seller.Address); got.Int64() != 25 {
		t.Errorf("seller balance %s after receive, want 25", got)
	}

	// cancelAuthorization burns an unused nonce; the authorization then fails as used.
	b := e.auth(buyer, seller.Address, 5)
	bsig, _ := evm.Sign(buyer.Key, d, b)
	cancelType := crypto.Keccak256([]byte("CancelAuthorization(address authorizer,bytes32 nonce)"))
	csig := signTyped(t, buyer.Key, d, crypto.Keccak256(cancelType, word(b.From[:]), b.Nonce[:]))
	cdata, err := token.PackCancelAuthorization(b.From, b.Nonce, csig)
	if err != nil {
		t.Fatal(err)
	}
	r := e.send(c.Facilitator.Key, cdata)
	if len(r.Logs) != 1 || r.Logs[0].Topics[0] != abi.Events["AuthorizationCanceled"].ID {
		t.Errorf("cancel logs %v, want one AuthorizationCanceled", r.Logs)
	}
	sdata, _ := token.PackAuthorizationState(b.From, b.Nonce)
	out, err := c.Client().CallContract(e.ctx, ethereum.CallMsg{To: &c.Token.Address, Data: sdata}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if used, _ := token.UnpackBool(out); !used {
		t.Error("authorizationState false after cancel")
	}
	bdata, _ := token.PackTransferWithAuthorization(b, bsig)
	wantReason(t, "transfer after cancel", e.call(c.Facilitator.Address, bdata), token.ReasonAuthorizationUsed)
	wantReason(t, "second cancel", e.call(c.Facilitator.Address, cdata), token.ReasonAuthorizationUsed)
}

func TestERC20Basics(t *testing.T) {
	e := newEnv(t)
	c := e.chain
	b1, b2 := c.Buyers[0], c.Buyers[1]

	data, _ := token.PackTransfer(b2.Address, big.NewInt(100))
	e.send(b1.Key, data)
	if got := e.balance(b2.Address); got.Cmp(new(big.Int).Add(devchain.DefaultMintPerBuyer(), big.NewInt(100))) != 0 {
		t.Errorf("b2 balance %s after transfer", got)
	}
	data, _ = token.PackTransfer(b2.Address, new(big.Int).Add(e.balance(b1.Address), big.NewInt(1)))
	wantReason(t, "transfer more than balance", e.call(b1.Address, data), token.ReasonInsufficientBalance)

	approve, _ := token.Pack("approve", c.Seller.Address, big.NewInt(50))
	e.send(b1.Key, approve)
	pull, _ := token.Pack("transferFrom", b1.Address, c.Seller.Address, big.NewInt(51))
	wantReason(t, "transferFrom over allowance", e.call(c.Seller.Address, pull), "exceeds allowance")
	pull, _ = token.Pack("transferFrom", b1.Address, c.Seller.Address, big.NewInt(50))
	e.send(c.Seller.Key, pull)
	if got := e.balance(c.Seller.Address); got.Int64() != 50 {
		t.Errorf("seller balance %s after transferFrom, want 50", got)
	}
}
