package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// K8sVersion is the Kubernetes version `make test-deps` builds.
const K8sVersion = "1.37.2"

// KubeAssetsDir is where kube-apiserver, etcd and kubectl are looked for:
// $KUBEBUILDER_ASSETS when set, otherwise the directory `make test-deps`
// fills, $OBOL_CACHE (default ~/.cache/obol)/testbin/k8s-<K8sVersion>.
func KubeAssetsDir() string {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d
	}
	cache := os.Getenv("OBOL_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = os.TempDir()
		}
		cache = filepath.Join(home, ".cache", "obol")
	}
	return filepath.Join(cache, "testbin", "k8s-"+K8sVersion)
}

// Kube is a running kube-apiserver with its etcd.
type Kube struct {
	// Config reaches the API server as a cluster admin.
	Config *rest.Config
	// Client is a controller-runtime client built on Config and Scheme.
	Client client.Client
	// Scheme knows the client-go types, apiextensions/v1 and whatever
	// WithScheme added.
	Scheme *runtime.Scheme
	// Kubeconfig is the path of a kubeconfig file for Config, for code that
	// takes --kubeconfig. It is removed by Stop.
	Kubeconfig string
	// Env is the underlying envtest environment (e.g. for AddUser).
	Env *envtest.Environment

	logs   *logBuffer
	tmpDir string
}

type kubeOptions struct {
	crdPaths []string
	scheme   *runtime.Scheme
	timeout  time.Duration
}

// KubeOption configures StartKube.
type KubeOption func(*kubeOptions)

// WithCRDs installs the CustomResourceDefinitions in the given YAML/JSON
// files or directories before StartKube returns. A path that does not
// exist is an error.
func WithCRDs(paths ...string) KubeOption {
	return func(o *kubeOptions) { o.crdPaths = append(o.crdPaths, paths...) }
}

// WithScheme makes the client use s (add your API types to it). The
// client-go and apiextensions/v1 types are added to it as well.
func WithScheme(s *runtime.Scheme) KubeOption {
	return func(o *kubeOptions) { o.scheme = s }
}

// WithStartTimeout bounds how long etcd and kube-apiserver each may take to
// start (default 60s: shared CI machines are slow).
func WithStartTimeout(d time.Duration) KubeOption {
	return func(o *kubeOptions) { o.timeout = d }
}

// StartKube starts etcd and kube-apiserver from KubeAssetsDir, installs the
// requested CRDs and returns once the API server serves requests. It needs
// no *testing.T, so TestMain can call it once per package; hand the error
// to SkipOrFail in each test. A missing binary is a *MissingError. Call
// Stop when done (Stop on a nil *Kube does nothing).
func StartKube(opts ...KubeOption) (*Kube, error) {
	o := kubeOptions{timeout: 60 * time.Second}
	for _, opt := range opts {
		opt(&o)
	}
	apiServer, etcd, kubectl, err := kubeBinaries()
	if err != nil {
		return nil, err
	}
	scheme := o.scheme
	if scheme == nil {
		scheme = runtime.NewScheme()
	}
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("testenv: build scheme: %w", err)
	}
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("testenv: build scheme: %w", err)
	}

	k := &Kube{Scheme: scheme, logs: newLogBuffer(maxLogBytes)}
	env := &envtest.Environment{
		Scheme:                scheme,
		CRDDirectoryPaths:     o.crdPaths,
		ErrorIfCRDPathMissing: true,
	}
	if os.Getenv("KUBEBUILDER_CONTROLPLANE_START_TIMEOUT") == "" {
		env.ControlPlaneStartTimeout = o.timeout
	}
	as := env.ControlPlane.GetAPIServer()
	as.Path = apiServer
	as.Out, as.Err = k.logs.prefixed("kube-apiserver"), k.logs.prefixed("kube-apiserver")
	env.ControlPlane.Etcd = &envtest.Etcd{Path: etcd, Out: k.logs.prefixed("etcd"), Err: k.logs.prefixed("etcd")}
	env.ControlPlane.KubectlPath = kubectl
	k.Env = env

	cfg, err := env.Start()
	if err != nil {
		_ = env.Stop()
		tail, _ := lastLines(k.logs.String(), 60)
		return nil, fmt.Errorf("testenv: start kube-apiserver and etcd: %w\n--- last log lines ---\n%s", err, tail)
	}
	k.Config = cfg
	if k.Client, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		k.Stop()
		return nil, fmt.Errorf("testenv: kubernetes client: %w", err)
	}
	if k.tmpDir, err = os.MkdirTemp("", "obol-testenv-kube-"); err == nil {
		k.Kubeconfig = filepath.Join(k.tmpDir, "kubeconfig")
		err = os.WriteFile(k.Kubeconfig, env.KubeConfig, 0o600)
	}
	if err != nil {
		k.Stop()
		return nil, fmt.Errorf("testenv: write kubeconfig: %w", err)
	}
	return k, nil
}

