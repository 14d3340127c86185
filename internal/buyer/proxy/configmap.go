package proxy

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/obolstack/obol/internal/evm"
)

// ConfigMapSource reads the upstream files from one ConfigMap through the
// Kubernetes API (the keys are the file names). Unlike the same ConfigMap
// mounted as a volume, which the kubelet refreshes a minute or more after a
// change, a watch sees the controller's write within a second.
//
// It needs get, list and watch on that ConfigMap only (a Role with
// resourceNames: list and watch are asked with a metadata.name field
// selector). A missing ConfigMap is an empty configuration.
type ConfigMapSource struct {
	Client    kubernetes.Interface
	Namespace string
	Name      string
	Registry  *evm.Registry // nil: evm.Default()
	// Timeout bounds one GET (default 10s).
	Timeout time.Duration
}

func (c *ConfigMapSource) where() string { return "configmap " + c.Namespace + "/" + c.Name }

func (c *ConfigMapSource) registry() *evm.Registry {
	if c.Registry == nil {
		return evm.Default()
	}
	return c.Registry
}

// Load reads the ConfigMap now (Options.Load).
func (c *ConfigMapSource) Load() (*Config, error) {
	t := c.Timeout
	if t <= 0 {
		t = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), t)
	defer cancel()
	cm, err := c.Client.CoreV1().ConfigMaps(c.Namespace).Get(ctx, c.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return &Config{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", c.where(), err)
	}
	return LoadData(c.where(), cm.Data, c.registry())
}

// Watch calls apply with the configuration each time the ConfigMap is
// created, changed or deleted (deleted: an empty configuration), and with
// the error when its data is invalid, until ctx ends. It returns once the
// first list is done (or ctx ended).
func (c *ConfigMapSource) Watch(ctx context.Context, apply func(*Config, error)) {
	sel := fields.OneTermEqualSelector("metadata.name", c.Name).String()
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel
			return c.Client.CoreV1().ConfigMaps(c.Namespace).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel
			return c.Client.CoreV1().ConfigMaps(c.Namespace).Watch(ctx, o)
		},
	}
	inf := cache.NewSharedIndexInformer(lw, &corev1.ConfigMap{}, 0, cache.Indexers{})
	load := func(obj any) {
		cm, ok := obj.(*corev1.ConfigMap)
		if !ok || cm.Name != c.Name {
			return
		}
		apply(LoadData(c.where(), cm.Data, c.registry()))
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    load,
		UpdateFunc: func(_, obj any) { load(obj) },
		DeleteFunc: func(any) { apply(&Config{}, nil) },
	})
	go inf.RunWithContext(ctx)
	cache.WaitForCacheSync(ctx.Done(), inf.HasSynced)
}
