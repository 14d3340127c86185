package testenv

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestConnectClusterWithoutKubeconfigIsMissing(t *testing.T) {
	t.Setenv("OBOL_CLUSTER_KUBECONFIG", "")
	t.Setenv("OBOL_CLUSTER_DIR", t.TempDir())
	_, err := ConnectCluster()
	var missing *MissingError
	if !errors.As(err, &missing) {
		t.Fatalf("ConnectCluster() error = %v, want a *MissingError", err)
	}
	if !strings.Contains(err.Error(), ClusterFixTarget) {
		t.Errorf("error %q does not name %q", err, ClusterFixTarget)
	}
}

func TestClusterKubeconfigPath(t *testing.T) {
	t.Setenv("OBOL_CLUSTER_KUBECONFIG", "")
	t.Setenv("OBOL_CLUSTER_DIR", "")
	if got, want := ClusterKubeconfigPath(), filepath.Join(DefaultClusterDir, "kubeconfig"); got != want {
		t.Errorf("default path = %s, want %s", got, want)
	}
	t.Setenv("OBOL_CLUSTER_DIR", "/x")
	if got := ClusterKubeconfigPath(); got != "/x/kubeconfig" {
		t.Errorf("with OBOL_CLUSTER_DIR=/x: %s", got)
	}
	t.Setenv("OBOL_CLUSTER_KUBECONFIG", "/y/kc")
	if got := ClusterKubeconfigPath(); got != "/y/kc" {
		t.Errorf("with OBOL_CLUSTER_KUBECONFIG: %s", got)
	}
}
