package kube

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
)

// ErrNoPrometheus means no Prometheus Service with a running pod was found.
var ErrNoPrometheus = errors.New("no Prometheus found in the cluster")

// PrometheusTarget is a Prometheus Service in the cluster and the pod behind
// it that a port-forward reaches.
type PrometheusTarget struct {
	Namespace string
	Service   string
	Pod       string
	// PodPort is the container port the Service's web port targets.
	PodPort int32
}

// Forward is the pod port a port-forward to this Prometheus reaches.
func (t PrometheusTarget) Forward() PodPort {
	return PodPort{Namespace: t.Namespace, Pod: t.Pod, Port: t.PodPort}
}

func (t PrometheusTarget) String() string {
	return fmt.Sprintf("service %s/%s (pod %s, port %d)", t.Namespace, t.Service, t.Pod, t.PodPort)
}

// promScore ranks a Service as a Prometheus candidate; 0 means it is not one.
// prometheus-operated (made by the operator) ranks first, then services
// labelled app.kubernetes.io/name=prometheus, then names like
// "<release>-prometheus"; the namespace "monitoring" breaks ties.
func promScore(s corev1.Service) int {
	n := s.Name
	for _, not := range []string{"alertmanager", "operator", "node-exporter", "kube-state-metrics", "pushgateway", "adapter", "blackbox"} {
		if strings.Contains(n, not) {
			return 0
		}
	}
	score := 0
	switch {
	case n == "prometheus-operated":
		score = 30
	case s.Labels["app.kubernetes.io/name"] == "prometheus":
		score = 20
	case n == "prometheus" || strings.HasSuffix(n, "-prometheus") || strings.HasSuffix(n, "-prometheus-server"):
		score = 10
	default:
		return 0
	}
	if s.Namespace == "monitoring" {
		score += 5
	}
	return score
}

// webPort picks the Service port Prometheus serves its API on: named "web"
// or "http-web", else port 9090, else the first.
func webPort(s corev1.Service) (corev1.ServicePort, bool) {
	if len(s.Spec.Ports) == 0 {
		return corev1.ServicePort{}, false
	}
	for _, p := range s.Spec.Ports {
		if p.Name == "web" || p.Name == "http-web" {
			return p, true
		}
	}
	for _, p := range s.Spec.Ports {
		if p.Port == 9090 {
			return p, true
		}
	}
	return s.Spec.Ports[0], true
}

// FindPrometheus looks through the Services of every namespace for the
// monitoring stack's Prometheus and a ready pod backing it.
func FindPrometheus(ctx context.Context, cs kubernetes.Interface) (PrometheusTarget, error) {
	svcs, err := cs.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return PrometheusTarget{}, fmt.Errorf("list services: %w", err)
	}
	var cands []corev1.Service
	for _, s := range svcs.Items {
		if promScore(s) > 0 {
			cands = append(cands, s)
		}
	}
	sort.SliceStable(cands, func(i, j int) bool {
		a, b := promScore(cands[i]), promScore(cands[j])
		if a != b {
			return a > b
		}
		return cands[i].Namespace+"/"+cands[i].Name < cands[j].Namespace+"/"+cands[j].Name
	})
	var tried []string
	for _, s := range cands {
		port, ok := webPort(s)
		if !ok || len(s.Spec.Selector) == 0 {
			continue
		}
		tried = append(tried, s.Namespace+"/"+s.Name)
		pods, err := cs.CoreV1().Pods(s.Namespace).List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(s.Spec.Selector).String()})
		if err != nil {
			return PrometheusTarget{}, fmt.Errorf("list pods of service %s/%s: %w", s.Namespace, s.Name, err)
		}
		sort.Slice(pods.Items, func(i, j int) bool { return pods.Items[i].Name < pods.Items[j].Name })
		for _, p := range pods.Items {
			if !podReady(p) {
				continue
			}
			if pp, ok := targetPort(port, p); ok {
				return PrometheusTarget{Namespace: s.Namespace, Service: s.Name, Pod: p.Name, PodPort: pp}, nil
			}
		}
	}
	if len(tried) > 0 {
		return PrometheusTarget{}, fmt.Errorf("%w: service(s) %s have no ready pod", ErrNoPrometheus, strings.Join(tried, ", "))
	}
	return PrometheusTarget{}, fmt.Errorf("%w: no service named prometheus-operated or *-prometheus, or labelled app.kubernetes.io/name=prometheus", ErrNoPrometheus)
}

func podReady(p corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// targetPort resolves the Service port's targetPort on pod p.
func targetPort(sp corev1.ServicePort, p corev1.Pod) (int32, bool) {
	switch {
	case sp.TargetPort.Type == intstr.String && sp.TargetPort.StrVal != "":
		for _, c := range p.Spec.Containers {
			for _, cp := range c.Ports {
				if cp.Name == sp.TargetPort.StrVal {
					return cp.ContainerPort, true
				}
			}
		}
		return 0, false
	case sp.TargetPort.IntVal != 0:
		return sp.TargetPort.IntVal, true
	}
	return sp.Port, true
}
