package verifier

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/obolstack/obol/internal/facilitator"
)

// facilitatorTimeout bounds verify through the real facilitator client: a
// facilitator that answers after 3 s is cut at 300 ms (503), and the
// upstream is not called.
func TestFacilitatorTimeoutBoundsVerify(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		case <-time.After(3 * time.Second):
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"isValid":true}`))
	}))
	defer slow.Close()
	defer close(release)
	up := newUpstream(t)
	g := newGate(t, "facilitatorTimeout: 300ms\n"+proxyDoc(up.URL))
	srv, err := New(Options{NewFacilitator: func(string) (Facilitator, error) { return facilitator.NewClient(slow.URL) }, Registry: g.evm})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.ApplyConfig(g.srv.Config()); err != nil {
		t.Fatal(err)
	}
	name, value := newBuyer(t).pay(t, g.evm, 2, challenge(t, srv, "/joke"))
	r := httptest.NewRequest(http.MethodGet, "/joke", nil)
	r.Header.Set(name, value)
	start := time.Now()
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, r)
	d := time.Since(start)
	if w.Code != http.StatusServiceUnavailable || d > 2*time.Second || up.hits.Load() != 0 {
		t.Fatalf("slow verify: %d after %s (upstream hits %d), want 503 after about 300ms", w.Code, d, up.hits.Load())
	}
}
