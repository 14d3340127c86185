package cmdutil

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/obolstack/obol/internal/testenv/wait"
)

// Asked to stop, Serve stops accepting at once, lets the running request
// finish, and returns nil; a request still running at the deadline makes
// it return an error.
func TestServeDrainsRunningRequests(t *testing.T) {
	for _, tc := range []struct {
		name    string
		grace   time.Duration
		wantErr bool
	}{{"finishes", time.Minute, false}, {"deadline", 50 * time.Millisecond, true}} {
		t.Run(tc.name, func(t *testing.T) {
			started, release := make(chan struct{}), make(chan struct{})
			hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				close(started)
				<-release
				_, _ = io.WriteString(w, "done")
			})}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			ctx, cancel := context.WithCancel(context.Background())
			served := make(chan error, 1)
			go func() { served <- Serve(ctx, hs, ln, tc.grace, nil) }()
			type answer struct {
				body string
				err  error
			}
			answered := make(chan answer, 1)
			go func() {
				resp, err := http.Get("http://" + addr)
				if err != nil {
					answered <- answer{err: err}
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				answered <- answer{body: string(b)}
			}()
			<-started
			cancel()
			// New connections are refused once shutdown began.
			wait.For(t, 10*time.Second, "the listener to refuse new connections", func() error {
				c, err := net.DialTimeout("tcp", addr, time.Second)
				if err != nil {
					return nil
				}
				c.Close()
				return errors.New("still accepting connections")
			})
			if tc.wantErr {
				err := <-served
				close(release)
				if err == nil || !strings.Contains(err.Error(), "cut off") {
					t.Fatalf("Serve = %v, want an error saying requests were cut off", err)
				}
				return
			}
			close(release)
			if a := <-answered; a.err != nil || a.body != "done" {
				t.Fatalf("the running request got %q, %v; want it to finish", a.body, a.err)
			}
			if err := <-served; err != nil {
				t.Fatalf("Serve = %v", err)
			}
		})
	}
}
