package buy

import (
	"testing"
	"time"

	"github.com/obolstack/obol/internal/cli/cmdutil"
)

func TestNewCmdCreateParsesFlags(t *testing.T) {
	f, _ := cmdutil.NewTestFactory()
	f.Global.Namespace, f.Global.Output = "agents", "json"
	var got *CreateOptions
	cmd := NewCmdCreate(f, func(o *CreateOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"qwen", "--endpoint", "https://llm.example.com/q", "--model", "qwen3:8b", "--count", "50",
		"--key-file", "buyer.key", "--max-amount", "0.05", "--network", "base", "--max-total", "500",
		"--max-spend-per-day", "1.5", "--auto-refill", "--threshold", "5", "--refill-count", "20",
		"--valid-for", "1h", "--dry-run", "--dev-stack", ""})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got.Name != "qwen" || got.Endpoint != "https://llm.example.com/q" || got.Model != "qwen3:8b" || got.Count != 50 ||
		got.KeyFile != "buyer.key" || got.MaxAmount != "0.05" || got.Network != "base" || got.MaxTotal != 500 ||
		got.MaxSpendPerDay != "1.5" || !got.AutoRefill || got.Threshold != 5 || got.RefillCount != 20 ||
		got.ValidFor != time.Hour || !got.DryRun || got.DevStack != "" || got.Kube.Namespace != "agents" || got.Output != "json" ||
		got.PassphraseEnv != PassphraseEnvDefault {
		t.Errorf("options = %+v", got)
	}
}

func TestNewCmdCreateRefusesMissingInputs(t *testing.T) {
	for name, args := range map[string][]string{
		"no endpoint":   {"w", "--count", "1", "--max-amount", "0.01"},
		"count 0":       {"w", "--endpoint", "http://x", "--max-amount", "0.01"},
		"count > 2500":  {"w", "--endpoint", "http://x", "--count", "2501", "--max-amount", "0.01"},
		"no max-amount": {"w", "--endpoint", "http://x", "--count", "1"},
	} {
		f, _ := cmdutil.NewTestFactory()
		ran := false
		cmd := NewCmdCreate(f, func(*CreateOptions) error { ran = true; return nil })
		cmd.SetArgs(args)
		cmd.SilenceErrors, cmd.SilenceUsage = true, true
		if err := cmd.Execute(); err == nil || ran {
			t.Errorf("%s: err = %v, ran = %t", name, err, ran)
		}
	}
}

func TestNewCmdRefillParsesFlags(t *testing.T) {
	f, _ := cmdutil.NewTestFactory()
	f.Global.Namespace = "agents"
	var got *RefillOptions
	cmd := NewCmdRefill(f, func(o *RefillOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"weather", "--key-file", "buyer.key", "--count", "7", "--watch", "--interval", "30s", "--valid-for", "2h"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got.Name != "weather" || got.KeyFile != "buyer.key" || got.Count != 7 || !got.Watch || got.Interval != 30*time.Second ||
		got.ValidFor != 2*time.Hour || got.Kube.Namespace != "agents" {
		t.Errorf("options = %+v", got)
	}
}

func TestListStatusDeleteTakeTheClusterFlags(t *testing.T) {
	f, _ := cmdutil.NewTestFactory()
	f.Global.Namespace, f.Global.Output, f.Global.Context = "agents", "yaml", "kind-dev"
	var list *ListOptions
	var status *StatusOptions
	var del *DeleteOptions
	for _, run := range []func() error{
		func() error {
			cmd := NewCmdList(f, func(o *ListOptions) error { list = o; return nil })
			cmd.SetArgs(nil)
			return cmd.Execute()
		},
		func() error {
			cmd := NewCmdStatus(f, func(o *StatusOptions) error { status = o; return nil })
			cmd.SetArgs([]string{"weather"})
			return cmd.Execute()
		},
		func() error {
			cmd := NewCmdDelete(f, func(o *DeleteOptions) error { del = o; return nil })
			cmd.SetArgs([]string{"weather"})
			return cmd.Execute()
		},
	} {
		if err := run(); err != nil {
			t.Fatal(err)
		}
	}
	if list.Kube.Namespace != "agents" || list.Kube.Context != "kind-dev" || list.Output != "yaml" {
		t.Errorf("list = %+v", list)
	}
	if status.Name != "weather" || status.Kube.Namespace != "agents" || status.Output != "yaml" {
		t.Errorf("status = %+v", status)
	}
	if del.Name != "weather" || del.Kube.Namespace != "agents" {
		t.Errorf("delete = %+v", del)
	}
}
