package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/obolstack/obol/internal/buyer/buyertest"
	"github.com/obolstack/obol/internal/x402"
)

// A paid, streamed chat completion (SSE) streams through the proxy: the
// caller reads the first event while the seller is still generating, and
// the settlement is recorded before the body arrives.
func TestStreamedCompletionStreamsThroughTheProxy(t *testing.T) {
	t.Parallel()
	s, _ := buyertest.New(t, x402.Version2, buyertest.USDCBaseSepolia("1000", seller))
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(x402.HeaderPaymentSignature) == "" {
			s.ServeHTTP(w, r)
			return
		}
		// Settle through the test seller, then stream instead of its body.
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, r)
		w.Header().Set(x402.HeaderPaymentResponse, rec.Header().Get(x402.HeaderPaymentResponse))
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\n\n")
		w.(http.Flusher).Flush()
		<-release // the model is still generating
		fmt.Fprint(w, "data: {\"choices\":[{\"delta\":{\"content\":\"lo\"}}]}\n\ndata: [DONE]\n\n")
	}))
	defer srv.Close()
	defer unblock()
	dir := t.TempDir()
	writePool(t, dir, "chat", srv.URL, 1, func(u *UpstreamConfig) { u.RemoteModel, u.Models = "qwen3", []string{"qwen3"} })
	p := newProxy(t, dir, Options{})
	front := httptest.NewServer(p.Handler())
	defer front.Close()

	start := time.Now()
	type head struct {
		resp  *http.Response
		br    *bufio.Reader
		first string
		err   error
	}
	got := make(chan head, 1)
	go func() {
		resp, err := http.Post(front.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{"model":"qwen3","stream":true,"messages":[]}`))
		if err != nil {
			got <- head{err: err}
			return
		}
		br := bufio.NewReader(resp.Body)
		l, err := br.ReadString('\n')
		got <- head{resp, br, l, err}
	}()
	var h head
	select {
	case h = <-got:
	case <-time.After(10 * time.Second):
		unblock()
		t.Fatal("the first event did not arrive while the seller was still generating: the proxy buffers the stream")
	}
	if h.err != nil {
		t.Fatal(h.err)
	}
	resp, br := h.resp, h.br
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get(x402.HeaderPaymentResponse) == "" || !strings.Contains(h.first, "Hel") {
		t.Fatalf("status %d, settlement header %q, first line %q", resp.StatusCode, resp.Header.Get(x402.HeaderPaymentResponse), h.first)
	}
	t.Logf("time to first event through the proxy: %s", time.Since(start))
	if taken, settled, _ := p.opts.State.Counts("chat"); taken != 1 || settled != 1 {
		t.Fatalf("state before the body ended: taken %d settled %d; want the settlement recorded", taken, settled)
	}
	unblock()
	rest, _ := io.ReadAll(br)
	if !strings.Contains(string(rest), "[DONE]") {
		t.Fatalf("rest of the stream: %q", rest)
	}
}
