package stack

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/obolstack/obol/internal/buyer/proxy"
)

// checkBuyerWatch runs the buyer's ConfigMap source as the chart's buyer
// ServiceAccount (impersonated) against the installed release: its Role
// lets it read and watch its upstream ConfigMap, and nothing else, and a
// write by the controller reaches it within seconds.
func checkBuyerWatch(t *testing.T, cs *kubernetes.Clientset, ns string) {
	cfg := rest.CopyConfig(kube.Config)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: "system:serviceaccount:" + ns + ":obol-buyer",
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
	}
	as, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	const cmName = "obol-buyer-upstreams"
	other := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "not-the-buyers", Namespace: ns}}
	if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx(t), other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := as.CoreV1().ConfigMaps(ns).Get(ctx(t), other.Name, metav1.GetOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the buyer read another ConfigMap: err = %v, want forbidden", err)
	}
	if _, err := as.CoreV1().ConfigMaps(ns).List(ctx(t), metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the buyer listed every ConfigMap: err = %v, want forbidden", err)
	}

	src := &proxy.ConfigMapSource{Client: as, Namespace: ns, Name: cmName}
	if c, err := src.Load(); err != nil || len(c.Upstreams) != 0 {
		t.Fatalf("before the controller writes it: %v upstreams, err %v; want none and no error", c, err)
	}
	got := make(chan *proxy.Config, 10)
	bad := make(chan error, 10)
	wctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src.Watch(wctx, func(c *proxy.Config, err error) {
		if err != nil {
			bad <- err
			return
		}
		got <- c
	})
	upstream := `{"name":"weather","endpoint":"http://seller.example/weather","network":"base-sepolia",
"payTo":"0x2222222222222222222222222222222222222222","asset":"0x036CbD53842c5426634e7929541eC2318f3dCF7e","price":"1000","preSignedAuths":[]}`
	start := time.Now()
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: cmName, Namespace: ns}, Data: map[string]string{"default.weather.json": upstream}}
	if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx(t), cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-got:
		if len(c.Upstreams) != 1 || c.Upstreams[0].Name != "weather" {
			t.Fatalf("watch delivered %+v, want the upstream weather", c.Upstreams)
		}
		t.Logf("the buyer saw the new upstream %s after the write", time.Since(start).Round(time.Millisecond))
	case err := <-bad:
		t.Fatalf("watch: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the buyer did not see its ConfigMap within 10s of the write")
	}
	if c, err := src.Load(); err != nil || len(c.Upstreams) != 1 {
		t.Errorf("Load after the write: %v, %v", c, err)
	}
	// An invalid change is reported, not applied.
	cm.Data["broken.json"] = `{"name":"x"}`
	if _, err := cs.CoreV1().ConfigMaps(ns).Update(ctx(t), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-bad:
		if !strings.Contains(err.Error(), "broken.json") {
			t.Errorf("invalid upstream error does not name the key: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("an invalid ConfigMap was not reported within 10s")
	}
	if err := cs.CoreV1().ConfigMaps(ns).Delete(ctx(t), cmName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case c := <-got:
			if len(c.Upstreams) == 0 {
				return
			}
		case <-deadline:
			t.Fatal("deleting the ConfigMap did not empty the buyer's configuration within 10s")
		}
	}
}
