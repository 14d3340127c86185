package facilitator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/ethereum/go-ethereum/common"

	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/token"
	"github.com/obolstack/obol/internal/x402"
)

// outcome is the answer of a verify or settle: reason "" means valid /
// settled. status is the HTTP status (0 = 200).
type outcome struct {
	status  int
	reason  string
	message string
	payer   string
	network string // settle: the requirement's network as sent
	tx      string // settle: the transaction hash on success
}

func (o *outcome) statusCode() int {
	if o.status == 0 {
		return http.StatusOK
	}
	return o.status
}

func badRequest(reason, msg string) *outcome {
	return &outcome{status: http.StatusBadRequest, reason: reason, message: msg}
}

func invalid(reason, format string, args ...any) *outcome {
	return &outcome{reason: reason, message: fmt.Sprintf(format, args...)}
}

// reasonForField picks the reason code for a malformed field of the body.
func reasonForField(field string) string {
	switch {
	case field == "x402Version":
		return x402.ReasonInvalidX402Version
	case strings.HasPrefix(field, "paymentRequirements"):
		return x402.ReasonInvalidPaymentRequirements
	}
	return x402.ReasonInvalidPayload
}

// checked is a payment that passed the checks that need no chain access.
type checked struct {
	payment *x402.Payment
	req     x402.Requirement
	auth    evm.Authorization
	sig     []byte
	token   evm.Token
	call    []byte // transferWithAuthorization calldata
	payer   string
}

// key identifies an authorization for the settled/in-flight ledger.
func (c *checked) key() authKey {
	return authKey{token: c.token.Address, from: c.auth.From, nonce: c.auth.Nonce}
}

// inspect runs every check that needs no chain access, in the order of the
// x402 reference: scheme and network, payload, chain, recipient, value,
// validity window, EIP-712 domain, asset, signature.
func (s *Server) inspect(vr x402.VerifyRequest) (*checked, *outcome) {
	return s.inspectWith(vr, true)
}

// checkWindow is check 6: the authorization's validity window, now.
func (s *Server) checkWindow(c *checked) *outcome {
	if err := evm.CheckWindow(c.auth, s.now(), MinValidity); err != nil {
		if errors.Is(err, evm.ErrNotYetValid) {
			return invalid(x402.ReasonValidAfter, "%v", err)
		}
		return invalid(x402.ReasonValidBefore, "%v", err)
	}
	if c.req.MaxTimeoutSeconds > 0 {
		if err := evm.CheckMaxValidity(c.auth, s.now(), time.Duration(c.req.MaxTimeoutSeconds)*time.Second); err != nil {
			return invalid(x402.ReasonValidBefore, "%v", err)
		}
	}
	return nil
}

