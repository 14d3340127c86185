package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

func use(up string, i int, at time.Time, validBefore int64) Use {
	return Use{Upstream: up, From: "0x00000000000000000000000000000000000000aa", Nonce: fmt.Sprintf("0x%064x", i), Value: "1000", At: at, ValidBefore: validBefore}
}

func journalLines(t *testing.T, path, up string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(path+".d", journalName(up)))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte("\n"))
}

// Old, expired records fold into totals: the journal stays small, the
// totals stay exact, and a live authorization stays known across restarts.
func TestStateCompactsAndKeepsTotals(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.json")
	st, err := LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	old := now.Add(-48 * time.Hour)
	const n = 3000
	for i := 0; i < n; i++ {
		u := use("w", i, old, old.Unix())
		if err := st.Take(u); err != nil {
			t.Fatal(err)
		}
		if err := st.Finish(u.From, u.Nonce, "settled", "0x1"); err != nil {
			t.Fatal(err)
		}
	}
	live := use("w", n, now, now.Add(time.Hour).Unix())
	if err := st.Take(live); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if l := journalLines(t, path, "w"); l > 1100 {
		t.Fatalf("journal has %d lines after %d payments: not compacted", l, n)
	}
	st2, err := LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	taken, settled, spent := st2.Counts("w")
	if taken != n+1 || settled != n || spent.Int64() != n*1000 {
		t.Fatalf("after restart: taken %d settled %d spent %s; want %d, %d, %d", taken, settled, spent, n+1, n, n*1000)
	}
	if !st2.Used(live.From, live.Nonce) {
		t.Fatal("a live authorization was forgotten")
	}
	if err := st2.Take(live); err == nil {
		t.Fatal("a live authorization could be taken twice")
	}
	if got := st2.SpentSince("w", now.Add(-24*time.Hour)); got.Int64() != 1000 {
		t.Fatalf("spent in the last day %s, want 1000", got)
	}
}

// A crash in the middle of a line (its fsync never returned, so nothing was
// sent) leaves a torn tail, which is dropped; the state opens and goes on.
func TestStateDropsATornTail(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.json")
	st, _ := LoadState(path)
	a := use("w", 1, time.Now(), time.Now().Add(time.Hour).Unix())
	if err := st.Take(a); err != nil {
		t.Fatal(err)
	}
	st.Close()
	f, _ := os.OpenFile(filepath.Join(path+".d", journalName("w")), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"op":"take","upstream":"w","from":"0x`)
	f.Close()
	st2, err := LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	if !st2.Used(a.From, a.Nonce) {
		t.Fatal("the complete record was lost")
	}
	b := use("w", 2, time.Now(), time.Now().Add(time.Hour).Unix())
	if err := st2.Take(b); err != nil {
		t.Fatal(err)
	}
	st2.Close()
	st3, err := LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	if taken, _, _ := st3.Counts("w"); taken != 2 {
		t.Fatalf("taken %d, want 2", taken)
	}
}

// The single-document state of earlier versions is imported once.
func TestStateImportsTheEarlierLayout(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.json")
	a := use("w", 1, time.Now(), 0)
	a.Outcome = "settled"
	b, _ := json.Marshal(map[string]any{"uses": []Use{a}})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Used(a.From, a.Nonce) {
		t.Fatal("imported record missing")
	}
	st.Close()
	st2, err := LoadState(path)
	if err != nil {
		t.Fatal(err)
	}
	if taken, settled, _ := st2.Counts("w"); taken != 1 || settled != 1 || !st2.Used(a.From, a.Nonce) {
		t.Fatalf("after restart: taken %d settled %d", taken, settled)
	}
}

// Payments per second (Take, fsynced, then Finish) with 1k and 100k
// lifetime payments behind them. The history is written in the earlier
// single-document layout, so the same benchmark runs on both layouts.
func BenchmarkStatePayment(b *testing.B) {
	for _, lifetime := range []int{1000, 100000} {
		b.Run(fmt.Sprintf("lifetime=%d", lifetime), func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "state.json")
			old := time.Now().Add(-72 * time.Hour)
			uses := make([]Use, lifetime)
			for i := range uses {
				uses[i] = use("w", i, old, old.Unix())
				uses[i].Outcome = "settled"
			}
			doc, _ := json.Marshal(map[string]any{"uses": uses})
			// Written and synced before the clock starts: the first timed
			// fsync must not flush the setup's data.
			f, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := f.Write(doc); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			f.Close()
			st, err := LoadState(path)
			if err != nil {
				b.Fatal(err)
			}
			uses, doc = nil, nil
			runtime.GC()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				u := use("w", lifetime+i, time.Now(), time.Now().Add(time.Hour).Unix())
				if err := st.Take(u); err != nil {
					b.Fatal(err)
				}
				if err := st.Finish(u.From, u.Nonce, "settled", "0x1"); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "payments/s")
		})
	}
}
