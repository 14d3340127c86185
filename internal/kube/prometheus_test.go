package kube

import (
	"context"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"
)

func svc(ns, name string, lbl map[string]string, port corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: lbl},
		Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": name}, Ports: []corev1.ServicePort{port}},
	}
}

func pod(ns, name, app string, ready bool, ports ...corev1.ContainerPort) *corev1.Pod {
	st := corev1.ConditionFalse
	if ready {
		st = corev1.ConditionTrue
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": app}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "prometheus", Ports: ports}}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: st}}},
	}
}

func TestFindPrometheusPrefersOperatedInMonitoring(t *testing.T) {
	web := corev1.ServicePort{Name: "web", Port: 9090, TargetPort: intstr.FromString("web")}
	cs := fake.NewClientset(
		svc("monitoring", "monitoring-kube-prometheus-prometheus", nil, web),
		svc("monitoring", "prometheus-operated", nil, web),
		svc("other", "prometheus-operated", nil, web),
		svc("monitoring", "monitoring-kube-prometheus-alertmanager", nil, web),
		pod("monitoring", "prometheus-0", "prometheus-operated", true, corev1.ContainerPort{Name: "web", ContainerPort: 9091}),
		pod("other", "prometheus-0", "prometheus-operated", true, corev1.ContainerPort{Name: "web", ContainerPort: 9090}),
	)
	got, err := FindPrometheus(context.Background(), cs)
	if err != nil {
		t.Fatal(err)
	}
	want := PrometheusTarget{Namespace: "monitoring", Service: "prometheus-operated", Pod: "prometheus-0", PodPort: 9091}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestFindPrometheusByLabelSkipsUnreadyPods(t *testing.T) {
	cs := fake.NewClientset(
		svc("obs", "metrics-server", map[string]string{"app.kubernetes.io/name": "prometheus"},
			corev1.ServicePort{Name: "http", Port: 80, TargetPort: intstr.FromInt32(9090)}),
		pod("obs", "a-unready", "metrics-server", false),
		pod("obs", "b-ready", "metrics-server", true),
	)
	got, err := FindPrometheus(context.Background(), cs)
	if err != nil {
		t.Fatal(err)
	}
	if got.Pod != "b-ready" || got.PodPort != 9090 || got.Service != "metrics-server" {
		t.Fatalf("got %+v", got)
	}
}

func TestFindPrometheusNothing(t *testing.T) {
	cs := fake.NewClientset(svc("default", "kubernetes", nil, corev1.ServicePort{Port: 443}))
	_, err := FindPrometheus(context.Background(), cs)
	if !errors.Is(err, ErrNoPrometheus) {
		t.Fatalf("err = %v", err)
	}
	cs = fake.NewClientset(svc("monitoring", "prometheus-operated", nil, corev1.ServicePort{Name: "web", Port: 9090}))
	_, err = FindPrometheus(context.Background(), cs)
	if !errors.Is(err, ErrNoPrometheus) || !strings.Contains(err.Error(), "no ready pod") {
		t.Fatalf("err = %v", err)
	}
}
