package verifier

import (
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
)

// Rounds of 32 concurrent free requests reuse the connections of the first
// round: the default transport keeps enough idle connections per upstream
// (Go's default of 2 opened ~30 new connections per round).
func TestUpstreamConnectionsReused(t *testing.T) {
	t.Parallel()
	const conc, rounds = 32, 4
	var newConns atomic.Int64
	var barrier sync.WaitGroup
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		barrier.Done()
		barrier.Wait() // all 32 in flight at once: 32 connections
		_, _ = w.Write([]byte("ok"))
	}))
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			newConns.Add(1)
		}
	}
	up.Start()
	t.Cleanup(up.Close)
	g := newGate(t, proxyDoc(up.URL))
	front := httptest.NewServer(g.h)
	t.Cleanup(front.Close)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc}}
	t.Cleanup(client.CloseIdleConnections)
	for round := 0; round < rounds; round++ {
		barrier.Add(conc)
		var wg sync.WaitGroup
		for i := 0; i < conc; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				res, err := client.Get(front.URL + "/health")
				if err != nil {
					t.Error(err)
					return
				}
				res.Body.Close()
				if res.StatusCode != 200 {
					t.Errorf("free route: %d", res.StatusCode)
				}
			}()
		}
		wg.Wait()
	}
	if got := newConns.Load(); got > conc+conc/4 {
		t.Fatalf("%d upstream connections opened for %d rounds of %d concurrent requests; want about %d (reused)", got, rounds, conc, conc)
	}
}
