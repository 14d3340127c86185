// Command pause is the sandbox ("pause") container of the test cluster that
// hack/cluster.sh runs: it holds a pod's namespaces open and does nothing
// until it is told to stop. No registry is reachable here, so the harness
// builds this instead of pulling registry.k8s.io/pause.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
