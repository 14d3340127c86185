// Package kube turns the global --kubeconfig, --context and -n/--namespace
// flags into a Kubernetes REST config, a namespace and clients that know the
// obol.org types. Every command that talks to a cluster uses it, so they
// all resolve kubeconfig, context and namespace the same way:
//
//	k := kube.Options{Kubeconfig: g.Kubeconfig, Context: g.Context, Namespace: g.Namespace}
//	c, err := k.Client()      // controller-runtime client (core + obol.org types)
//	ns, err := k.ResolveNamespace()
//
// Precedence follows kubectl: --kubeconfig, else $KUBECONFIG, else
// ~/.kube/config (or the in-cluster service account when none exists);
// -n, else the context's namespace, else "default".
//
// It also finds things in a cluster (FindPrometheus) and reaches a pod's
// port from this machine (PortForward).
package kube

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
)

// DefaultTimeout bounds each request a CLI client makes.
const DefaultTimeout = 30 * time.Second

// Options selects a cluster and namespace. The zero value means kubectl's
// defaults.
type Options struct {
	Kubeconfig string // path; "" = $KUBECONFIG or ~/.kube/config
	Context    string // "" = the kubeconfig's current context
	Namespace  string // "" = the context's namespace, else "default"

	// Config, when set, is used as is instead of loading a kubeconfig
	// (tests hand in the envtest config here).
	Config *rest.Config
}

// ClientConfig returns the merged kubeconfig with the overrides applied.
func (o Options) ClientConfig() clientcmd.ClientConfig {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if o.Kubeconfig != "" {
		rules.ExplicitPath = o.Kubeconfig
	}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: o.Context}
	if o.Namespace != "" {
		overrides.Context.Namespace = o.Namespace
	}
	return clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
}

// RESTConfig returns the REST config of the selected cluster, with
// DefaultTimeout per request unless the kubeconfig sets one.
func (o Options) RESTConfig() (*rest.Config, error) {
	if o.Config != nil {
		return rest.CopyConfig(o.Config), nil
	}
	cfg, err := o.ClientConfig().ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w (pass --kubeconfig/--context, or set KUBECONFIG)", err)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	return cfg, nil
}

// ResolveNamespace returns -n, else the context's namespace, else "default".
func (o Options) ResolveNamespace() (string, error) {
	if o.Namespace != "" {
		return o.Namespace, nil
	}
	if o.Config != nil {
		return "default", nil
	}
	ns, _, err := o.ClientConfig().Namespace()
	if err != nil {
		// No kubeconfig at all: the namespace still has a sensible default;
		// RESTConfig reports the real problem when a client is needed.
		return "default", nil //nolint:nilerr
	}
	if ns == "" {
		ns = "default"
	}
	return ns, nil
}

// Scheme returns a scheme with the built-in Kubernetes types and obol.org/v1alpha1.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err) // static registration; cannot fail
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// Client returns a controller-runtime client for the selected cluster that
// knows the built-in types and obol.org/v1alpha1 (and reads any other kind
// as unstructured).
func (o Options) Client() (client.Client, error) {
	cfg, err := o.RESTConfig()
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: Scheme()})
	if err != nil {
		return nil, fmt.Errorf("connect to the cluster at %s: %w", cfg.Host, err)
	}
	return c, nil
}
