package kube

import (
	"os"
	"path/filepath"
	"testing"

	"k8s.io/client-go/rest"
)

const kubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: a
  cluster: {server: "https://127.0.0.1:6443"}
- name: b
  cluster: {server: "https://127.0.0.1:7443"}
users:
- name: u
  user: {token: t}
contexts:
- name: one
  context: {cluster: a, user: u, namespace: shop}
- name: two
  context: {cluster: b, user: u}
current-context: one
`

func TestOptionsResolveKubeconfigContextNamespace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(path, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		opts     Options
		host, ns string
	}{
		{Options{Kubeconfig: path}, "https://127.0.0.1:6443", "shop"},
		{Options{Kubeconfig: path, Namespace: "other"}, "https://127.0.0.1:6443", "other"},
		{Options{Kubeconfig: path, Context: "two"}, "https://127.0.0.1:7443", "default"},
	} {
		cfg, err := tc.opts.RESTConfig()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Host != tc.host || cfg.Timeout != DefaultTimeout {
			t.Errorf("%+v: host %s timeout %s", tc.opts, cfg.Host, cfg.Timeout)
		}
		ns, err := tc.opts.ResolveNamespace()
		if err != nil || ns != tc.ns {
			t.Errorf("%+v: namespace %q %v, want %q", tc.opts, ns, err, tc.ns)
		}
	}
	if _, err := (Options{Kubeconfig: path, Context: "missing"}).RESTConfig(); err == nil {
		t.Error("unknown context: no error")
	}
	given := &rest.Config{Host: "https://given"}
	cfg, err := Options{Config: given}.RESTConfig()
	if err != nil || cfg.Host != "https://given" || cfg == given {
		t.Errorf("Config override: %v %v", cfg, err)
	}
	if s := Scheme(); !s.IsGroupRegistered("obol.org") || !s.IsGroupRegistered("") {
		t.Error("scheme lacks obol.org or core")
	}
}
