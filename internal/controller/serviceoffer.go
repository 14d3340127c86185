// Package controller holds the reconcilers of the obol.org resources.
//
// The ServiceOffer reconciler validates an offer's payment terms, resolves
// its upstream Service, publishes a Gateway API HTTPRoute that sends the
// offer's path to the x402 verifier, and reports what it found as
// conditions (UpstreamHealthy, PaymentGateReady, RoutePublished, Ready).
package controller

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
	"github.com/obolstack/obol/internal/offer"
)

// Defaults of the reconciler's timing.
const (
	DefaultAPITimeout           = 10 * time.Second
	DefaultGatewayMissingRetry  = time.Minute
	DefaultUpstreamMissingRetry = 30 * time.Second
	DefaultResync               = 10 * time.Minute
	DefaultHealthTimeout        = 3 * time.Second
)

// ServiceOfferReconciler reconciles ServiceOffers.
type ServiceOfferReconciler struct {
	Client   client.Client
	Scheme   *runtime.Scheme
	Registry *evm.Registry
	Route    RouteTarget

	// PublicBaseURL, when set, prefixes status.endpoint (e.g.
	// "https://obol.example.com"); otherwise the endpoint is the path.
	PublicBaseURL string

	// ProbeHealth makes UpstreamHealthy also require a 2xx from the
	// upstream's healthPath (in-cluster DNS), bounded by HealthTimeout.
	ProbeHealth   bool
	HealthTimeout time.Duration
	HTTPClient    *http.Client

	APITimeout           time.Duration // bound on each reconcile's API calls
	GatewayMissingRetry  time.Duration
	UpstreamMissingRetry time.Duration
	Resync               time.Duration
}

func (r *ServiceOfferReconciler) defaults() {
	if r.Registry == nil {
		r.Registry = evm.Default()
	}
	if r.APITimeout <= 0 {
		r.APITimeout = DefaultAPITimeout
	}
	if r.GatewayMissingRetry <= 0 {
		r.GatewayMissingRetry = DefaultGatewayMissingRetry
	}
	if r.UpstreamMissingRetry <= 0 {
		r.UpstreamMissingRetry = DefaultUpstreamMissingRetry
	}
	if r.Resync <= 0 {
		r.Resync = DefaultResync
	}
	if r.HealthTimeout <= 0 {
		r.HealthTimeout = DefaultHealthTimeout
	}
	if r.HTTPClient == nil {
		r.HTTPClient = &http.Client{Timeout: r.HealthTimeout}
	}
	if r.Scheme == nil {
		r.Scheme = r.Client.Scheme()
	}
}

// SetupWithManager registers the reconciler, watching ServiceOffers and the
// Services they sell. HTTPRoutes are not watched (the Gateway API may not
// be installed); the reconciler requeues instead.
func (r *ServiceOfferReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil {
		r.Client = mgr.GetClient()
	}
	r.defaults()
	// Index offers by their upstream Service, so a Service that appears,
	// changes or goes wakes exactly the offers that use it.
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.ServiceOffer{}, upstreamIndex,
		func(o client.Object) []string {
			so := o.(*v1alpha1.ServiceOffer)
			return []string{so.UpstreamNamespace() + "/" + so.Spec.Upstream.Service}
		}); err != nil {
		return fmt.Errorf("index ServiceOffers by upstream: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.ServiceOffer{}).
		Watches(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(r.offersForService)).
		Named("serviceoffer").
		Complete(r)
}

const upstreamIndex = "spec.upstream.namespacedName"

// offersForService maps a Service event to the offers whose upstream it is.
func (r *ServiceOfferReconciler) offersForService(ctx context.Context, svc client.Object) []reconcile.Request {
	var list v1alpha1.ServiceOfferList
	if err := r.Client.List(ctx, &list, client.MatchingFields{upstreamIndex: svc.GetNamespace() + "/" + svc.GetName()}); err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, o := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: o.Namespace, Name: o.Name}})
	}
	return out
}

