package testenv

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// ChromiumBinary is the headless browser tests load pages in: Debian's
// chromium package, installed by `make test-deps`.
const ChromiumBinary = "chromium"

// ChromiumTimeout bounds one page load in HeadlessDOM.
const ChromiumTimeout = 90 * time.Second

// HeadlessDOM loads url in headless Chromium and returns the document as
// the browser built it (--dump-dom). Chromium runs with a temporary
// profile and home, without sandbox when the tests run as root, and is
// stopped by its process group when it has not finished within
// ChromiumTimeout (it waits forever on a page that failed to load). A
// missing chromium skips or fails the test (see SkipOrFail).
func HeadlessDOM(tb testing.TB, url string) string {
	tb.Helper()
	bin, err := lookPath(ChromiumBinary)
	SkipOrFail(tb, err)
	dir := tb.TempDir()
	args := []string{
		"--headless", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
		"--disable-breakpad", "--disable-extensions", "--disable-sync",
		"--disable-background-networking", "--disable-component-update",
		"--user-data-dir=" + filepath.Join(dir, "profile"),
	}
	if os.Geteuid() == 0 {
		args = append(args, "--no-sandbox") // the sandbox refuses to run as root
	}
	args = append(args, "--dump-dom", url)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "XDG_CACHE_HOME="+filepath.Join(dir, "cache"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = groupProcAttr()
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", bin, err)
	}
	pid := cmd.Process.Pid
	// Renderer and utility processes may outlive the browser process.
	tb.Cleanup(func() { killGroup(pid) })
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timer := time.NewTimer(ChromiumTimeout)
	defer timer.Stop()
	select {
	case err = <-done:
	case <-timer.C:
		killGroup(pid)
		<-done
		tb.Fatalf("chromium did not finish loading %s within %s (pid %d stopped); its log:\n%s", url, ChromiumTimeout, pid, tail(stderr.Bytes(), 4096))
	}
	if err != nil {
		tb.Fatalf("chromium --dump-dom %s: %v; its log:\n%s", url, err, tail(stderr.Bytes(), 4096))
	}
	if stdout.Len() == 0 {
		tb.Fatalf("chromium --dump-dom %s printed nothing; its log:\n%s", url, tail(stderr.Bytes(), 4096))
	}
	return stdout.String()
}

// tail is the last n bytes of b.
func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
