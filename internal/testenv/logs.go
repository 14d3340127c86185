package testenv

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
)

// Limits on what a log buffer keeps and what a failed test prints.
const (
	maxLogBytes     = 4 << 20
	failureLogLines = 400
)

// logBuffer collects a service's output, keeping the newest maxBytes bytes.
// Offsets count every byte ever written, so a test can ask for what was
// written since it started.
type logBuffer struct {
	mu       sync.Mutex
	buf      []byte
	dropped  int64 // bytes discarded from the front
	maxBytes int
}

func newLogBuffer(maxBytes int) *logBuffer {
	return &logBuffer{maxBytes: maxBytes}
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.maxBytes; over > 0 {
		// Drop whole lines where possible so output starts cleanly.
		if i := bytes.IndexByte(b.buf[over:], '\n'); i >= 0 && i < len(b.buf)-over-1 {
			over += i + 1
		}
		b.buf = append(b.buf[:0:0], b.buf[over:]...)
		b.dropped += int64(over)
	}
	return len(p), nil
}

// Mark returns the offset of the next byte to be written.
func (b *logBuffer) Mark() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dropped + int64(len(b.buf))
}

// Since returns what was written after mark (or all that is kept, when part
// of it has been discarded) and whether anything was discarded.
func (b *logBuffer) Since(mark int64) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	start := mark - b.dropped
	if start < 0 {
		return string(b.buf), true
	}
	if start > int64(len(b.buf)) {
		start = int64(len(b.buf))
	}
	return string(b.buf[start:]), false
}

// String returns everything kept.
func (b *logBuffer) String() string {
	s, _ := b.Since(0)
	return s
}

// prefixed returns a writer that copies whole lines into b, each starting
// with "name: ". A trailing partial line waits for its newline.
func (b *logBuffer) prefixed(name string) io.Writer {
	return &lineWriter{dst: b, prefix: name + ": "}
}

type lineWriter struct {
	mu      sync.Mutex
	dst     io.Writer
	prefix  string
	partial []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		line := make([]byte, 0, len(w.prefix)+i+1)
		line = append(line, w.prefix...)
		line = append(line, w.partial[:i+1]...)
		if _, err := w.dst.Write(line); err != nil {
			return 0, err
		}
		w.partial = w.partial[i+1:]
	}
	return len(p), nil
}

// lastLines returns at most n trailing lines of s and how many it left out.
func lastLines(s string, n int) (string, int) {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return "", 0
	}
	lines := strings.Split(s, "\n")
	if len(lines) <= n {
		return s, 0
	}
	return strings.Join(lines[len(lines)-n:], "\n"), len(lines) - n
}

// logOnFailure registers a cleanup that prints what the service logged
// while tb ran, when tb failed.
func logOnFailure(tb testing.TB, name string, b *logBuffer) {
	tb.Helper()
	mark := b.Mark()
	tb.Cleanup(func() {
		if !tb.Failed() {
			return
		}
		s, truncated := b.Since(mark)
		tail, omitted := lastLines(s, failureLogLines)
		var note []string
		if truncated {
			note = append(note, "older output discarded")
		}
		if omitted > 0 {
			note = append(note, fmt.Sprintf("%d earlier lines omitted", omitted))
		}
		head := fmt.Sprintf("----- %s log during %s", name, tb.Name())
		if len(note) > 0 {
			head += " (" + strings.Join(note, ", ") + ")"
		}
		if tail == "" {
			tail = "(nothing logged)"
		}
		tb.Logf("%s -----\n%s\n----- end of %s log -----", head, tail, name)
	})
}