// inspectWith runs the checks of inspect; window false leaves out the
// validity window, which depends on when it is asked: a settle asked again
// after validBefore must still learn what happened to the payment.
func (s *Server) inspectWith(vr x402.VerifyRequest, window bool) (*checked, *outcome) {
	p, req, err := x402.ParseVerifyRequest(vr)
	if err != nil {
		reason := x402.ReasonInvalidPayload
		var de *x402.DecodeError
		if errors.As(err, &de) {
			switch {
			case de.Header == "" && de.Field == "x402Version":
				reason = x402.ReasonInvalidX402Version
			case de.Header == "" && de.Field == "paymentRequirements",
				de.Header == "paymentRequirements":
				reason = x402.ReasonInvalidPaymentRequirements
			}
		}
		return nil, badRequest(reason, err.Error())
	}
	c := &checked{payment: p, req: req, payer: payerOf(p)}
	fail := func(o *outcome) (*checked, *outcome) {
		o.payer = c.payer
		return nil, o
	}

	// 1. scheme exact, network equal to the requirement's.
	if p.Scheme != x402.SchemeExact {
		return fail(invalid(x402.ReasonInvalidScheme, "payment scheme %q is not supported: this facilitator settles %q", p.Scheme, x402.SchemeExact))
	}
	if req.Scheme != x402.SchemeExact {
		return fail(invalid(x402.ReasonInvalidScheme, "paymentRequirements.scheme %q is not supported: this facilitator settles %q", req.Scheme, x402.SchemeExact))
	}
	reqNet, err := s.reg.Normalize(req.Network)
	if err != nil {
		return fail(invalid(x402.ReasonInvalidNetwork, "paymentRequirements.network: %v", err))
	}
	payNet, err := s.reg.Normalize(p.Network)
	if err != nil {
		return fail(invalid(x402.ReasonInvalidNetwork, "payment network: %v", err))
	}
	if payNet != reqNet {
		return fail(invalid(x402.ReasonInvalidNetwork, "the payment is for network %s (%s) but the requirement is for %s (%s)", p.Network, payNet, req.Network, reqNet))
	}

	// 2. payload parses, signature present.
	if p.Exact == nil {
		return fail(badRequest(x402.ReasonInvalidPayload, "paymentPayload.payload: not an exact EIP-3009 payload"))
	}
	auth, err := evm.AuthorizationFromWire(p.Exact.Authorization)
	if err != nil {
		return fail(badRequest(x402.ReasonInvalidPayload, "malformed paymentPayload: payload."+err.Error()))
	}
	c.auth = auth
	c.payer = auth.From.Hex()
	sig, err := evm.DecodeSignature(p.Exact.Signature)
	if err != nil {
		return fail(badRequest(x402.ReasonInvalidPayload, "malformed paymentPayload: payload."+err.Error()))
	}
	if len(sig) == 0 {
		return fail(badRequest(x402.ReasonInvalidPayload, "malformed paymentPayload: payload.signature is empty"))
	}
	c.sig = sig

	// 3. the chain is known and is this facilitator's.
	if reqNet != s.chain.CAIP2 {
		return fail(invalid(x402.ReasonInvalidNetwork, "this facilitator settles on %s (%s) only, not on %s", s.chain.Name, s.chain.CAIP2, req.Network))
	}

	// 4. recipient.
	if !common.IsHexAddress(req.PayTo) {
		return fail(badRequest(x402.ReasonInvalidPaymentRequirements, fmt.Sprintf("malformed paymentRequirements: field payTo %q: want a 0x-prefixed 20-byte hex address", req.PayTo)))
	}
	if payTo := common.HexToAddress(req.PayTo); auth.To != payTo {
		return fail(invalid(x402.ReasonRecipientMismatch, "authorization.to %s is not the requirement's payTo %s", auth.To.Hex(), payTo.Hex()))
	}

	// 5. value exactly the required amount.
	amount, err := evm.ParseAtomic(req.Amount)
	if err != nil {
		field := "amount"
		if p.Version == x402.Version1 {
			field = "maxAmountRequired"
		}
		return fail(badRequest(x402.ReasonInvalidPaymentRequirements, fmt.Sprintf("malformed paymentRequirements: field %s %q: want a non-negative integer of atomic units", field, req.Amount)))
	}
	if auth.Value.Cmp(amount) != 0 {
		return fail(invalid(x402.ReasonValueMismatch, "authorization.value %s is not the required amount %s (atomic units)", auth.Value, amount))
	}

	// 6. validity window.
	if window {
		if o := s.checkWindow(c); o != nil {
			return fail(o)
		}
	}

	// 7. EIP-712 domain from the requirement's extra.
	if req.Extra.Name == "" || req.Extra.Version == "" {
		return fail(invalid(x402.ReasonMissingEIP712Domain, "paymentRequirements.extra must carry the token's EIP-712 domain name and version (got name %q, version %q)", req.Extra.Name, req.Extra.Version))
	}
	if m := req.Extra.AssetTransferMethod; m != "" && m != x402.TransferMethodEIP3009 {
		return fail(invalid(x402.ReasonInvalidPaymentRequirements, "paymentRequirements.extra.assetTransferMethod %q is not supported: this facilitator settles %q", m, x402.TransferMethodEIP3009))
	}

	// 8. asset.
	if !common.IsHexAddress(req.Asset) {
		return fail(badRequest(x402.ReasonInvalidPaymentRequirements, fmt.Sprintf("malformed paymentRequirements: field asset %q: want the token's 0x-prefixed contract address", req.Asset)))
	}
	asset := common.HexToAddress(req.Asset)
	if p.V2 != nil && p.V2.Accepted.Asset != "" && !strings.EqualFold(p.V2.Accepted.Asset, req.Asset) {
		return fail(invalid(x402.ReasonInvalidPayload, "the payment's accepted.asset %s is not the requirement's asset %s", p.V2.Accepted.Asset, asset.Hex()))
	}
	tok, err := s.reg.Token(s.chain.CAIP2, asset.Hex())
	if err != nil || tok.Address != asset {
		return fail(invalid(x402.ReasonInvalidPaymentRequirements, "asset %s is not a token this facilitator settles on %s: %v", asset.Hex(), s.chain.Name, err))
	}
	c.token = tok

	// 9. signature: a 65-byte EOA signature that recovers to from.
	if len(sig) > 65 {
		return fail(invalid(x402.ReasonUnsupportedSignatureScheme, "signature is %d bytes: smart-wallet (EIP-1271/EIP-6492) signatures are not supported, sign with an EOA key (65 bytes)", len(sig)))
	}
	if errors.Is(evm.CheckCanonical(sig), evm.ErrHighS) {
		return fail(invalid(x402.ReasonInvalidSignature, "%v", evm.ErrHighS))
	}
	domain := evm.Domain{Name: req.Extra.Name, Version: req.Extra.Version, ChainID: s.chain.ChainIDBig(), VerifyingContract: asset}
	signer, err := evm.Recover(domain, auth, sig)
	if err != nil {
		return fail(invalid(x402.ReasonInvalidSignature, "%v", err))
	}
	if signer != auth.From {
		return fail(invalid(x402.ReasonInvalidSignature, "signature recovers to %s, not authorization.from %s: it was not signed by the payer over the EIP-712 domain (name %q, version %q, chainId %d, verifyingContract %s)",
			signer.Hex(), auth.From.Hex(), domain.Name, domain.Version, s.chain.ChainID, asset.Hex()))
	}
	call, err := token.PackTransferWithAuthorization(auth, sig)
	if err != nil {
		return fail(invalid(x402.ReasonInvalidPayload, "%v", err))
	}
	c.call = call
	return c, nil
}

