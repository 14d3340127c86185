package earnings

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/table"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
)

// FetchFunc produces a fresh snapshot (the TUI calls it from a tea.Cmd).
type FetchFunc func(ctx context.Context) (Snapshot, error)

// Config configures the TUI model.
type Config struct {
	Fetch FetchFunc
	// Now is the clock for "2m ago" and the "updated" time.
	Now func() time.Time
	// Refresh, when > 0, refetches on that interval (--watch).
	Refresh time.Duration
	// Renderer styles the output; nil means a renderer on stdout that
	// honours NO_COLOR.
	Renderer *lipgloss.Renderer
	// FetchTimeout bounds one fetch (default 30s).
	FetchTimeout time.Duration
}

// NewRenderer returns a lipgloss renderer for w; NO_COLOR (any value) turns
// colour and text attributes off.
func NewRenderer(w *os.File) *lipgloss.Renderer {
	r := lipgloss.NewRenderer(w)
	if os.Getenv("NO_COLOR") != "" {
		r.SetColorProfile(termenv.Ascii)
	}
	return r
}

// Styles are the TUI's lipgloss styles.
type Styles struct {
	Title, Dim, TabActive, TabInactive, Error, Heading, Note lipgloss.Style
	Table                                                    table.Styles
}

// NewStyles builds the styles on r.
func NewStyles(r *lipgloss.Renderer) Styles {
	accent := lipgloss.AdaptiveColor{Light: "#1F6FEB", Dark: "#58A6FF"}
	return Styles{
		Title:       r.NewStyle().Bold(true),
		Dim:         r.NewStyle().Faint(true),
		TabActive:   r.NewStyle().Bold(true).Underline(true).Foreground(accent),
		TabInactive: r.NewStyle().Faint(true),
		Error:       r.NewStyle().Bold(true).Foreground(lipgloss.Color("9")),
		Heading:     r.NewStyle().Bold(true),
		Note:        r.NewStyle().Faint(true),
		Table: table.Styles{
			Header:   r.NewStyle().Bold(true).PaddingRight(1),
			Cell:     r.NewStyle().PaddingRight(1),
			Selected: r.NewStyle().Reverse(true),
		},
	}
}

// Tabs of the TUI.
const (
	TabEarnings = iota
	TabSpend
)

type snapshotMsg struct {
	snap Snapshot
	err  error
}

type tickMsg struct{}

// Model is the bubbletea model of `obol earnings`.
type Model struct {
	cfg    Config
	st     Styles
	width  int
	height int

	snap    *Snapshot
	err     error
	loading bool
	updated time.Time

	tab     int
	sortKey SortKey
	filter  string
	editing bool
	draft   string

	table table.Model
}

// NewModel returns the TUI model.
func NewModel(cfg Config) Model {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Renderer == nil {
		cfg.Renderer = NewRenderer(os.Stdout)
	}
	if cfg.FetchTimeout <= 0 {
		cfg.FetchTimeout = 30 * time.Second
	}
	st := NewStyles(cfg.Renderer)
	t := table.New(table.WithFocused(true), table.WithStyles(st.Table))
	return Model{cfg: cfg, st: st, width: 80, height: 24, loading: true, table: t}
}

// Snapshot returns the last snapshot shown (nil before the first).
func (m Model) Snapshot() *Snapshot { return m.snap }

// Err returns the last fetch error.
func (m Model) Err() error { return m.err }

// Init fetches the first snapshot (and starts the refresh clock with --watch).
func (m Model) Init() tea.Cmd {
	if m.cfg.Refresh > 0 {
		return tea.Batch(m.fetchCmd(), m.tickCmd())
	}
	return m.fetchCmd()
}

func (m Model) fetchCmd() tea.Cmd {
	fetch, timeout := m.cfg.Fetch, m.cfg.FetchTimeout
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		s, err := fetch(ctx)
		return snapshotMsg{snap: s, err: err}
	}
}

func (m Model) tickCmd() tea.Cmd {
	return tea.Tick(m.cfg.Refresh, func(time.Time) tea.Msg { return tickMsg{} })
}

// Update handles keys, window sizes, snapshots and refresh ticks.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.layout()
		return m, nil
	case snapshotMsg:
		m.loading = false
		if msg.err != nil {
			m.err = msg.err
		} else {
			s := msg.snap
			m.snap, m.err = &s, nil
		}
		m.updated = m.cfg.Now()
		m.layout()
		return m, nil
	case tickMsg:
		if m.loading {
			return m, m.tickCmd()
		}
		m.loading = true
		return m, tea.Batch(m.fetchCmd(), m.tickCmd())
	case tea.KeyMsg:
		if m.editing {
			return m.editKey(msg)
		}
		switch msg.String() {
		case "q", "ctrl+c":
			return m, tea.Quit
		case "tab":
			m.tab = (m.tab + 1) % 2
			m.table.SetCursor(0)
			m.layout()
			return m, nil
		case "shift+tab":
			m.tab = (m.tab + 1) % 2
			m.table.SetCursor(0)
			m.layout()
			return m, nil
		case "s":
			m.sortKey = (m.sortKey + 1) % numSortKeys
			m.layout()
			return m, nil
		case "r":
			if m.loading {
				return m, nil
			}
			m.loading = true
			return m, m.fetchCmd()
		case "/":
			m.editing, m.draft = true, m.filter
			return m, nil
		case "esc":
			if m.filter != "" {
				m.filter = ""
				m.layout()
			}
			return m, nil
		}
	}
	var cmd tea.Cmd
	m.table, cmd = m.table.Update(msg)
	return m, cmd
}

