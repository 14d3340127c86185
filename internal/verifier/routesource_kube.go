package verifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/kube"
	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
	"github.com/obolstack/obol/internal/offer"
)

// The kube route source: an informer on ServiceOffers turns every
// published, non-paused offer into a route, merged with the pricing file's
// global settings. Offers that pause, lose their route or disappear are
// dropped at the next apply, which prunes their metric series.

// KubeSourceName is the config source name the kube route source reports.
const KubeSourceName = "kube:serviceoffers"

// kubeSyncTimeout bounds the wait for the first list of ServiceOffers.
const kubeSyncTimeout = 60 * time.Second

// kubeDebounce groups bursts of informer events into one rebuild.
const kubeDebounce = 100 * time.Millisecond

// OfferUpstreamURL is where the verifier forwards an offer's paid
// requests: the upstream Service by its in-cluster DNS name.
func OfferUpstreamURL(o *v1alpha1.ServiceOffer) string {
	return fmt.Sprintf("http://%s.%s.svc:%d", o.Spec.Upstream.Service, o.UpstreamNamespace(), o.Spec.Upstream.Port)
}

type kubeSource struct {
	opts KubeSourceOptions
	log  *slog.Logger

	mu   sync.Mutex
	last string // JSON of the routes last applied
}

// NewKubeSource builds the route source that reads ServiceOffers.
func NewKubeSource(opts KubeSourceOptions) (RouteSource, error) {
	if opts.Globals == nil {
		return nil, errors.New("kube route source: the pricing file's global settings are required (--config)")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &kubeSource{opts: opts, log: log}, nil
}

// Start lists the ServiceOffers, applies the first config and keeps the
// sink current until ctx ends. With no published offer yet there is
// nothing to apply: Start returns nil and the verifier becomes ready when
// the first offer is published.
func (k *kubeSource) Start(ctx context.Context, sink ConfigSink) error {
	ko := kube.Options{Kubeconfig: k.opts.Kubeconfig, Context: k.opts.Context}
	cfg, err := ko.RESTConfig()
	if err != nil {
		return fmt.Errorf("kube route source: %w", err)
	}
	cfg.Timeout = 0 // watches are long-lived
	copts := cache.Options{Scheme: kube.Scheme()}
	if k.opts.Namespace != "" {
		copts.DefaultNamespaces = map[string]cache.Config{k.opts.Namespace: {}}
	}
	c, err := cache.New(cfg, copts)
	if err != nil {
		return fmt.Errorf("kube route source: %w", err)
	}
	inf, err := c.GetInformer(ctx, &v1alpha1.ServiceOffer{})
	if err != nil {
		return fmt.Errorf("kube route source: watch ServiceOffers (is the obol.org CRD installed?): %w", err)
	}
	changed := make(chan struct{}, 1)
	poke := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		UpdateFunc: func(any, any) { poke() },
		DeleteFunc: func(any) { poke() },
	}); err != nil {
		return fmt.Errorf("kube route source: %w", err)
	}
	go func() {
		if err := c.Start(ctx); err != nil {
			k.log.Error("ServiceOffer informer stopped", "err", err)
		}
	}()
	sctx, cancel := context.WithTimeout(ctx, kubeSyncTimeout)
	synced := c.WaitForCacheSync(sctx)
	cancel()
	if !synced {
		return fmt.Errorf("kube route source: ServiceOffers not listed within %s: check the verifier's RBAC (get/list/watch serviceoffers.obol.org) and the API server", kubeSyncTimeout)
	}

	if err := k.sync(ctx, c, sink, true); err != nil {
		return err
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-changed:
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(kubeDebounce):
			}
			select { // drain events that arrived while waiting
			case <-changed:
			default:
			}
			_ = k.sync(ctx, c, sink, false)
		}
	}()
	return nil
}

// sync rebuilds the config from the cached offers and applies it when the
// routes changed. first reports errors to the caller (Start).
func (k *kubeSource) sync(ctx context.Context, r client.Reader, sink ConfigSink, first bool) error {
	var list v1alpha1.ServiceOfferList
	if err := r.List(ctx, &list); err != nil {
		err = fmt.Errorf("kube route source: list ServiceOffers: %w", err)
		sink.ReportReloadFailure(err)
		return err
	}
	routes := k.routes(list.Items)
	b, _ := json.Marshal(routes)
	k.mu.Lock()
	same := string(b) == k.last
	k.mu.Unlock()
	if same && !first {
		return nil
	}
	if len(routes) == 0 {
		// No offer is served: apply an empty route list, so a deleted or
		// paused offer is never charged again and its series go.
		k.log.Info("no published ServiceOffers: serving no paid routes")
	}
	spec := k.opts.Globals.WithRoutes(KubeSourceName, routes)
	cfg, err := Compile(spec, k.opts.Registry, k.opts.Env)
	if err != nil {
		sink.ReportReloadFailure(err)
		return err
	}
	if err := sink.ApplyConfig(cfg); err != nil {
		sink.ReportReloadFailure(err)
		return err
	}
	k.mu.Lock()
	k.last = string(b)
	k.mu.Unlock()
	return nil
}

