package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// FixTarget is the make target that installs every binary this package runs.
const FixTarget = "make test-deps"

// MissingError reports a service binary that is not installed.
type MissingError struct {
	// Binary is the program's name, e.g. "kube-apiserver".
	Binary string
	// Where says where it was looked for.
	Where string
	// Fix is the command that provides it; empty means FixTarget.
	Fix string
}

func (e *MissingError) Error() string {
	fix := e.Fix
	if fix == "" {
		fix = FixTarget
	}
	return fmt.Sprintf("%s not found (%s): run `%s` to install it", e.Binary, e.Where, fix)
}

// InCI reports whether the tests run in CI (the CI environment variable is
// true), where a missing binary must fail the run instead of skipping.
func InCI() bool {
	v, err := strconv.ParseBool(os.Getenv("CI"))
	return err == nil && v
}

// SkipOrFail does nothing when err is nil. A *MissingError skips the test
// outside CI and fails it under CI=true; any other error fails the test.
// Use it with errors from StartKube and other helpers that run before a
// *testing.T exists (TestMain).
func SkipOrFail(tb testing.TB, err error) {
	tb.Helper()
	if err == nil {
		return
	}
	var missing *MissingError
	if errors.As(err, &missing) {
		if InCI() {
			tb.Fatalf("CI=true and a test service is missing: %v", err)
			return
		}
		tb.Skip(err.Error())
		return
	}
	tb.Fatal(err)
}

// lookPath finds name on PATH or returns a *MissingError.
func lookPath(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err != nil {
		return "", &MissingError{Binary: name, Where: "not on PATH"}
	}
	return p, nil
}

// executable returns path when it is an executable file, otherwise a
// *MissingError.
func executable(name, path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return "", &MissingError{Binary: name, Where: "no executable at " + path}
	}
	return path, nil
}

// Promtool returns the path of the promtool binary, skipping or failing the
// test (see SkipOrFail) when it is not installed.
func Promtool(tb testing.TB) string {
	tb.Helper()
	p, err := lookPath("promtool")
	SkipOrFail(tb, err)
	return p
}
