package stack

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	obolchart "github.com/obolstack/obol/charts/obol"
)

// DashboardFile is the chart file holding the Grafana dashboard's JSON,
// shipped in the ConfigMap monitoring.grafanaDashboard renders.
const DashboardFile = "files/grafana-dashboard.json"

// PanelQuery is one PromQL query of one dashboard panel.
type PanelQuery struct {
	Panel string // the panel's title
	RefID string // the query's refId within the panel
	Expr  string // as in the dashboard, Grafana variables unreplaced
}

// Dashboard is the part of a Grafana dashboard the tests read.
type Dashboard struct {
	UID        string         `json:"uid"`
	Title      string         `json:"title"`
	Panels     []GrafanaPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"list"`
	} `json:"templating"`
}

// GrafanaPanel is one panel (a row holds panels of its own when collapsed).
type GrafanaPanel struct {
	ID      int    `json:"id"`
	Type    string `json:"type"`
	Title   string `json:"title"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []GrafanaPanel `json:"panels"`
}

// ParseDashboard decodes a dashboard's JSON.
func ParseDashboard(b []byte) (*Dashboard, error) {
	var d Dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("parse the Grafana dashboard: %w", err)
	}
	return &d, nil
}

// EmbeddedDashboard reads the dashboard shipped in the embedded chart.
func EmbeddedDashboard() (*Dashboard, error) {
	files, err := obolchart.Files()
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		if f.Name == DashboardFile {
			return ParseDashboard(f.Data)
		}
	}
	return nil, fmt.Errorf("the embedded chart has no %s", DashboardFile)
}

// Queries lists every panel's queries in panel order, rows excluded
// (their panels included).
func (d *Dashboard) Queries() []PanelQuery {
	var out []PanelQuery
	var walk func([]GrafanaPanel)
	walk = func(ps []GrafanaPanel) {
		for _, p := range ps {
			for _, t := range p.Targets {
				out = append(out, PanelQuery{Panel: p.Title, RefID: t.RefID, Expr: t.Expr})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// ConcreteQuery replaces the Grafana variables of a dashboard expression
// with values Prometheus accepts: $__rate_interval and the other interval
// variables with rateInterval, and every dashboard variable ($name or
// ${name}) with ".*", which is what its "All" selection sends.
func ConcreteQuery(expr, rateInterval string, vars []string) string {
	pairs := []string{"$__rate_interval", rateInterval, "${__rate_interval}", rateInterval,
		"$__interval", rateInterval, "${__interval}", rateInterval, "$__range", rateInterval}
	// Longer names first, so $offer does not replace the start of $offer_namespace.
	sorted := append([]string(nil), vars...)
	sort.Slice(sorted, func(i, j int) bool { return len(sorted[i]) > len(sorted[j]) })
	for _, v := range sorted {
		pairs = append(pairs, "${"+v+"}", ".*", "$"+v, ".*")
	}
	return strings.NewReplacer(pairs...).Replace(expr)
}

// Variables names the dashboard's template variables.
func (d *Dashboard) Variables() []string {
	var out []string
	for _, v := range d.Templating.List {
		out = append(out, v.Name)
	}
	return out
}