// payerOf returns authorization.from of the payment when it can be read,
// also from a payload of another scheme that has the same shape.
func payerOf(p *x402.Payment) string {
	exact := p.Exact
	if exact == nil {
		var raw json.RawMessage
		switch {
		case p.V1 != nil:
			raw = p.V1.Payload
		case p.V2 != nil:
			raw = p.V2.Payload
		}
		var e x402.ExactEVMPayload
		if json.Unmarshal(raw, &e) != nil {
			return ""
		}
		exact = &e
	}
	if !common.IsHexAddress(exact.Authorization.From) {
		return ""
	}
	return common.HexToAddress(exact.Authorization.From).Hex()
}

// verify answers POST /verify.
func (s *Server) verify(ctx context.Context, vr x402.VerifyRequest) *outcome {
	c, o := s.inspect(vr)
	if o != nil {
		return o
	}
	if tx, ok := s.ledger.sent(c.key()); ok {
		return &outcome{reason: x402.ReasonNonceAlreadyUsed, payer: c.payer,
			message: fmt.Sprintf("authorization 0x%x of %s was already settled by this facilitator (transaction %s)", c.auth.Nonce, c.auth.From.Hex(), tx.Hex())}
	}
	if o := s.simulate(ctx, c, x402.ReasonUnexpectedVerifyError); o != nil {
		return o
	}
	return &outcome{payer: c.payer}
}

// simulate checks that the token contract exists and runs
// transferWithAuthorization as an eth_call from the fee payer. A revert is
// diagnosed into a reason; an RPC failure answers 500 with unexpected.
func (s *Server) simulate(ctx context.Context, c *checked, unexpected string) *outcome {
	if err := s.checkCode(ctx, c.token.Address); err != nil {
		return s.rpcFailure(c, unexpected, err)
	}
	_, err := s.node.call(ctx, s.feePayer, c.token.Address, c.call)
	if err == nil {
		return nil
	}
	if !isRevertErr(err) {
		return s.rpcFailure(c, unexpected, err)
	}
	return s.diagnose(ctx, c, token.RevertReason(err), unexpected, "simulation of transferWithAuthorization reverted")
}

