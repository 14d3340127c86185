// Command obol sells and buys API access with x402 on a Kubernetes stack.
package main

import (
	"os"

	"github.com/obolstack/obol/internal/cli/root"
)

func main() {
	ctx, stop := root.SignalContext()
	code := root.MainContext(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
