package earnings

import (
	"fmt"
	"io"
	"math/big"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// column is one column of a rendered table. prio orders which columns go
// first when the terminal is narrow (higher goes first).
type column struct {
	title string
	prio  int
	cell  func(i int) string
}

// sparkWidth is how many cells a sparkline gets.
const sparkWidth = 12

var sparkRunes = []rune("▁▂▃▄▅▆▇█")

// Spark draws points (decimal strings) as a sparkline of at most width
// cells, summing neighbouring buckets when there are more points than cells.
func Spark(points []string, width int) string {
	if len(points) == 0 || width <= 0 {
		return ""
	}
	vals := make([]float64, 0, len(points))
	for _, p := range points {
		f, err := strconv.ParseFloat(p, 64) // drawing only: heights, not money
		if err != nil {
			f = 0
		}
		vals = append(vals, f)
	}
	if len(vals) > width {
		per := (len(vals) + width - 1) / width
		var merged []float64
		for i := 0; i < len(vals); i += per {
			s := 0.0
			for j := i; j < i+per && j < len(vals); j++ {
				s += vals[j]
			}
			merged = append(merged, s)
		}
		vals = merged
	}
	max := 0.0
	for _, v := range vals {
		if v > max {
			max = v
		}
	}
	var b strings.Builder
	for _, v := range vals {
		i := 0
		if max > 0 && v > 0 {
			i = 1 + int(v/max*float64(len(sparkRunes)-2)+0.5)
			if i >= len(sparkRunes) {
				i = len(sparkRunes) - 1
			}
		}
		b.WriteRune(sparkRunes[i])
	}
	return b.String()
}

// ShortAddress shortens 0x036CbD53842c5426634e7929541eC2318f3dCF7e to
// 0x036C…CF7e.
func ShortAddress(a string) string {
	if len(a) <= 12 {
		return a
	}
	return a[:6] + "…" + a[len(a)-4:]
}

// FormatAmounts renders amounts as "0.005 USDC" (joined with ", " for more
// than one asset); unknown tokens as atomic units with the short address.
// window picks the window figure; a null window gives "-".
func FormatAmounts(as []Amount, window bool) string {
	if len(as) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(as))
	for _, a := range as {
		v := a.Lifetime
		if window {
			if a.Window == nil {
				return "-"
			}
			v = *a.Window
		}
		if a.Known {
			parts = append(parts, v+" "+a.Symbol)
		} else {
			parts = append(parts, v+" ("+ShortAddress(a.Asset)+")")
		}
	}
	return strings.Join(parts, ", ")
}

// FormatRate renders a settlement rate as a percentage, "-" when unknown.
func FormatRate(r *float64) string {
	if r == nil {
		return "-"
	}
	p := *r * 100
	if p == float64(int64(p)) {
		return fmt.Sprintf("%d%%", int64(p))
	}
	return fmt.Sprintf("%.1f%%", p)
}

func formatCount(c *int64) string {
	if c == nil {
		return "-"
	}
	return strconv.FormatInt(*c, 10)
}

func lastAgo(l *LastSettlement, now time.Time) string {
	if l == nil {
		return "never"
	}
	return Ago(now, time.Unix(l.Unix, 0))
}

