package kube

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
)

// PodPort is a container port of one pod.
type PodPort struct {
	Namespace string
	Pod       string
	Port      int32
}

func (p PodPort) String() string {
	return fmt.Sprintf("pod %s/%s port %d", p.Namespace, p.Pod, p.Port)
}

// PortForward forwards a free local port on 127.0.0.1 to the pod's port and
// returns the local base URL and a function that stops the forward. The
// forwarder's own complaints go to errOut (nil discards them).
func PortForward(ctx context.Context, cfg *rest.Config, p PodPort, errOut io.Writer) (string, func(), error) {
	rt, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		return "", nil, err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", nil, err
	}
	u := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(p.Namespace).Name(p.Pod).SubResource("portforward").URL()
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, u)
	stopCh, readyCh := make(chan struct{}), make(chan struct{})
	if errOut == nil {
		errOut = io.Discard
	}
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", p.Port)}, stopCh, readyCh, io.Discard, errOut)
	if err != nil {
		return "", nil, err
	}
	errCh := make(chan error, 1)
	go func() { errCh <- fw.ForwardPorts() }()
	var once sync.Once
	stop := func() { once.Do(func() { close(stopCh) }) }
	select {
	case <-readyCh:
	case err := <-errCh:
		stop()
		return "", nil, fmt.Errorf("%w (is the pod running on a node, and may you create pods/portforward?)", err)
	case <-ctx.Done():
		stop()
		return "", nil, ctx.Err()
	}
	ports, err := fw.GetPorts()
	if err != nil || len(ports) == 0 {
		stop()
		return "", nil, fmt.Errorf("no local port: %v", err)
	}
	return fmt.Sprintf("http://127.0.0.1:%d", ports[0].Local), stop, nil
}
