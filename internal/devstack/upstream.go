package devstack

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"strings"
	"time"
)

// demoJokes is what /joke serves, picked by the time of day.
var demoJokes = []string{
	"There are 10 kinds of people: those who understand binary and those who don't.",
	"HTTP 402 waited 27 years for someone to pay it.",
	"A stablecoin walks into a bar. Nothing happens. That's the point.",
	"Why did the API go broke? Too many free tiers.",
	"I'd tell you a UDP joke, but you might not get it.",
}

// cities the weather endpoint knows; any other name gets a made-up forecast.
var demoConditions = []string{"sunny", "cloudy", "light rain", "windy", "foggy", "clear"}

// The demo routes' discovery blocks: what /openapi.json and the 402's
// bazaar extension say about the demo API.
var (
	demoWeatherInput   = json.RawMessage(`{"type":"object","properties":{"city":{"type":"string","description":"city name (default Lisbon)","example":"Paris"}}}`)
	demoWeatherOutput  = json.RawMessage(`{"type":"object","properties":{"city":{"type":"string"},"date":{"type":"string","format":"date"},"conditions":{"type":"string"},"tempC":{"type":"integer"},"source":{"type":"string"}},"required":["city","date","conditions","tempC"]}`)
	demoWeatherExample = json.RawMessage(`{"city":"Paris","date":"2026-01-02","conditions":"sunny","tempC":21}`)
	demoJokeExample    = json.RawMessage(`{"joke":"I would tell you a UDP joke, but you might not get it."}`)
)

// newUpstream is the demo API behind the verifier: a small JSON service
// that knows nothing about payments.
func newUpstream(now func() time.Time) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /weather", func(w http.ResponseWriter, r *http.Request) {
		city := strings.TrimSpace(r.URL.Query().Get("city"))
		if city == "" {
			city = "Lisbon"
		}
		h := fnv.New32a()
		_, _ = h.Write([]byte(strings.ToLower(city)))
		day := now().UTC().Format("2006-01-02")
		_, _ = h.Write([]byte(day))
		n := h.Sum32()
		writeJSON(w, map[string]any{
			"city":       city,
			"date":       day,
			"conditions": demoConditions[n%uint32(len(demoConditions))],
			"tempC":      8 + int(n/7%20),
			"source":     "obol dev demo upstream",
		})
	})
	mux.HandleFunc("GET /joke", func(w http.ResponseWriter, r *http.Request) {
		t := now()
		writeJSON(w, map[string]any{"joke": demoJokes[t.Second()%len(demoJokes)], "source": "obol dev demo upstream"})
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{
			"service":   "obol dev demo API",
			"free":      []string{PathIndex},
			"paid":      []string{PathWeather, PathJoke},
			"timestamp": now().UTC().Format(time.RFC3339),
		})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, fmt.Sprintf("encode: %v", err), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
}

// Upstream is the demo API `obol dev` puts behind its verifier (GET /,
// /weather, /joke), for serving on its own (`obol dev upstream`, e.g. as a
// Service in a cluster).
func Upstream() http.Handler { return newUpstream(time.Now) }
