package earnings

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/obolstack/obol/internal/kube"
	"github.com/obolstack/obol/internal/testenv"
)

// Discovery against a real kube-apiserver: nothing found says what to do;
// the operator's prometheus-operated Service with a ready pod is found. The
// API server has no kubelets, so the port-forward itself must fail — with a
// message naming the target and the flags.
func TestDiscoverRealAPIServer(t *testing.T) {
	t.Parallel()
	k, err := testenv.StartKube()
	testenv.SkipOrFail(t, err)
	defer k.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	opts, _ := testOpts(t)
	opts.Kubeconfig = k.Kubeconfig
	err = earningsRun(ctx, opts)
	if err == nil || !strings.Contains(err.Error(), "no Prometheus found") || !strings.Contains(err.Error(), "pass --prometheus URL or --metrics-url URL") {
		t.Fatalf("empty cluster: err = %v", err)
	}

	cs, err := kubernetes.NewForConfig(k.Config)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "monitoring"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sel := map[string]string{"app.kubernetes.io/name": "prometheus"}
	if _, err := cs.CoreV1().Services("monitoring").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "prometheus-operated"},
		Spec: corev1.ServiceSpec{Selector: sel, Ports: []corev1.ServicePort{
			{Name: "web", Port: 9090, TargetPort: intstr.FromString("web")}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod, err := cs.CoreV1().Pods("monitoring").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "prometheus-monitoring-0", Labels: sel},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "prometheus", Image: "prom/prometheus",
			Ports: []corev1.ContainerPort{{Name: "web", ContainerPort: 9090}}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod.Status.Phase = corev1.PodRunning
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	if _, err := cs.CoreV1().Pods("monitoring").UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	got, err := kube.FindPrometheus(ctx, cs)
	if err != nil {
		t.Fatal(err)
	}
	want := kube.PrometheusTarget{Namespace: "monitoring", Service: "prometheus-operated", Pod: "prometheus-monitoring-0", PodPort: 9090}
	if got != want {
		t.Fatalf("found %+v, want %+v", got, want)
	}

	err = earningsRun(ctx, opts)
	if err == nil || !strings.Contains(err.Error(), "port-forward to service monitoring/prometheus-operated") || !strings.Contains(err.Error(), "pass --prometheus URL or --metrics-url URL") {
		t.Fatalf("port-forward without kubelet: err = %v", err)
	}
	t.Logf("without a kubelet: %v", err)
}
