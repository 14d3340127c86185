package wait

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPollReturnsOnceTheConditionHolds(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	err := Poll(10*time.Second, func() error {
		if calls.Add(1) < 3 {
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil || calls.Load() != 3 {
		t.Fatalf("Poll = %v after %d calls, want nil after 3", err, calls.Load())
	}
}

func TestPollGivesTheLastErrorAtTheDeadline(t *testing.T) {
	t.Parallel()
	began := time.Now()
	var n int
	err := Poll(50*time.Millisecond, func() error {
		n++
		return errors.New("still down")
	})
	if err == nil || err.Error() != "still down" {
		t.Fatalf("Poll = %v, want the condition's last error", err)
	}
	if took := time.Since(began); took < 50*time.Millisecond {
		t.Errorf("Poll gave up after %s, before its 50ms deadline", took)
	}
	if n < 2 {
		t.Errorf("condition checked %d times in 50ms, want it retried", n)
	}
}

func TestForFailsTheTestNamingWhatItAwaited(t *testing.T) {
	t.Parallel()
	ft := &fakeTB{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		For(ft, 20*time.Millisecond, "the port to close", func() error { return errors.New("still open") })
	}()
	<-done
	want := "timed out after 20ms waiting for the port to close: still open"
	if ft.msg != want {
		t.Fatalf("failure %q, want %q", ft.msg, want)
	}
}

func TestUntilReturnsWithoutFailing(t *testing.T) {
	t.Parallel()
	ft := &fakeTB{}
	var n int
	Until(ft, time.Second, "n to reach 2", func() bool { n++; return n >= 2 })
	if ft.msg != "" {
		t.Fatalf("Until failed: %s", ft.msg)
	}
}

// fakeTB records a Fatalf instead of ending a test.
type fakeTB struct {
	testing.TB
	msg string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
}
func (f *fakeTB) Errorf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
}

func TestNoNewGoroutinesSeesALeakAndNotTheOldOnes(t *testing.T) {
	// Not parallel: other tests' goroutines would count as new.
	stop := make(chan struct{})
	defer close(stop)
	go func() { <-stop }() // running before: never counts
	before := RunningGoroutines()

	ft := &fakeTB{}
	NoNewGoroutines(ft, 20*time.Millisecond, before, 0)
	if ft.msg != "" {
		t.Fatalf("no leak, but: %s", ft.msg)
	}

	leak := make(chan struct{})
	go func() { <-leak }()
	NoNewGoroutines(ft, 20*time.Millisecond, before, 0)
	close(leak)
	if !strings.Contains(ft.msg, "goroutines leaked: 1 new") || !strings.Contains(ft.msg, "TestNoNewGoroutinesSeesALeakAndNotTheOldOnes") {
		t.Fatalf("a leaked goroutine was not reported with its stack: %q", ft.msg)
	}
	ft.msg = ""
	NoNewGoroutines(ft, 5*time.Second, before, 0) // the leaked one exits
	if ft.msg != "" {
		t.Fatalf("after the goroutine ended: %s", ft.msg)
	}
}