func (m Model) editKey(k tea.KeyMsg) (tea.Model, tea.Cmd) {
	switch k.Type {
	case tea.KeyCtrlC:
		return m, tea.Quit
	case tea.KeyEnter:
		m.editing, m.filter = false, strings.TrimSpace(m.draft)
		m.table.SetCursor(0)
		m.layout()
	case tea.KeyEsc:
		m.editing, m.draft, m.filter = false, "", ""
		m.layout()
	case tea.KeyBackspace:
		if r := []rune(m.draft); len(r) > 0 {
			m.draft = string(r[:len(r)-1])
		}
	case tea.KeyRunes, tea.KeySpace:
		m.draft += string(k.Runes)
	}
	return m, nil
}

// visibleOffers filters by namespace (substring) and sorts.
func (m Model) visibleOffers() []OfferRow {
	if m.snap == nil {
		return nil
	}
	rows := make([]OfferRow, 0, len(m.snap.Offers))
	for _, r := range m.snap.Offers {
		if m.filter == "" || strings.Contains(r.Namespace, m.filter) {
			rows = append(rows, r)
		}
	}
	SortOffers(rows, m.sortKey)
	return rows
}

// layout fits the table's columns and height to the terminal.
func (m *Model) layout() {
	cursor := m.table.Cursor()
	m.table.SetRows(nil)
	if m.snap == nil {
		m.table.SetColumns(nil)
		return
	}
	var cols []column
	var n int
	if m.tab == TabEarnings {
		rows := m.visibleOffers()
		cols, n = offerColumns(m.snap, rows, m.cfg.Now()), len(rows)
	} else {
		cols, n = spendColumns(m.snap, m.snap.Spend), len(m.snap.Spend)
	}
	cells := make([][]string, n)
	for r := range cells {
		cells[r] = make([]string, len(cols))
		for i, c := range cols {
			cells[r][i] = c.cell(r)
		}
	}
	widths := make([]int, len(cols))
	for i, c := range cols {
		widths[i] = lipgloss.Width(c.title)
		for r := range cells {
			if w := lipgloss.Width(cells[r][i]); w > widths[i] {
				widths[i] = w
			}
		}
	}
	if widths[0] > 28 {
		widths[0] = 28
	}
	// Drop the least important columns until the rest fit (1 cell of
	// padding each), then squeeze the first column.
	keep := make([]bool, len(cols))
	for i := range keep {
		keep[i] = true
	}
	total := func() int {
		t := 0
		for i, w := range widths {
			if keep[i] {
				t += w + 1
			}
		}
		return t
	}
	for total() > m.width {
		low := -1
		for i, c := range cols {
			if keep[i] && i > 0 && (low < 0 || c.prio < cols[low].prio) {
				low = i
			}
		}
		if low < 0 || countTrue(keep) <= 2 {
			break
		}
		keep[low] = false
	}
	if over := total() - m.width; over > 0 {
		widths[0] = max(6, widths[0]-over)
	}
	var tcols []table.Column
	var idx []int
	for i, c := range cols {
		if keep[i] {
			tcols = append(tcols, table.Column{Title: c.title, Width: widths[i]})
			idx = append(idx, i)
		}
	}
	trows := make([]table.Row, n)
	for r := range cells {
		row := make(table.Row, len(idx))
		for j, i := range idx {
			row[j] = cells[r][i]
		}
		trows[r] = row
	}
	m.table.SetColumns(tcols)
	m.table.SetRows(trows)
	m.table.SetCursor(min(max(cursor, 0), max(n-1, 0)))
	m.table.SetWidth(total())
	m.table.SetHeight(min(n, m.tableRoom()) + 1)
}

// tableRoom is how many rows fit next to the header, tabs, totals and
// status line.
func (m Model) tableRoom() int {
	fixed := 4 + 1 // title, tabs, blank, table header; status line
	if m.tab == TabEarnings && m.snap != nil {
		fixed += 2 + 2*len(Totals(m.visibleOffers(), m.snap.Source.Windowed)) // blank, heading, up to two lines per chain
	}
	return max(1, m.height-fixed)
}

