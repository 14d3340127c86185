package earnings

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/exp/golden"
	"github.com/charmbracelet/x/exp/teatest"
	"github.com/muesli/termenv"

	"github.com/obolstack/obol/internal/evm"
)

// plainRenderer has no colour profile: the golden files are plain text, as
// with NO_COLOR.
func plainRenderer() *lipgloss.Renderer {
	r := lipgloss.NewRenderer(io.Discard)
	r.SetColorProfile(termenv.Ascii)
	return r
}

func fixedClock() time.Time { return testNow }

func newTestModel(t *testing.T, fetch FetchFunc, w, h int) *teatest.TestModel {
	t.Helper()
	m := NewModel(Config{Fetch: fetch, Now: fixedClock, Renderer: plainRenderer()})
	return teatest.NewTestModel(t, m, teatest.WithInitialTermSize(w, h))
}

func fetchFixture(context.Context) (Snapshot, error) { return fixtureSnapshot(), nil }

func waitFor(t *testing.T, tm *teatest.TestModel, s string) {
	t.Helper()
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool { return bytes.Contains(b, []byte(s)) },
		teatest.WithDuration(5*time.Second), teatest.WithCheckInterval(10*time.Millisecond))
}

// finalView quits the program and returns the last screen.
func finalView(t *testing.T, tm *teatest.TestModel) string {
	t.Helper()
	tm.Send(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune("q")})
	fm := tm.FinalModel(t, teatest.WithFinalTimeout(5*time.Second))
	return fm.(Model).View()
}

func key(s string) tea.KeyMsg {
	switch s {
	case "tab":
		return tea.KeyMsg{Type: tea.KeyTab}
	case "shift+tab":
		return tea.KeyMsg{Type: tea.KeyShiftTab}
	case "enter":
		return tea.KeyMsg{Type: tea.KeyEnter}
	case "esc":
		return tea.KeyMsg{Type: tea.KeyEsc}
	}
	return tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(s)}
}

func TestTUIData(t *testing.T) {
	tm := newTestModel(t, fetchFixture, 80, 24)
	waitFor(t, tm, "demo/weather")
	golden.RequireEqual(t, []byte(finalView(t, tm)))
}

func TestTUIEmpty(t *testing.T) {
	empty := func(context.Context) (Snapshot, error) {
		d := newData("prometheus", "http://127.0.0.1:9090")
		d.Windowed, d.RecordingRules = true, "loaded"
		return Build(d, Window24h, testNow, evm.NewRegistry()), nil
	}
	tm := newTestModel(t, empty, 80, 24)
	waitFor(t, tm, "No offers")
	golden.RequireEqual(t, []byte(finalView(t, tm)))
}

func TestTUIError(t *testing.T) {
	fail := func(context.Context) (Snapshot, error) {
		return Snapshot{}, errors.New(`query Prometheus at http://127.0.0.1:9090: connection refused (is it running? pass --prometheus URL)`)
	}
	tm := newTestModel(t, fail, 80, 24)
	waitFor(t, tm, "Could not read")
	golden.RequireEqual(t, []byte(finalView(t, tm)))
}

func TestTUINarrow(t *testing.T) {
	tm := newTestModel(t, fetchFixture, 44, 24)
	waitFor(t, tm, "weather")
	golden.RequireEqual(t, []byte(finalView(t, tm)))
}

func TestTUISpendTab(t *testing.T) {
	tm := newTestModel(t, fetchFixture, 100, 20)
	waitFor(t, tm, "demo/weather")
	tm.Send(key("tab"))
	waitFor(t, tm, "qwen3:8b")
	golden.RequireEqual(t, []byte(finalView(t, tm)))
}

func TestTUISortFilterResize(t *testing.T) {
	tm := newTestModel(t, fetchFixture, 80, 24)
	waitFor(t, tm, "demo/weather")
	tm.Send(key("s")) // revenue -> calls
	tm.Send(key("s")) // -> lifetime
	tm.Send(key("s")) // -> last paid
	tm.Send(key("/"))
	for _, r := range "demo" {
		tm.Send(key(string(r)))
	}
	tm.Send(key("enter"))
	tm.Send(tea.WindowSizeMsg{Width: 120, Height: 16})
	waitFor(t, tm, "ns~demo")
	v := finalView(t, tm)
	if strings.Contains(v, "shop/search") {
		t.Errorf("filter demo still shows shop/search:\n%s", v)
	}
	if i, j := strings.Index(v, "demo/weather"), strings.Index(v, "demo/llm"); i < 0 || j < 0 || i > j {
		t.Errorf("sort by last paid: weather (2m ago) should come before llm (3h ago):\n%s", v)
	}
	if n := strings.Count(v, "\n") + 1; n != 16 {
		t.Errorf("view has %d lines after resize to 16", n)
	}
	golden.RequireEqual(t, []byte(v))
}

func TestTUIRefreshKeepsDataOnError(t *testing.T) {
	calls := 0
	fetch := func(context.Context) (Snapshot, error) {
		calls++
		if calls == 1 {
			return fixtureSnapshot(), nil
		}
		return Snapshot{}, errors.New("prometheus went away")
	}
	tm := newTestModel(t, fetch, 80, 24)
	waitFor(t, tm, "demo/weather")
	tm.Send(key("r"))
	waitFor(t, tm, "prometheus went away")
	v := finalView(t, tm)
	if !strings.Contains(v, "demo/weather") || !strings.Contains(v, "error: prometheus went away") {
		t.Errorf("want stale data plus error status line:\n%s", v)
	}
}

func TestTUIWatchRefreshes(t *testing.T) {
	n := make(chan struct{}, 100)
	fetch := func(context.Context) (Snapshot, error) {
		n <- struct{}{}
		return fixtureSnapshot(), nil
	}
	m := NewModel(Config{Fetch: fetch, Now: fixedClock, Renderer: plainRenderer(), Refresh: 20 * time.Millisecond})
	tm := teatest.NewTestModel(t, m, teatest.WithInitialTermSize(80, 24))
	deadline := time.After(5 * time.Second)
	for i := 0; i < 3; i++ {
		select {
		case <-n:
		case <-deadline:
			t.Fatalf("only %d fetches with --watch", i)
		}
	}
	_ = tm.Quit()
}

func TestNoColorRenderer(t *testing.T) {
	t.Setenv("NO_COLOR", "1")
	if p := NewRenderer(os.Stdout).ColorProfile(); p != termenv.Ascii {
		t.Errorf("NO_COLOR: profile = %v, want Ascii", p)
	}
	// With NO_COLOR the styled view is the plain one.
	m := NewModel(Config{Fetch: fetchFixture, Now: fixedClock, Renderer: NewRenderer(os.Stdout)})
	s := fixtureSnapshot()
	next, _ := m.Update(snapshotMsg{snap: s})
	if v := next.View(); strings.Contains(v, "\x1b[") {
		t.Errorf("NO_COLOR view has escape sequences:\n%q", v)
	}
}