// Reconcile brings one offer's route and status in line with its spec.
func (r *ServiceOfferReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	r.defaults()
	ctx, cancel := context.WithTimeout(ctx, r.APITimeout)
	defer cancel()
	log := ctrl.LoggerFrom(ctx)

	var offer v1alpha1.ServiceOffer
	if err := r.Client.Get(ctx, req.NamespacedName, &offer); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}

	if !offer.DeletionTimestamp.IsZero() {
		if !controllerutil.ContainsFinalizer(&offer, v1alpha1.RouteCleanupFinalizer) {
			return ctrl.Result{}, nil
		}
		if _, err := r.deleteRoute(ctx, &offer); err != nil {
			return ctrl.Result{}, fmt.Errorf("withdraw route of %s before deletion: %w", req, err)
		}
		controllerutil.RemoveFinalizer(&offer, v1alpha1.RouteCleanupFinalizer)
		if err := r.Client.Update(ctx, &offer); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
		log.Info("route withdrawn, offer released", "offer", req)
		return ctrl.Result{}, nil
	}

	if controllerutil.AddFinalizer(&offer, v1alpha1.RouteCleanupFinalizer) {
		if err := r.Client.Update(ctx, &offer); err != nil {
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
	}

	before := offer.Status.DeepCopy()
	gen := offer.Generation
	set := func(typ string, ok bool, reason, msg string) {
		st := metav1.ConditionFalse
		if ok {
			st = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&offer.Status.Conditions, metav1.Condition{
			Type: typ, Status: st, Reason: reason, Message: msg, ObservedGeneration: gen,
		})
	}
	result := ctrl.Result{RequeueAfter: r.Resync}
	requeueSooner := func(d time.Duration) {
		if d < result.RequeueAfter {
			result.RequeueAfter = d
		}
	}

	// Upstream.
	upOK, upReason, upMsg := r.checkUpstream(ctx, &offer)
	set(v1alpha1.ConditionUpstreamHealthy, upOK, upReason, upMsg)
	if !upOK {
		requeueSooner(r.UpstreamMissingRetry)
	}

	// Payment gate.
	paused := offer.IsPaused()
	pay, payErr := r.PaymentTerms(offer.Spec.Payment)
	switch {
	case paused:
		set(v1alpha1.ConditionPaymentGateReady, false, v1alpha1.ReasonPaused,
			"the offer is paused (annotation obol.org/paused=true); remove it or run `obol sell resume` to charge again")
	case payErr != nil:
		set(v1alpha1.ConditionPaymentGateReady, false, v1alpha1.ReasonInvalidPayment, oneLine(payErr))
	default:
		set(v1alpha1.ConditionPaymentGateReady, true, v1alpha1.ReasonPaymentValid, describePayment(pay))
	}

	// Route: published only when the gate can charge (fail closed).
	var apiErr error
	switch {
	case paused:
		missing, err := r.deleteRoute(ctx, &offer)
		if err != nil {
			apiErr = err
			set(v1alpha1.ConditionRoutePublished, false, v1alpha1.ReasonRouteError, "withdraw route: "+oneLine(err))
		} else {
			msg := "route withdrawn while the offer is paused"
			if missing {
				msg += " (the Gateway API is not installed)"
			}
			set(v1alpha1.ConditionRoutePublished, false, v1alpha1.ReasonPaused, msg)
		}
	case payErr != nil:
		if _, err := r.deleteRoute(ctx, &offer); err != nil {
			apiErr = err
		}
		set(v1alpha1.ConditionRoutePublished, false, v1alpha1.ReasonInvalidPayment, "no route while the payment terms are invalid")
	default:
		missing, err := r.applyRoute(ctx, &offer)
		switch {
		case missing:
			set(v1alpha1.ConditionRoutePublished, false, v1alpha1.ReasonGatewayAPIMissing,
				"the Gateway API CRDs (gateway.networking.k8s.io/v1 HTTPRoute) are not installed in the cluster; install them and the route is published on the next retry")
			requeueSooner(r.GatewayMissingRetry)
		case err != nil:
			apiErr = err
			set(v1alpha1.ConditionRoutePublished, false, v1alpha1.ReasonRouteError, oneLine(err))
		default:
			set(v1alpha1.ConditionRoutePublished, true, v1alpha1.ReasonRoutePublished,
				fmt.Sprintf("HTTPRoute %s/%s sends %s to %s", offer.Namespace, RouteName(&offer), offer.EffectivePath(), r.verifierDesc(&offer)))
		}
	}

	// Ready.
	var notReady []string
	for _, t := range []string{v1alpha1.ConditionUpstreamHealthy, v1alpha1.ConditionPaymentGateReady, v1alpha1.ConditionRoutePublished} {
		if c := meta.FindStatusCondition(offer.Status.Conditions, t); c == nil || c.Status != metav1.ConditionTrue {
			reason := ""
			if c != nil {
				reason = " (" + c.Reason + ")"
			}
			notReady = append(notReady, t+reason)
		}
	}
	if len(notReady) == 0 {
		set(v1alpha1.ConditionReady, true, v1alpha1.ReasonReady, "buyers can pay for and reach "+offer.EffectivePath())
	} else {
		reason := v1alpha1.ReasonNotReady
		if paused {
			reason = v1alpha1.ReasonPaused
		}
		set(v1alpha1.ConditionReady, false, reason, "not ready: "+strings.Join(notReady, ", "))
	}

	offer.Status.Endpoint = strings.TrimRight(r.PublicBaseURL, "/") + offer.EffectivePath()
	offer.Status.ObservedGeneration = gen

	if !equality.Semantic.DeepEqual(before, &offer.Status) {
		if err := r.Client.Status().Update(ctx, &offer); err != nil {
			if apierrors.IsConflict(err) {
				return ctrl.Result{Requeue: true}, nil
			}
			return ctrl.Result{}, client.IgnoreNotFound(err)
		}
	}
	if apiErr != nil {
		return ctrl.Result{}, apiErr
	}
	return result, nil
}

