package proxy

import (
	"net/http"
	"testing"
	"time"

	"github.com/obolstack/obol/internal/x402"
)

// maxSpendPerDay is a rolling 24 hours, not a UTC day: spending the cap just
// before UTC midnight does not free it at midnight, only 24 h after the spend.
func TestDailyCapIsRolling24hNotUTCDay(t *testing.T) {
	t.Parallel()
	f := newFixture(t, x402.Version2, "1000", 5, "2000")
	// 23:30 UTC ahead (22:30 when that is within the hour after 23:30), so
	// the whole test stays inside the authorizations' 48 h validity.
	now := time.Now().UTC()
	spendAt := time.Date(now.Year(), now.Month(), now.Day(), 23, 30, 0, 0, time.UTC)
	if !spendAt.After(now) {
		spendAt = spendAt.Add(24 * time.Hour)
	}
	if spendAt.Sub(now) > 23*time.Hour {
		spendAt = spendAt.Add(-time.Hour)
	}
	midnight := time.Date(spendAt.Year(), spendAt.Month(), spendAt.Day()+1, 0, 0, 0, 0, time.UTC)
	f.clock.add(spendAt.Sub(f.clock.now()))
	s := f.server(nil)
	for i := 0; i < 2; i++ {
		if w := call(t, s.Handler(), "/upstream/weather/x", ""); w.Code != 200 {
			t.Fatalf("call %d: %d %s", i, w.Code, w.Body)
		}
	}
	// A new UTC day, 30 minutes after midnight: still within 24 h of the spend.
	f.clock.add(midnight.Add(30 * time.Minute).Sub(f.clock.now()))
	if w := call(t, s.Handler(), "/upstream/weather/x", ""); w.Code != http.StatusTooManyRequests {
		t.Fatalf("after UTC midnight, within 24 h of the spend: %d %s, want 429", w.Code, w.Body)
	}
	// 24 h and a second after the spend: the cap is free again.
	f.clock.add(spendAt.Add(24*time.Hour + time.Second).Sub(f.clock.now()))
	if w := call(t, s.Handler(), "/upstream/weather/x", ""); w.Code != 200 {
		t.Fatalf("24 h after the spend: %d %s", w.Code, w.Body)
	}
}
