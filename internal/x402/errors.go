package x402

import (
	"errors"
	"fmt"
)

// ErrNoPayment means the request carried no payment header.
var ErrNoPayment = errors.New("no payment header")

// ErrHeaderTooLarge means an encoded header exceeded MaxHeaderBytes.
var ErrHeaderTooLarge = fmt.Errorf("header value larger than %d bytes", MaxHeaderBytes)

// DecodeError reports a header or body that could not be decoded, naming
// the header and, where known, the field that was wrong.
type DecodeError struct {
	Header string // e.g. PAYMENT-SIGNATURE; "" for a body
	Field  string // JSON path of the bad field, e.g. "payload.authorization.nonce"
	Err    error
}

func (e *DecodeError) Error() string {
	where := e.Header
	if where == "" {
		where = "payload"
	}
	if e.Field != "" {
		return fmt.Sprintf("malformed %s: field %s: %v", where, e.Field, e.Err)
	}
	return fmt.Sprintf("malformed %s: %v", where, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

func fieldErr(header, field, format string, args ...any) *DecodeError {
	return &DecodeError{Header: header, Field: field, Err: fmt.Errorf(format, args...)}
}
