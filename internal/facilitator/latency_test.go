package facilitator

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/obolstack/obol/internal/x402"
)

// Settlement latency on a chain that seals at once follows the chain, not
// a fixed poll interval: with the default ReceiptPoll (100 ms) most
// settlements took 100–250 ms before the polls backed off from 5 ms.
func TestSettlementLatencyFollowsChain(t *testing.T) {
	needChain(t)
	env := newChainEnv(t, dev.RPCURL, func(c *Config) { c.ReceiptPoll = 0 }) // the default
	ctx := context.Background()
	const n = 8
	var took []time.Duration
	for i := 0; i < n; i++ {
		vr := signed(t, x402.Version2, dev.Buyers[i%len(dev.Buyers)].Key, devRequirement(), nil)
		start := time.Now()
		s, err := env.client.Settle(ctx, vr)
		if err != nil || !s.Success {
			t.Fatalf("settle %d: %v %+v", i, err, s)
		}
		took = append(took, time.Since(start))
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	t.Logf("%d sequential settlements: min %v, median %v, max %v", n, took[0].Round(time.Millisecond), took[n/2].Round(time.Millisecond), took[n-1].Round(time.Millisecond))
}