func countTrue(b []bool) int {
	n := 0
	for _, v := range b {
		if v {
			n++
		}
	}
	return n
}

// View renders the screen.
func (m Model) View() string {
	w := max(m.width, 20)
	var b []string
	title := "obol earnings"
	if m.snap != nil {
		title += " · " + string(m.snap.Window) + " · " + SourceLine(m.snap)
	}
	b = append(b, m.st.Title.Render(truncate(title, w)))
	tabs := []string{"Earnings", "Spend"}
	for i, t := range tabs {
		if i == m.tab {
			tabs[i] = m.st.TabActive.Render("[" + t + "]")
		} else {
			tabs[i] = m.st.TabInactive.Render(" " + t + " ")
		}
	}
	b = append(b, strings.Join(tabs, " "), "")

	switch {
	case m.snap == nil && m.err != nil:
		b = append(b, "Could not read earnings:", m.st.Error.Render(wrap(m.err.Error(), w)), "",
			m.st.Dim.Render(wrap("Check the source, or pass --prometheus URL or --metrics-url URL. Press r to retry.", w)))
	case m.snap == nil:
		b = append(b, "Loading…")
	case m.tab == TabEarnings && len(m.visibleOffers()) == 0:
		if m.filter != "" {
			b = append(b, fmt.Sprintf("No offers in a namespace matching %q (esc clears the filter).", m.filter))
		} else {
			b = append(b, "No offers have reported metrics yet.",
				m.st.Dim.Render(wrap("Sell an API with `obol sell create` and pay for a call: revenue appears here.", w)))
		}
	case m.tab == TabSpend && len(m.snap.Spend) == 0:
		b = append(b, "No buyer metrics: nothing has been bought through the buyer proxy.")
	default:
		b = append(b, strings.Split(strings.TrimRight(m.table.View(), "\n"), "\n")...)
		if m.tab == TabEarnings {
			b = append(b, "", m.st.Heading.Render("Totals by chain"))
			for _, t := range Totals(m.visibleOffers(), m.snap.Source.Windowed) {
				win, life := totalParts(m.snap, t)
				switch {
				case win == "":
					b = append(b, truncate(t.ChainName+": "+life, w))
				case lipgloss.Width(t.ChainName+": "+win+" · "+life) <= w:
					b = append(b, t.ChainName+": "+win+" · "+life)
				default:
					b = append(b, truncate(t.ChainName+": "+win, w), truncate("  "+life, w))
				}
			}
		}
	}
	if m.snap != nil && len(m.snap.Notes) > 0 {
		b = append(b, "")
		for _, n := range m.snap.Notes {
			b = append(b, m.st.Note.Render(wrap("· "+n, w)))
		}
	}

	// Fit the body above the status line, then pin the status line to the
	// bottom row.
	lines := strings.Split(strings.Join(b, "\n"), "\n")
	room := max(1, m.height-1)
	if len(lines) > room {
		lines = lines[:room]
	}
	for len(lines) < room {
		lines = append(lines, "")
	}
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(lines, "\n") + "\n" + m.statusLine(w)
}

// totalParts renders a chain total's window and lifetime halves (window is
// "" without history).
func totalParts(s *Snapshot, t ChainTotal) (win, life string) {
	life = fmt.Sprintf("%d calls, %s lifetime", t.ChargedCalls.Lifetime, FormatAmounts(t.Revenue, false))
	if !s.Source.Windowed {
		return "", life
	}
	win = fmt.Sprintf("%s calls, %s in %s", formatCount(t.ChargedCalls.Window), FormatAmounts(t.Revenue, true), s.Window)
	return win, life
}

func (m Model) statusLine(w int) string {
	if m.editing {
		return truncate("filter namespace: "+m.draft+"▏ (enter apply · esc clear)", w)
	}
	var parts []string
	if m.err != nil {
		parts = append(parts, m.st.Error.Render(truncate("error: "+m.err.Error(), w)))
		return parts[0]
	}
	state := ""
	switch {
	case m.loading:
		state = "loading…"
	case !m.updated.IsZero():
		state = "updated " + m.updated.Format("15:04:05")
	}
	parts = append(parts, state)
	if m.tab == TabEarnings {
		parts = append(parts, "sort: "+m.sortKey.String())
	}
	if m.filter != "" {
		parts = append(parts, "ns~"+m.filter)
	}
	parts = append(parts, "tab · s sort · / filter · r refresh · q quit")
	return m.st.Dim.Render(truncate(strings.Join(parts, " · "), w))
}

func truncate(s string, w int) string {
	if lipgloss.Width(s) <= w {
		return s
	}
	r := []rune(s)
	for len(r) > 0 && lipgloss.Width(string(r))+1 > w {
		r = r[:len(r)-1]
	}
	return string(r) + "…"
}

func wrap(s string, w int) string {
	return lipgloss.NewStyle().Width(w).Render(s)
}
