package x402

import "context"

// HeaderIdempotencyKey carries a settle request's idempotency key: a caller
// that asks again about the same payment (because it lost the answer) sends
// the same key and gets the first request's outcome; a settle of the same
// authorization under another key is a second use and is refused.
const HeaderIdempotencyKey = "Idempotency-Key"

type idempotencyKeyCtx struct{}

// WithIdempotencyKey returns a context whose facilitator calls carry key.
func WithIdempotencyKey(ctx context.Context, key string) context.Context {
	return context.WithValue(ctx, idempotencyKeyCtx{}, key)
}

// IdempotencyKey is the key set by WithIdempotencyKey ("" when none).
func IdempotencyKey(ctx context.Context) string {
	k, _ := ctx.Value(idempotencyKeyCtx{}).(string)
	return k
}