// offerColumns are the earnings tab's columns for rows.
func offerColumns(s *Snapshot, rows []OfferRow, now time.Time) []column {
	w := string(s.Window)
	cols := []column{
		{"OFFER", 100, func(i int) string { return rows[i].Key() }},
		{"CHAIN", 60, func(i int) string { return rows[i].ChainName }},
	}
	if s.Source.Windowed {
		cols = append(cols,
			column{"CALLS " + w, 80, func(i int) string { return formatCount(rows[i].ChargedCalls.Window) }},
			column{"REVENUE " + w, 90, func(i int) string { return FormatAmounts(rows[i].Revenue, true) }},
			column{"LIFETIME", 25, func(i int) string { return FormatAmounts(rows[i].Revenue, false) }},
		)
	} else {
		cols = append(cols,
			column{"CALLS", 80, func(i int) string { return strconv.FormatInt(rows[i].ChargedCalls.Lifetime, 10) }},
			column{"REVENUE", 90, func(i int) string { return FormatAmounts(rows[i].Revenue, false) }},
		)
	}
	rateTitle := "RATE"
	if len(rows) > 0 && rows[0].VerifiedRateWindow != "" {
		rateTitle = "RATE " + rows[0].VerifiedRateWindow
	}
	cols = append(cols,
		column{rateTitle, 45, func(i int) string { return FormatRate(rows[i].VerifiedRate) }},
		column{"LAST PAID", 50, func(i int) string { return lastAgo(rows[i].LastSettlement, now) }},
	)
	if s.Source.Windowed {
		cols = append(cols, column{"TREND", 35, func(i int) string {
			if rows[i].Sparkline == nil {
				return ""
			}
			return Spark(rows[i].Sparkline.Points, sparkWidth)
		}})
	}
	return cols
}

func totalColumns(s *Snapshot) []column {
	t := s.Totals
	w := string(s.Window)
	cols := []column{{"CHAIN", 100, func(i int) string { return t[i].ChainName }}}
	if s.Source.Windowed {
		cols = append(cols,
			column{"CALLS " + w, 80, func(i int) string { return formatCount(t[i].ChargedCalls.Window) }},
			column{"REVENUE " + w, 90, func(i int) string { return FormatAmounts(t[i].Revenue, true) }},
		)
	}
	cols = append(cols,
		column{"CALLS TOTAL", 40, func(i int) string { return strconv.FormatInt(t[i].ChargedCalls.Lifetime, 10) }},
		column{"REVENUE TOTAL", 50, func(i int) string { return FormatAmounts(t[i].Revenue, false) }},
	)
	return cols
}

func spendColumns(s *Snapshot, rows []SpendRow) []column {
	w := string(s.Window)
	cnt := func(c Count) string {
		if s.Source.Windowed {
			return formatCount(c.Window)
		}
		return strconv.FormatInt(c.Lifetime, 10)
	}
	suffix := ""
	if s.Source.Windowed {
		suffix = " " + w
	}
	return []column{
		{"UPSTREAM", 100, func(i int) string { return rows[i].Upstream }},
		{"MODEL", 70, func(i int) string { return rows[i].RemoteModel }},
		{"CHAIN", 60, func(i int) string { return rows[i].ChainName }},
		{"PAID" + suffix, 90, func(i int) string { return cnt(rows[i].PaymentSuccess) }},
		{"FAILED" + suffix, 80, func(i int) string { return cnt(rows[i].PaymentFailure) }},
		{"PAID TOTAL", 30, func(i int) string { return strconv.FormatInt(rows[i].PaymentSuccess.Lifetime, 10) }},
		{"AUTHS LEFT", 85, func(i int) string { return strconv.FormatInt(rows[i].AuthRemaining, 10) }},
		{"AUTHS SPENT", 40, func(i int) string { return strconv.FormatInt(rows[i].AuthSpent, 10) }},
		{"MAPPINGS", 20, func(i int) string { return strconv.FormatInt(rows[i].ActiveModelMappings, 10) }},
	}
}

// SourceLine describes the source in one line.
func SourceLine(s *Snapshot) string {
	switch s.Source.Kind {
	case "metrics":
		return "metrics " + s.Source.URL + " (lifetime only)"
	case "prometheus":
		r := "recording rules " + s.Source.RecordingRules
		if s.Source.RecordingRules == "missing" {
			r = "raw PromQL, recording rules not loaded"
		}
		return "prometheus " + s.Source.URL + " (" + r + ")"
	}
	return s.Source.Kind + " " + s.Source.URL
}

