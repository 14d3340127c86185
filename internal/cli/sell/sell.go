// Package sell implements `obol sell`: publish, inspect, pause, resume and
// delete ServiceOffers, the resources the obol controller turns into paid
// routes through the x402 verifier.
package sell

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/obolstack/obol/internal/cli/cmdutil"
	"github.com/obolstack/obol/internal/kube"
	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
)

// NewCmdSell returns the `obol sell` command group.
func NewCmdSell(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sell <command>",
		Short: "Sell access to an in-cluster API with x402 (ServiceOffers)",
		Long: `Sell access to a Service in your cluster. Each offer is a ServiceOffer
(obol.org/v1alpha1, short name "so"); the obol controller validates it,
publishes a route that sends buyers through the x402 verifier, and reports
its state as conditions.`,
		Example: `  obol sell create weather --upstream weather-api:8080 --price 0.001 \
    --chain base-sepolia --pay-to 0x70997970C51812dc3A010C7d01b50e0d17dc79C8
  obol sell list
  obol sell status weather
  obol sell pause weather
  obol sell resume weather
  obol sell delete weather --wait`,
	}
	cmd.AddCommand(
		NewCmdCreate(f, nil),
		NewCmdList(f, nil),
		NewCmdStatus(f, nil),
		NewCmdPause(f, nil),
		NewCmdResume(f, nil),
		NewCmdDelete(f, nil),
	)
	return cmd
}

// kubeOptions reads the global cluster flags at run time (after parsing).
func kubeOptions(f *cmdutil.Factory) kube.Options {
	return kube.Options{Kubeconfig: f.Global.Kubeconfig, Context: f.Global.Context, Namespace: f.Global.Namespace}
}

// connect returns a client and the namespace to work in.
func connect(k kube.Options) (client.Client, string, error) {
	ns, err := k.ResolveNamespace()
	if err != nil {
		return nil, "", err
	}
	c, err := k.Client()
	if err != nil {
		return nil, "", err
	}
	return c, ns, nil
}

// getOffer fetches one offer with a message that says what to do when it
// is not there.
func getOffer(ctx context.Context, c client.Client, ns, name string) (*v1alpha1.ServiceOffer, error) {
	var o v1alpha1.ServiceOffer
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &o); err != nil {
		return nil, describeErr(fmt.Sprintf("get ServiceOffer %s/%s", ns, name), err)
	}
	return &o, nil
}

// manifest renders an offer as a clean manifest (no empty status, no null
// creationTimestamp), with apiVersion and kind set.
func manifest(o *v1alpha1.ServiceOffer, keepStatus bool) (map[string]any, error) {
	cp := o.DeepCopy()
	cp.APIVersion = v1alpha1.GroupVersion.String()
	cp.Kind = "ServiceOffer"
	b, err := json.Marshal(cp)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if md, ok := m["metadata"].(map[string]any); ok {
		if md["creationTimestamp"] == nil {
			delete(md, "creationTimestamp")
		}
		delete(md, "managedFields")
	}
	if st, ok := m["status"].(map[string]any); !keepStatus || (ok && len(st) == 0) {
		delete(m, "status")
	}
	return m, nil
}

// pollInterval is how often --wait looks again.
var pollInterval = 500 * time.Millisecond