// kubeBinaries resolves the binaries envtest runs. The per-binary
// overrides envtest knows (TEST_ASSET_KUBE_APISERVER, TEST_ASSET_ETCD,
// TEST_ASSET_KUBECTL) win; etcd and kubectl fall back to PATH.
func kubeBinaries() (apiServer, etcd, kubectl string, err error) {
	dir := KubeAssetsDir()
	find := func(name string, required bool) (string, error) {
		env := "TEST_ASSET_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
		if p := os.Getenv(env); p != "" {
			return executable(name, p)
		}
		if p, err := executable(name, filepath.Join(dir, name)); err == nil {
			return p, nil
		}
		if name != "kube-apiserver" {
			if p, err := lookPath(name); err == nil {
				return p, nil
			}
		}
		if !required {
			return "", nil
		}
		where := "looked in " + dir + " (KUBEBUILDER_ASSETS)"
		if name != "kube-apiserver" {
			where += " and on PATH"
		}
		return "", &MissingError{Binary: name, Where: where}
	}
	if apiServer, err = find("kube-apiserver", true); err != nil {
		return "", "", "", err
	}
	if etcd, err = find("etcd", true); err != nil {
		return "", "", "", err
	}
	kubectl, _ = find("kubectl", false)
	return apiServer, etcd, kubectl, nil
}

// Stop stops kube-apiserver and etcd and removes the kubeconfig file.
func (k *Kube) Stop() {
	if k == nil {
		return
	}
	if k.Env != nil {
		if err := k.Env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "testenv: stop kube-apiserver: %v\n", err)
		}
	}
	if k.tmpDir != "" {
		_ = os.RemoveAll(k.tmpDir)
	}
}

// LogOnFailure prints what kube-apiserver and etcd logged during tb when tb
// fails.
func (k *Kube) LogOnFailure(tb testing.TB) {
	tb.Helper()
	logOnFailure(tb, "kube-apiserver/etcd", k.logs)
}

// Logs returns the kept output of kube-apiserver and etcd.
func (k *Kube) Logs() string { return k.logs.String() }

var nonDNS = regexp.MustCompile(`[^a-z0-9-]+`)

// NewNamespace creates a namespace named after the test (plus a random
// suffix) and deletes it when the test ends. Tests sharing one API server
// stay apart by working in their own namespace.
func (k *Kube) NewNamespace(tb testing.TB) string {
	tb.Helper()
	base := strings.Trim(nonDNS.ReplaceAllString(strings.ToLower(tb.Name()), "-"), "-")
	if len(base) > 40 {
		base = strings.Trim(base[:40], "-")
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	name := base + "-" + hex.EncodeToString(b[:])
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := k.Client.Create(ctx, ns); err != nil {
		tb.Fatalf("create namespace %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := k.Client.Delete(ctx, ns); err != nil && !apierrors.IsNotFound(err) {
			tb.Errorf("delete namespace %s: %v", name, err)
		}
	})
	return name
}
