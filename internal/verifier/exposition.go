package verifier

import (
	"bufio"
	"compress/gzip"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
)

// OfferFamily is one per-offer metric family. Its values live in the
// served offers' counters; it is a prometheus.Collector (for registries,
// testutil, and the formats other than text), and the Server writes it in
// the text format without building a dto.Metric per series.
type OfferFamily struct {
	m     *Metrics
	name  string
	help  string
	typ   prometheus.ValueType
	extra string // label beyond the offer's: "", LabelAsset or LabelReason
	value func(*offerState) (float64, bool)
	desc  *prometheus.Desc
}

func (m *Metrics) family(name, help string, typ prometheus.ValueType, extra string, value func(*offerState) (float64, bool)) *OfferFamily {
	labels := []string{LabelOfferNamespace, LabelOfferName, LabelChain}
	if extra != "" {
		labels = append(labels, extra)
	}
	return &OfferFamily{m: m, name: name, help: help, typ: typ, extra: extra, value: value,
		desc: prometheus.NewDesc(name, help, labels, nil)}
}

// visit calls fn for each series of the family, in the order client_golang
// sorts series (by label values, in label-name order).
func (f *OfferFamily) visit(set *servedSet, fn func(st *offerState, extra string, v float64)) {
	switch f.extra {
	case LabelAsset:
		for _, a := range set.assetRows {
			fn(a.st, a.asset, math.Float64frombits(a.bits.Load()))
		}
	case LabelReason:
		for _, st := range set.sorted {
			rc := st.failures.Load()
			if rc == nil {
				continue
			}
			for i, r := range reasonNames {
				if n := rc[i].Load(); n > 0 { // a reason's series exists from its first failure
					fn(st, r, float64(n))
				}
			}
		}
	default:
		for _, st := range set.sorted {
			if v, ok := f.value(st); ok {
				fn(st, "", v)
			}
		}
	}
}

// Describe implements prometheus.Collector.
func (f *OfferFamily) Describe(ch chan<- *prometheus.Desc) { ch <- f.desc }

// Collect implements prometheus.Collector.
func (f *OfferFamily) Collect(ch chan<- prometheus.Metric) {
	f.visit(f.m.served.Load(), func(st *offerState, extra string, v float64) {
		lv := st.lv
		if f.extra != "" {
			lv = append(st.lv[:3:3], extra)
		}
		ch <- prometheus.MustNewConstMetric(f.desc, f.typ, v, lv...)
	})
}

// Series reads one series (label values: offer namespace, offer name,
// chain, then asset or reason for the families that have one). A series
// that does not exist reads 0.
func (f *OfferFamily) Series(lvs ...string) prometheus.Collector {
	v := 0.0
	f.visit(f.m.served.Load(), func(st *offerState, extra string, val float64) {
		if st.lv[0] == lvs[0] && st.lv[1] == lvs[1] && st.lv[2] == lvs[2] && (f.extra == "" || extra == lvs[3]) {
			v = val
		}
	})
	return constCollector{prometheus.MustNewConstMetric(f.desc, f.typ, v, lvs...)}
}

type constCollector struct{ m prometheus.Metric }

func (c constCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.m.Desc() }
func (c constCollector) Collect(ch chan<- prometheus.Metric) { ch <- c.m }

// writeText writes the family in the text format (0.0.4), as expfmt would
// write the families client_golang gathers; nothing when it has no series.
func (f *OfferFamily) writeText(w *bufio.Writer, set *servedSet) {
	num := make([]byte, 0, 32)
	header := false
	f.visit(set, func(st *offerState, extra string, v float64) {
		if !header {
			header = true
			w.WriteString("# HELP ")
			w.WriteString(f.name)
			w.WriteByte(' ')
			helpEscaper.WriteString(w, f.help)
			w.WriteString("\n# TYPE ")
			w.WriteString(f.name)
			if f.typ == prometheus.GaugeValue {
				w.WriteString(" gauge\n")
			} else {
				w.WriteString(" counter\n")
			}
		}
		w.WriteString(f.name)
		w.WriteByte('{')
		switch f.extra {
		case LabelAsset:
			w.WriteString(st.assetLabels(extra))
		case LabelReason:
			w.WriteString(st.labels)
			w.WriteString(`,reason="`)
			w.WriteString(escapeLabel(extra))
			w.WriteByte('"')
		default:
			w.WriteString(st.labels)
		}
		w.WriteString("} ")
		w.Write(appendFloat(num[:0], v))
		w.WriteByte('\n')
	})
}

