package wait

import (
	"bytes"
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// Goroutines is the set of goroutines running at one moment, by ID.
type Goroutines map[uint64]bool

// RunningGoroutines returns the goroutines running now. A leak check takes
// it before the code under test runs and later asks NoNewGoroutines: the
// goroutines already there (including ones still on their way out) never
// count, so no pause is needed for them to settle first.
func RunningGoroutines() Goroutines {
	ids := Goroutines{}
	for _, g := range goroutineStacks() {
		ids[g.id] = true
	}
	return ids
}

// NoNewGoroutines waits until at most allow goroutines run that were not in
// before, and fails the test with their stacks when timeout passes first.
// Goroutines leave asynchronously after a Close returns and the runtime has
// no event for it, so this polls.
func NoNewGoroutines(tb testing.TB, timeout time.Duration, before Goroutines, allow int) {
	tb.Helper()
	var extra []goroutine
	err := Poll(timeout, func() error {
		extra = extra[:0]
		for _, g := range goroutineStacks() {
			if !before[g.id] {
				extra = append(extra, g)
			}
		}
		if len(extra) > allow {
			return fmt.Errorf("%d goroutines that were not running before", len(extra))
		}
		return nil
	})
	if err != nil {
		var b bytes.Buffer
		for _, g := range extra {
			b.Write(g.stack)
			b.WriteString("\n\n")
		}
		tb.Errorf("goroutines leaked: %d new after %s (allowed %d):\n%s", len(extra), timeout, allow, b.Bytes())
	}
}

type goroutine struct {
	id    uint64
	stack []byte
}

// goroutineStacks parses runtime.Stack's dump: blocks separated by a blank
// line, each starting "goroutine ID [state]:". The calling goroutine is
// included.
func goroutineStacks() []goroutine {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var gs []goroutine
	for _, block := range bytes.Split(buf, []byte("\n\n")) {
		rest, ok := bytes.CutPrefix(block, []byte("goroutine "))
		if !ok {
			continue
		}
		idText, _, _ := bytes.Cut(rest, []byte(" "))
		id, err := strconv.ParseUint(string(idText), 10, 64)
		if err != nil {
			continue
		}
		gs = append(gs, goroutine{id: id, stack: block})
	}
	return gs
}