func (r *ServiceOfferReconciler) verifierDesc(o *v1alpha1.ServiceOffer) string {
	ns := r.Route.VerifierNamespace
	if ns == "" {
		ns = o.Namespace
	}
	return fmt.Sprintf("Service %s/%s:%d", ns, r.Route.VerifierService, r.Route.VerifierPort)
}

func (r *ServiceOfferReconciler) checkUpstream(ctx context.Context, o *v1alpha1.ServiceOffer) (bool, string, string) {
	up := o.Spec.Upstream
	ns := o.UpstreamNamespace()
	var svc corev1.Service
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: up.Service}, &svc); err != nil {
		if apierrors.IsNotFound(err) {
			return false, v1alpha1.ReasonUpstreamNotFound, fmt.Sprintf("Service %s/%s not found; create it or fix spec.upstream", ns, up.Service)
		}
		return false, v1alpha1.ReasonUpstreamNotFound, fmt.Sprintf("get Service %s/%s: %s", ns, up.Service, oneLine(err))
	}
	found := false
	var ports []string
	for _, p := range svc.Spec.Ports {
		ports = append(ports, fmt.Sprint(p.Port))
		if p.Port == up.Port {
			found = true
		}
	}
	if !found {
		return false, v1alpha1.ReasonUpstreamPortMissing, fmt.Sprintf("Service %s/%s has no port %d (ports: %s)", ns, up.Service, up.Port, strings.Join(ports, ", "))
	}
	if r.ProbeHealth && up.HealthPath != "" {
		url := fmt.Sprintf("http://%s.%s.svc:%d%s", up.Service, ns, up.Port, up.HealthPath)
		pctx, cancel := context.WithTimeout(ctx, r.HealthTimeout)
		defer cancel()
		req, err := http.NewRequestWithContext(pctx, http.MethodGet, url, nil)
		if err == nil {
			var resp *http.Response
			resp, err = r.HTTPClient.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode >= 300 {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
		}
		if err != nil {
			return false, "HealthCheckFailed", fmt.Sprintf("GET %s: %s", url, oneLine(err))
		}
	}
	return true, v1alpha1.ReasonUpstreamFound, fmt.Sprintf("Service %s/%s port %d", ns, up.Service, up.Port)
}