// assetLabels are the pre-rendered labels of the offer's revenue in asset.
func (st *offerState) assetLabels(asset string) string {
	if a := (*st.assets.Load())[asset]; a != nil {
		return a.labels
	}
	return LabelAsset + `="` + escapeLabel(asset) + `",` + st.labels
}

var helpEscaper = strings.NewReplacer("\\", `\\`, "\n", `\n`)

// appendFloat formats a sample value as expfmt does.
func appendFloat(b []byte, f float64) []byte {
	switch {
	case f == 1:
		return append(b, '1')
	case f == 0:
		return append(b, '0')
	case f == -1:
		return append(b, "-1"...)
	case math.IsNaN(f):
		return append(b, "NaN"...)
	case math.IsInf(f, +1):
		return append(b, "+Inf"...)
	case math.IsInf(f, -1):
		return append(b, "-Inf"...)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

// metricsHandler serves /metrics: the text format (what Prometheus
// negotiates unless it asks for protobuf) is written straight from the
// offers' counters merged with the registry's families; any other format
// goes through promhttp with the offer families as collectors.
type metricsHandler struct {
	rest    prometheus.Gatherer
	metrics *Metrics
	full    http.Handler
}

func newMetricsHandler(rest prometheus.Gatherer, m *Metrics) http.Handler {
	if m == nil {
		return promhttp.HandlerFor(rest, promhttp.HandlerOpts{})
	}
	return &metricsHandler{rest: rest, metrics: m,
		full: promhttp.HandlerFor(prometheus.Gatherers{rest, m.offerReg}, promhttp.HandlerOpts{})}
}

var bufPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}

func (h *metricsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	format := expfmt.NegotiateAccept(r.Header, expfmt.DefaultAcceptedFormats()...)
	if format.FormatType() != expfmt.TypeTextPlain {
		h.full.ServeHTTP(w, r)
		return
	}
	rest, err := h.rest.Gather()
	if err != nil {
		http.Error(w, "An error has occurred while serving metrics:\n\n"+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Add("Vary", "Accept")
	w.Header().Add("Vary", "Accept-Encoding")
	w.Header().Set("Content-Type", string(format))
	var out io.Writer = w
	if acceptsGzip(r) {
		w.Header().Set("Content-Encoding", "gzip")
		gz := gzipPool.Get().(*gzip.Writer)
		gz.Reset(w)
		defer func() { _ = gz.Close(); gzipPool.Put(gz) }()
		out = gz
	}
	bw := bufPool.Get().(*bufio.Writer)
	bw.Reset(out)
	defer func() { bw.Reset(nil); bufPool.Put(bw) }()
	enc := expfmt.NewEncoder(bw, format)
	set := h.metrics.served.Load()
	fams := h.metrics.families
	// Both lists are sorted by name: merge them, as Gather would.
	for _, mf := range rest {
		for len(fams) > 0 && fams[0].name < mf.GetName() {
			fams[0].writeText(bw, set)
			fams = fams[1:]
		}
		if err := enc.Encode(mf); err != nil {
			return // the client went away; nothing more can be sent
		}
	}
	for _, f := range fams {
		f.writeText(bw, set)
	}
	_ = bw.Flush()
}

// gzipPool holds writers at BestSpeed: a 10,000-offer page is 7 MB of
// repetitive text, which it compresses about as well as the default level
// at a fraction of the CPU.
var gzipPool = sync.Pool{New: func() any {
	gz, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return gz
}}

// acceptsGzip reports whether the request's Accept-Encoding allows gzip.
func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for _, part := range strings.Split(v, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
				continue
			}
			q := strings.ReplaceAll(params, " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}
