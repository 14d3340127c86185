package facilitator

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/obolstack/obol/internal/testenv/wait"
)

// checkGoroutines fails the test when, after cleanup, goroutines run that
// did not run before it started (waiting a while for those on their way
// out). Register it first so its cleanup runs last. A test that uses it
// must not be parallel: other tests' goroutines would count as leaked.
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := wait.RunningGoroutines()
	t.Cleanup(func() { wait.NoNewGoroutines(t, 5*time.Second, before, 0) })
}

// rpcProxy is a TCP proxy in front of a JSON-RPC endpoint that can be
// switched to "down" (the port is closed) or "hang" (connections are
// accepted and never answered).
type rpcProxy struct {
	target string
	ln     net.Listener
	addr   string

	mu    sync.Mutex
	mode  string // forward, hang, down
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func newRPCProxy(t *testing.T, target string) *rpcProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &rpcProxy{target: target, ln: ln, addr: ln.Addr().String(), mode: "forward", conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *rpcProxy) URL() string { return "http://" + p.addr }

func (p *rpcProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		mode := p.mode
		p.conns[c] = true
		p.mu.Unlock()
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.drop(c)
			if mode == "hang" {
				_, _ = io.Copy(io.Discard, c) // read, never answer, until closed
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns[up] = true
			p.mu.Unlock()
			defer p.drop(up)
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
			go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
			<-done
			c.Close()
			up.Close()
			<-done
		}()
	}
}

func (p *rpcProxy) drop(c net.Conn) {
	c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

func (p *rpcProxy) closeConns() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

// hang makes every new connection hang and cuts the existing ones.
func (p *rpcProxy) hang() {
	p.mu.Lock()
	p.mode = "hang"
	p.mu.Unlock()
	p.closeConns()
}

// down closes the port and cuts every connection.
func (p *rpcProxy) down() {
	p.ln.Close()
	p.closeConns()
}

func (p *rpcProxy) close() {
	p.down()
	p.wg.Wait()
}

// fakeRPC is a JSON-RPC endpoint for unit tests that need no chain: it
// answers eth_chainId, eth_getCode and eth_call from its fields.
type fakeRPC struct {
	chainID string // hex
	code    string // hex
	call    func(params json.RawMessage) (result any, rpcErr map[string]any)
	mu      sync.Mutex
	methods []string
}

func (f *fakeRPC) serve(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
		}
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(bytes.TrimSpace(body), &req); err != nil {
			http.Error(w, "batch not supported", http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.methods = append(f.methods, req.Method)
		f.mu.Unlock()
		resp := map[string]any{"jsonrpc": "2.0", "id": req.ID}
		switch req.Method {
		case "eth_chainId":
			resp["result"] = f.chainID
		case "eth_getCode":
			resp["result"] = f.code
		case "eth_call":
			if f.call == nil {
				resp["result"] = "0x"
				break
			}
			res, e := f.call(req.Params)
			if e != nil {
				resp["error"] = e
			} else {
				resp["result"] = res
			}
		default:
			resp["error"] = map[string]any{"code": -32601, "message": "method " + req.Method + " not supported by the fake"}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(resp)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func (f *fakeRPC) calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.methods...)
}

func postJSON(t *testing.T, url string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	res, err := http.Post(url, "application/json", rd)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	return res.StatusCode, out
}
