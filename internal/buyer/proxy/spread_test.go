package proxy_test

import (
	"strings"
	"testing"
	"time"

	"github.com/obolstack/obol/internal/buyer/proxy"
)

func TestSpread(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	w, err := proxy.Spread(7, now, time.Minute, 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(w) != 3 || w[0].N != 3 || w[1].N != 2 || w[2].N != 2 {
		t.Fatalf("7 over 3 windows: %+v", w)
	}
	for j, x := range w {
		after := x.ValidBefore.Add(-time.Minute - proxy.SpreadLead)
		if j == 0 {
			after = now.Add(-600 * time.Second)
		}
		if !x.ValidBefore.Equal(now.Add(time.Duration(j+1)*time.Minute)) || !x.ValidAfter.Equal(after) {
			t.Errorf("window %d: %+v", j, x)
		}
	}
	// Cover no longer than the validity: one window, all valid now.
	if w, err := proxy.Spread(4, now, time.Minute, 0); err != nil || len(w) != 1 || w[0].N != 4 || !w[0].ValidAfter.Before(now) {
		t.Errorf("no cover: %+v %v", w, err)
	}
	if _, err := proxy.Spread(2, now, time.Minute, 150*time.Second); err == nil || !strings.Contains(err.Error(), "takes 3 windows") {
		t.Errorf("too few authorizations for the windows: %v", err)
	}
}
