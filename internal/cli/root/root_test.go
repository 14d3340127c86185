package root

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/obolstack/obol/internal/cli/cmdutil"
)

func run(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = Main(args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestUnknownCommandSuggestsClosest(t *testing.T) {
	code, _, stderr := run("versoin")
	if code == 0 {
		t.Fatalf("exit code 0, want non-zero")
	}
	for _, want := range []string{`unknown command "versoin"`, "Did you mean this?", "version"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func TestUnknownCommandListsCommands(t *testing.T) {
	code, stdout, stderr := run("frobnicate")
	if code == 0 {
		t.Fatalf("exit code 0, want non-zero")
	}
	if stdout != "" {
		t.Errorf("stdout = %q, want nothing (errors go to stderr)", stdout)
	}
	for _, want := range []string{`unknown command "frobnicate"`, "Available commands:", "version", "obol --help"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func TestUnknownSubcommandOfAGroupFails(t *testing.T) {
	code, stdout, stderr := run("buy", "py", "http://127.0.0.1:1/")
	if code == 0 {
		t.Fatalf("exit code 0, want non-zero; stdout:\n%s", stdout)
	}
	if stdout != "" {
		t.Errorf("stdout = %q, want nothing (errors go to stderr)", stdout)
	}
	for _, want := range []string{`unknown command "py" for "obol buy"`, "Did you mean this?", "\tpay", "Available commands: create", "obol buy --help"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "earnings") {
		t.Errorf("stderr lists the root's commands for a group's unknown subcommand:\n%s", stderr)
	}

	code, stdout, _ = run("buy")
	if code != 0 || !strings.Contains(stdout, "Available Commands:") {
		t.Errorf("obol buy alone: exit %d, want 0 and its help on stdout:\n%s", code, stdout)
	}
}

func TestVersionJSON(t *testing.T) {
	code, stdout, stderr := run("version", "-o", "json")
	if code != 0 {
		t.Fatalf("exit code %d, stderr:\n%s", code, stderr)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
	}
	for _, k := range []string{"version", "commit", "buildDate", "goVersion", "platform"} {
		if got[k] == "" {
			t.Errorf("JSON field %q is empty: %s", k, stdout)
		}
	}
}

func TestInvalidOutputFormat(t *testing.T) {
	code, _, stderr := run("version", "-o", "xml")
	if code == 0 || !strings.Contains(stderr, `invalid --output "xml"`) {
		t.Errorf("code %d, stderr %q; want non-zero and a message naming --output", code, stderr)
	}
}

func TestInvalidLogLevel(t *testing.T) {
	code, _, stderr := run("version", "--log-level", "loud")
	if code == 0 || !strings.Contains(stderr, `invalid --log-level "loud"`) {
		t.Errorf("code %d, stderr %q; want non-zero and a message naming --log-level", code, stderr)
	}
}

func TestUnknownFlagExitsWithUsageCode(t *testing.T) {
	code, _, stderr := run("version", "--frobnicate")
	if code != 2 {
		t.Errorf("exit code %d, want 2", code)
	}
	if !strings.Contains(stderr, "unknown flag: --frobnicate") || !strings.Contains(stderr, "--help") {
		t.Errorf("stderr %q; want the flag named and a pointer to --help", stderr)
	}
}

func TestGlobalFlagsParsed(t *testing.T) {
	f, _ := cmdutil.NewTestFactory()
	cmd := NewCmdRoot(f)
	cmd.SetArgs([]string{"--kubeconfig", "/tmp/kc", "--context", "lab", "-n", "shop", "-o", "yaml", "--log-level", "debug", "version"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	want := cmdutil.GlobalOptions{Kubeconfig: "/tmp/kc", Context: "lab", Namespace: "shop", Output: "yaml", LogLevel: "debug"}
	if *f.Global != want {
		t.Errorf("global options = %+v, want %+v", *f.Global, want)
	}
	if !f.Logger.Enabled(t.Context(), slog.LevelDebug) {
		t.Errorf("--log-level debug did not enable debug logging")
	}
}

func TestGlobalFlagDefaults(t *testing.T) {
	f, _ := cmdutil.NewTestFactory()
	*f.Global = cmdutil.GlobalOptions{}
	cmd := NewCmdRoot(f)
	cmd.SetArgs([]string{"version"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if f.Global.Output != cmdutil.OutputTable || f.Global.LogLevel != "info" {
		t.Errorf("defaults: output %q, log level %q; want table, info", f.Global.Output, f.Global.LogLevel)
	}
}

func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		code, stdout, stderr := run("completion", shell)
		if code != 0 || !strings.Contains(stdout, "obol") {
			t.Errorf("completion %s: code %d, %d bytes out, stderr %q", shell, code, len(stdout), stderr)
		}
	}
	if code, _, stderr := run("completion", "tcsh"); code == 0 || !strings.Contains(stderr, "tcsh") {
		t.Errorf("completion tcsh: code %d, stderr %q; want an error naming tcsh", code, stderr)
	}
}

func TestMissingArgumentExitsWithUsageCode(t *testing.T) {
	code, _, stderr := run("buy", "pay")
	if code != 2 || !strings.Contains(stderr, "arg(s)") || !strings.Contains(stderr, "--help") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
}
