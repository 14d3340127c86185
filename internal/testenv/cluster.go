package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// ClusterFixTarget starts the real single-node cluster (hack/cluster.sh up).
const ClusterFixTarget = "make cluster-up"

// DefaultClusterDir is where hack/cluster.sh keeps the cluster's state
// when OBOL_CLUSTER_DIR is not set.
const DefaultClusterDir = "/var/lib/obol-cluster"

// ClusterKubeconfigPath is the kubeconfig of the cluster `make cluster-up`
// starts: $OBOL_CLUSTER_KUBECONFIG when set, else
// $OBOL_CLUSTER_DIR/kubeconfig (default /var/lib/obol-cluster/kubeconfig).
func ClusterKubeconfigPath() string {
	if p := os.Getenv("OBOL_CLUSTER_KUBECONFIG"); p != "" {
		return p
	}
	dir := os.Getenv("OBOL_CLUSTER_DIR")
	if dir == "" {
		dir = DefaultClusterDir
	}
	return filepath.Join(dir, "kubeconfig")
}

// RealCluster is a running single-node Kubernetes cluster with a kubelet,
// so pods run (unlike Kube, which has an API server only).
type RealCluster struct {
	// Kubeconfig is the path of a cluster-admin kubeconfig file.
	Kubeconfig string
	// Config reaches the API server as a cluster admin.
	Config *rest.Config
	// Clientset is a client-go clientset on Config.
	Clientset kubernetes.Interface
}

// ConnectCluster connects to the cluster `make cluster-up` started and
// checks that it answers. No kubeconfig is a *MissingError (skip outside
// CI, fail under CI=true, with SkipOrFail); a kubeconfig whose cluster does
// not answer within 10s is a plain error.
func ConnectCluster() (*RealCluster, error) {
	path := ClusterKubeconfigPath()
	if _, err := os.Stat(path); err != nil {
		return nil, &MissingError{Binary: "test cluster kubeconfig", Where: "no file at " + path, Fix: ClusterFixTarget}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("testenv: load cluster kubeconfig %s: %w", path, err)
	}
	cfg.Timeout = 10 * time.Second
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("testenv: cluster client: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx); err != nil {
		return nil, fmt.Errorf("testenv: the cluster of %s does not answer (is it up? %s): %w", path, ClusterFixTarget, err)
	}
	cfg.Timeout = 0
	if cs, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, fmt.Errorf("testenv: cluster client: %w", err)
	}
	return &RealCluster{Kubeconfig: path, Config: cfg, Clientset: cs}, nil
}

// Cluster connects to the running test cluster, skipping the test when
// there is none (failing under CI=true; see SkipOrFail).
func Cluster(tb testing.TB) *RealCluster {
	tb.Helper()
	c, err := ConnectCluster()
	SkipOrFail(tb, err)
	return c
}
