// Package wait lets a test wait for a condition it cannot be told about
// (state in another process, an API server, a port, the runtime) without a
// fixed sleep: the condition is checked on a short ticker until it holds or
// a deadline passes, and the failure names what was awaited and the last
// reason it did not hold.
//
// Where an event exists (a channel, a callback, an informer), wait on it
// instead; this package is for the conditions that have none.
//
// It imports nothing beyond the standard library, so any test may use it.
package wait

import (
	"errors"
	"testing"
	"time"
)

const (
	firstInterval = 5 * time.Millisecond
	maxInterval   = 200 * time.Millisecond
)

// Poll calls cond until it returns nil or timeout passes, and returns nil or
// cond's last error. The first check is immediate; later ones follow at
// intervals that grow from 5 ms to 200 ms, so a fast condition is seen
// quickly and a slow one is not hammered.
func Poll(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	interval := firstInterval
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		<-t.C
		err := cond()
		if err == nil {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return err
		}
		t.Reset(min(interval, left))
		interval = min(2*interval, maxInterval)
	}
}

// For is Poll that fails the test when the deadline passes, naming what it
// waited for and cond's last error. cond runs on the test's goroutine, so it
// may itself call tb.Fatal (for instance when the process under test exits).
func For(tb testing.TB, timeout time.Duration, what string, cond func() error) {
	tb.Helper()
	if err := Poll(timeout, cond); err != nil {
		tb.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
	}
}

// Until is For with a condition that only says yes or no.
func Until(tb testing.TB, timeout time.Duration, what string, cond func() bool) {
	tb.Helper()
	For(tb, timeout, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

var errNotYet = errors.New("condition still false")