// WriteTable prints the snapshot as plain text tables (no colour, no
// terminal control): earnings, totals per chain, spend and notes.
func WriteTable(w io.Writer, s *Snapshot) error {
	now := s.GeneratedAt
	fmt.Fprintf(w, "obol earnings · window %s · %s\n", s.Window, SourceLine(s))
	fmt.Fprintf(w, "generated %s\n\n", s.GeneratedAt.Format(time.RFC3339))
	fmt.Fprintln(w, "EARNINGS")
	if len(s.Offers) == 0 {
		fmt.Fprintln(w, "no offers have reported metrics yet")
	} else {
		writeCols(w, offerColumns(s, s.Offers, now), len(s.Offers))
		fmt.Fprintln(w, "\nTOTALS BY CHAIN")
		writeCols(w, totalColumns(s), len(s.Totals))
	}
	fmt.Fprintln(w, "\nSPEND")
	if len(s.Spend) == 0 {
		fmt.Fprintln(w, "no buyer metrics")
	} else {
		writeCols(w, spendColumns(s, s.Spend), len(s.Spend))
	}
	if len(s.Notes) > 0 {
		fmt.Fprintln(w, "\nNOTES")
		for _, n := range s.Notes {
			fmt.Fprintln(w, "- "+n)
		}
	}
	return nil
}

func writeCols(w io.Writer, cols []column, n int) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	titles := make([]string, len(cols))
	for i, c := range cols {
		titles[i] = c.title
	}
	fmt.Fprintln(tw, strings.Join(titles, "\t"))
	for r := 0; r < n; r++ {
		cells := make([]string, len(cols))
		for i, c := range cols {
			cells[i] = c.cell(r)
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	tw.Flush()
}

// SortKey is a column the earnings table can be sorted by.
type SortKey int

// Sort keys, in the order `s` cycles through them.
const (
	SortRevenue SortKey = iota
	SortCalls
	SortLifetime
	SortLast
	SortOffer
	numSortKeys
)

func (k SortKey) String() string {
	return [...]string{"revenue", "calls", "lifetime", "last paid", "offer"}[k]
}

// SortOffers orders rows by key: amounts, counts and times descending,
// offer names ascending; ties by offer and chain.
func SortOffers(rows []OfferRow, key SortKey) {
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		var c int
		switch key {
		case SortRevenue:
			c = -cmpRat(revenueValue(a.Revenue, true), revenueValue(b.Revenue, true))
		case SortCalls:
			c = -cmpInt(countValue(a.ChargedCalls), countValue(b.ChargedCalls))
		case SortLifetime:
			c = -cmpRat(revenueValue(a.Revenue, false), revenueValue(b.Revenue, false))
			if c == 0 {
				c = -cmpInt(a.ChargedCalls.Lifetime, b.ChargedCalls.Lifetime)
			}
		case SortLast:
			c = -cmpInt(lastUnix(a.LastSettlement), lastUnix(b.LastSettlement))
		}
		if c != 0 {
			return c < 0
		}
		if a.Key() != b.Key() {
			return a.Key() < b.Key()
		}
		return a.Chain < b.Chain
	})
}

func countValue(c Count) int64 {
	if c.Window != nil {
		return *c.Window
	}
	return c.Lifetime
}

func lastUnix(l *LastSettlement) int64 {
	if l == nil {
		return 0
	}
	return l.Unix
}

// revenueValue sums a row's revenue in token units (exact rationals); unknown
// tokens, whose units are not comparable, count as 0.
func revenueValue(as []Amount, window bool) *big.Rat {
	sum := new(big.Rat)
	for _, a := range as {
		if !a.Known {
			continue
		}
		s := a.Lifetime
		if window && a.Window != nil {
			s = *a.Window
		}
		r, ok := new(big.Rat).SetString(s)
		if ok {
			sum.Add(sum, r)
		}
	}
	return sum
}

func cmpRat(a, b *big.Rat) int { return a.Cmp(b) }

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
