package facilitator

import (
	"testing"
	"time"
)

// Receipt polls start a few milliseconds apart and back off to the
// configured interval (a fixed 100 ms made most dev-chain settlements take
// 100–250 ms though the chain seals at once).
func TestReceiptBackoff(t *testing.T) {
	t.Parallel()
	max := 100 * time.Millisecond
	want := []time.Duration{5, 10, 20, 40, 80, 100, 100}
	for i, w := range want {
		if got := receiptBackoff(i, max); got != w*time.Millisecond {
			t.Errorf("wait after poll %d = %v, want %v", i, got, w*time.Millisecond)
		}
	}
	if got := receiptBackoff(3, 2*time.Millisecond); got != 2*time.Millisecond {
		t.Errorf("a ReceiptPoll below the first wait caps it: got %v", got)
	}
}