// diagnose explains a failed (simulated or mined) transfer: a used nonce, a
// short balance, else the revert reason.
func (s *Server) diagnose(ctx context.Context, c *checked, revert, unexpected, what string) *outcome {
	data, err := token.PackAuthorizationState(c.auth.From, c.auth.Nonce)
	if err != nil {
		return s.rpcFailure(c, unexpected, err)
	}
	out, err := s.node.call(ctx, s.feePayer, c.token.Address, data)
	if err != nil {
		return s.rpcFailure(c, unexpected, fmt.Errorf("authorizationState: %w", err))
	}
	used, err := token.UnpackBool(out)
	if err != nil {
		return s.rpcFailure(c, unexpected, fmt.Errorf("authorizationState of %s: %w", c.token.Address.Hex(), err))
	}
	if used {
		return &outcome{reason: x402.ReasonNonceAlreadyUsed, payer: c.payer,
			message: fmt.Sprintf("authorization nonce 0x%x of %s is already used or canceled on chain", c.auth.Nonce, c.auth.From.Hex())}
	}
	if data, err = token.PackBalanceOf(c.auth.From); err != nil {
		return s.rpcFailure(c, unexpected, err)
	}
	out, err = s.node.call(ctx, s.feePayer, c.token.Address, data)
	if err != nil {
		return s.rpcFailure(c, unexpected, fmt.Errorf("balanceOf: %w", err))
	}
	bal, err := token.UnpackUint(out)
	if err != nil {
		return s.rpcFailure(c, unexpected, fmt.Errorf("balanceOf at %s: %w", c.token.Address.Hex(), err))
	}
	if bal.Cmp(c.auth.Value) < 0 {
		return &outcome{reason: x402.ReasonInsufficientFunds, payer: c.payer,
			message: fmt.Sprintf("%s holds %s %s, less than the %s required", c.auth.From.Hex(), evm.FormatAmount(bal, c.token.Decimals), c.token.Symbol, evm.FormatAmount(c.auth.Value, c.token.Decimals))}
	}
	if r := reasonFromRevert(revert); r != "" {
		return &outcome{reason: r, payer: c.payer, message: what + ": " + revert}
	}
	msg := what
	if revert != "" {
		msg += ": " + revert
	} else {
		msg += " without a reason"
	}
	return &outcome{reason: x402.ReasonInvalidTransactionState, payer: c.payer, message: msg}
}

// reasonFromRevert maps the revert strings of EIP-3009 tokens to reasons.
func reasonFromRevert(revert string) string {
	r := strings.ToLower(revert)
	switch {
	case strings.Contains(r, token.ReasonAuthorizationUsed):
		return x402.ReasonNonceAlreadyUsed
	case strings.Contains(r, "exceeds balance"):
		return x402.ReasonInsufficientFunds
	}
	return ""
}

func (s *Server) rpcFailure(c *checked, reason string, err error) *outcome {
	return &outcome{status: http.StatusInternalServerError, reason: reason, payer: c.payer,
		message: "facilitator chain access failed: " + err.Error()}
}

// checkCode makes sure a contract is deployed at the token's address (an
// eth_call to an empty address "succeeds" and would settle nothing).
func (s *Server) checkCode(ctx context.Context, addr common.Address) error {
	s.codeMu.Lock()
	ok := s.hasCode[addr]
	s.codeMu.Unlock()
	if ok {
		return nil
	}
	code, err := s.node.codeAt(ctx, addr)
	if err != nil {
		return err
	}
	if len(code) == 0 {
		return fmt.Errorf("no contract is deployed at the token address %s on %s: the registered token is wrong for this node", addr.Hex(), s.chain.Name)
	}
	s.codeMu.Lock()
	s.hasCode[addr] = true
	s.codeMu.Unlock()
	return nil
}