// applyRoute creates or updates the offer's HTTPRoute. missing reports
// that the Gateway API is not installed.
func (r *ServiceOfferReconciler) applyRoute(ctx context.Context, o *v1alpha1.ServiceOffer) (missing bool, err error) {
	want := BuildHTTPRoute(o, r.Route)
	if err := controllerutil.SetControllerReference(o, want, r.Scheme); err != nil {
		return false, fmt.Errorf("own route: %w", err)
	}
	got := &unstructured.Unstructured{}
	got.SetGroupVersionKind(HTTPRouteGVK)
	err = r.Client.Get(ctx, client.ObjectKeyFromObject(want), got)
	switch {
	case isNoKind(err):
		return true, nil
	case apierrors.IsNotFound(err):
		if err := r.Client.Create(ctx, want); err != nil {
			if isNoKind(err) {
				return true, nil
			}
			return false, fmt.Errorf("create HTTPRoute %s/%s: %w", want.GetNamespace(), want.GetName(), err)
		}
		return false, r.ensureReferenceGrant(ctx, o)
	case err != nil:
		return false, fmt.Errorf("get HTTPRoute %s/%s: %w", want.GetNamespace(), want.GetName(), err)
	}
	if !(equality.Semantic.DeepEqual(got.Object["spec"], want.Object["spec"]) &&
		equality.Semantic.DeepEqual(got.GetLabels(), want.GetLabels()) &&
		equality.Semantic.DeepEqual(got.GetOwnerReferences(), want.GetOwnerReferences())) {
		want.SetResourceVersion(got.GetResourceVersion())
		if err := r.Client.Update(ctx, want); err != nil {
			return false, fmt.Errorf("update HTTPRoute %s/%s: %w", want.GetNamespace(), want.GetName(), err)
		}
	}
	return false, r.ensureReferenceGrant(ctx, o)
}

// ensureReferenceGrant lets routes in the offer's namespace reference the
// verifier Service in its own namespace (the Gateway API refuses
// cross-namespace backends without one). Namespaces are only added: a
// stale entry grants no more than the verifier Service itself.
func (r *ServiceOfferReconciler) ensureReferenceGrant(ctx context.Context, o *v1alpha1.ServiceOffer) error {
	vns := r.Route.VerifierNamespace
	if vns == "" || vns == o.Namespace {
		return nil
	}
	got := &unstructured.Unstructured{}
	got.SetGroupVersionKind(ReferenceGrantGVK)
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: vns, Name: ReferenceGrantName}, got)
	switch {
	case isNoKind(err):
		return nil // a Gateway API without ReferenceGrant: nothing to grant
	case apierrors.IsNotFound(err):
		g := BuildReferenceGrant(r.Route, []string{o.Namespace})
		if err := r.Client.Create(ctx, g); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create ReferenceGrant %s/%s: %w", vns, ReferenceGrantName, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("get ReferenceGrant %s/%s: %w", vns, ReferenceGrantName, err)
	}
	nss := referenceGrantFrom(got)
	for _, ns := range nss {
		if ns == o.Namespace {
			return nil
		}
	}
	nss = append(nss, o.Namespace)
	sort.Strings(nss)
	want := BuildReferenceGrant(r.Route, nss)
	want.SetResourceVersion(got.GetResourceVersion())
	if err := r.Client.Update(ctx, want); err != nil {
		return fmt.Errorf("update ReferenceGrant %s/%s: %w", vns, ReferenceGrantName, err)
	}
	return nil
}

// deleteRoute removes the offer's HTTPRoute if it exists. missing reports
// that the Gateway API is not installed (so nothing can be published).
func (r *ServiceOfferReconciler) deleteRoute(ctx context.Context, o *v1alpha1.ServiceOffer) (missing bool, err error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(HTTPRouteGVK)
	u.SetNamespace(o.Namespace)
	u.SetName(RouteName(o))
	err = r.Client.Delete(ctx, u)
	switch {
	case err == nil, apierrors.IsNotFound(err):
		return false, nil
	case isNoKind(err):
		return true, nil
	}
	return false, fmt.Errorf("delete HTTPRoute %s/%s: %w", o.Namespace, RouteName(o), err)
}

func isNoKind(err error) bool {
	if err == nil {
		return false
	}
	if meta.IsNoMatchError(err) {
		return true
	}
	var d *meta.NoKindMatchError
	return errors.As(err, &d)
}

func describePayment(p *offer.Payment) string {
	price := ""
	if p.PerRequest != nil {
		price = evm.FormatAmount(p.PerRequest, uint8(p.Asset.Decimals)) + " " + p.Asset.Symbol + " per request"
	} else if p.PerMTok != nil {
		price = evm.FormatAmount(p.PerMTok, uint8(p.Asset.Decimals)) + " " + p.Asset.Symbol + " per million tokens"
	} else if p.PerHour != nil {
		price = evm.FormatAmount(p.PerHour, uint8(p.Asset.Decimals)) + " " + p.Asset.Symbol + " per hour"
	}
	return fmt.Sprintf("%s on %s (%s) to %s", price, p.Chain.Name, p.Chain.CAIP2, p.PayTo.Hex())
}

func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}
