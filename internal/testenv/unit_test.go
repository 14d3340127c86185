package testenv

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestLogBufferKeepsNewestWholeLines(t *testing.T) {
	b := newLogBuffer(64)
	w := b.prefixed("svc")
	mark := b.Mark()
	for i := range 20 {
		fmt.Fprintf(w, "line %02d\n", i)
	}
	s, truncated := b.Since(mark)
	if !truncated {
		t.Errorf("Since(start) after overflow: truncated = false, want true")
	}
	if len(s) > 64 || !strings.HasPrefix(s, "svc: line") || !strings.HasSuffix(s, "svc: line 19\n") {
		t.Errorf("kept %q, want whole newest lines under 64 bytes", s)
	}

	mark = b.Mark()
	fmt.Fprint(w, "partial")
	if s, _ := b.Since(mark); s != "" {
		t.Errorf("a line without newline was written early: %q", s)
	}
	fmt.Fprint(w, " done\nnext\n")
	if s, truncated := b.Since(mark); s != "svc: partial done\nsvc: next\n" || truncated {
		t.Errorf("Since(mark) = %q, %v", s, truncated)
	}
}

func TestLastLines(t *testing.T) {
	got, omitted := lastLines("a\nb\nc\n", 2)
	if got != "b\nc" || omitted != 1 {
		t.Errorf("lastLines = %q, %d", got, omitted)
	}
	if got, omitted := lastLines("", 2); got != "" || omitted != 0 {
		t.Errorf("lastLines(empty) = %q, %d", got, omitted)
	}
}

// recorder records what SkipOrFail does without stopping the test.
type recorder struct {
	testing.TB
	skipped, failed bool
	msg             string
}

func (r *recorder) Helper()           {}
func (r *recorder) Skip(args ...any)  { r.skipped, r.msg = true, fmt.Sprint(args...) }
func (r *recorder) Fatal(args ...any) { r.failed, r.msg = true, fmt.Sprint(args...) }
func (r *recorder) Fatalf(f string, args ...any) {
	r.failed, r.msg = true, fmt.Sprintf(f, args...)
}

func skipOrFail(err error) *recorder {
	r := &recorder{}
	SkipOrFail(r, err)
	return r
}

func TestSkipOrFail(t *testing.T) {
	missing := fmt.Errorf("start: %w", &MissingError{Binary: "kube-apiserver", Where: "no executable at /x"})

	t.Setenv("CI", "")
	if r := skipOrFail(nil); r.skipped || r.failed {
		t.Errorf("nil error: skipped=%v failed=%v", r.skipped, r.failed)
	}
	if r := skipOrFail(missing); !r.skipped || !strings.Contains(r.msg, "make test-deps") {
		t.Errorf("missing binary outside CI: skipped=%v msg=%q, want a skip naming make test-deps", r.skipped, r.msg)
	}
	if r := skipOrFail(errors.New("boom")); !r.failed || r.skipped {
		t.Errorf("other error: failed=%v skipped=%v, want a failure", r.failed, r.skipped)
	}

	t.Setenv("CI", "true")
	if r := skipOrFail(missing); !r.failed || r.skipped || !strings.Contains(r.msg, "kube-apiserver") {
		t.Errorf("missing binary under CI=true: failed=%v skipped=%v msg=%q, want a failure", r.failed, r.skipped, r.msg)
	}
}

func TestKubeBinariesMissing(t *testing.T) {
	t.Setenv("KUBEBUILDER_ASSETS", t.TempDir())
	t.Setenv("TEST_ASSET_KUBE_APISERVER", "")
	_, err := StartKube()
	var missing *MissingError
	if !errors.As(err, &missing) || missing.Binary != "kube-apiserver" {
		t.Fatalf("StartKube with an empty assets dir: %v, want a *MissingError for kube-apiserver", err)
	}
}