// routes turns the served offers into route specs, most specific path
// first. An offer whose route does not compile on its own is skipped (and
// logged) so one bad offer cannot take the others down; of two offers on
// the same path the older one wins.
func (k *kubeSource) routes(offers []v1alpha1.ServiceOffer) []RouteSpec {
	sort.Slice(offers, func(i, j int) bool {
		a, b := offers[i], offers[j]
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	taken := map[string]string{}
	var out []RouteSpec
	for i := range offers {
		o := &offers[i]
		if !Served(o) {
			continue
		}
		if _, err := offer.ValidateDiscovery(o.Spec.Discovery, o.Spec.Type); err != nil {
			k.log.Warn("ServiceOffer served without its discovery block", "offer", o.Namespace+"/"+o.Name, "err", strings.ReplaceAll(err.Error(), "\n", "; "))
		}
		rs, err := CompileOffer(k.opts.Globals, k.opts.Registry, k.opts.Env, o)
		if err != nil {
			k.log.Warn("ServiceOffer not served", "offer", o.Namespace+"/"+o.Name, "err", err)
			continue
		}
		if other, dup := taken[rs.Pattern]; dup {
			k.log.Warn("ServiceOffer not served: another offer has its path", "offer", o.Namespace+"/"+o.Name, "path", rs.Pattern, "other", other)
			continue
		}
		taken[rs.Pattern] = o.Namespace + "/" + o.Name
		out = append(out, rs)
	}
	sort.SliceStable(out, func(i, j int) bool {
		return len(splitPath(out[i].Pattern)) > len(splitPath(out[j].Pattern))
	})
	return out
}

// Served reports whether the verifier serves an offer: its route is
// published (condition RoutePublished=True), it is not paused, and it is
// not being deleted.
func Served(o *v1alpha1.ServiceOffer) bool {
	if o.IsPaused() || !o.DeletionTimestamp.IsZero() {
		return false
	}
	c := meta.FindStatusCondition(o.Status.Conditions, v1alpha1.ConditionRoutePublished)
	return c != nil && c.Status == metav1.ConditionTrue
}

// CompileOffer is the route spec the kube route source serves for an
// offer, checked as it checks every offer on its own: the offer's route,
// merged with globals, must compile.
func CompileOffer(globals *Spec, reg *evm.Registry, env Environment, o *v1alpha1.ServiceOffer) (RouteSpec, error) {
	rs, err := OfferRoute(reg, o)
	if err != nil {
		return RouteSpec{}, err
	}
	if _, err := Compile(globals.WithRoutes(KubeSourceName, []RouteSpec{rs}), reg, env); err != nil {
		return RouteSpec{}, fmt.Errorf("its route does not compile: %w", err)
	}
	return rs, nil
}

// OfferRoute is the route spec of one offer: its path and everything below
// it, charged per request on the offer's chain in the offer's asset,
// forwarded to the upstream Service with the path prefix stripped,
// labelled with the offer's namespace and name. The payment terms must
// pass offer.ValidatePayment, the rules the controller's payment gate
// applies, so the verifier never charges on terms the controller refuses;
// the route carries the terms as validated (chain, checksummed payTo,
// asset resolved from the registry).
func OfferRoute(reg *evm.Registry, o *v1alpha1.ServiceOffer) (RouteSpec, error) {
	if reg == nil {
		reg = evm.Default()
	}
	pay, err := offer.ValidatePayment(reg, o.Spec.Payment)
	if err != nil {
		return RouteSpec{}, fmt.Errorf("invalid payment terms: %s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	clean := path.Clean(o.EffectivePath())
	pattern := clean + "/*"
	if clean == "/" {
		pattern = "/*"
	}
	a := pay.Asset
	d := int(a.Decimals)
	// Discovery problems never stop the offer from being charged: it is
	// served with the defaults (and its public flag), and the kube source
	// logs the problem.
	disc, derr := offer.ValidateDiscovery(o.Spec.Discovery, o.Spec.Type)
	if derr != nil {
		disc, _ = offer.ValidateDiscovery(&v1alpha1.OfferDiscovery{Public: publicFlag(o)}, o.Spec.Type)
	}
	return RouteSpec{
		Pattern:     pattern,
		Price:       o.Spec.Payment.Price.PerRequest,
		Description: o.Spec.Description,
		PayTo:       pay.PayTo.Hex(),
		Network:     pay.Chain.CAIP2,
		Asset: &AssetSpec{Address: a.Address, Symbol: a.Symbol, Decimals: &d,
			EIP712Name: a.EIP712Name, EIP712Version: a.EIP712Version},
		Upstream:          OfferUpstreamURL(o),
		StripPrefix:       true,
		OfferNamespace:    o.Namespace,
		OfferName:         o.Name,
		MaxTimeoutSeconds: int(o.Spec.Payment.MaxTimeoutSeconds),
		Settle:            string(o.EffectiveSettle()),
		Discovery:         OfferDiscoverySpec(disc),
	}, nil
}

func publicFlag(o *v1alpha1.ServiceOffer) *bool {
	if o.Spec.Discovery == nil {
		return nil
	}
	return o.Spec.Discovery.Public
}
