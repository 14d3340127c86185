//go:build tools

// Package tools pins the Kubernetes node and control-plane programs that
// hack/cluster.sh builds for the single-node test cluster (the API server
// itself comes from hack/tools/kube-apiserver).
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
