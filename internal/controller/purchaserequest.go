package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/obolstack/obol/internal/buyer/proxy"
	"github.com/obolstack/obol/internal/evm"
	"github.com/obolstack/obol/internal/monetizeapi/v1alpha1"
	"github.com/obolstack/obol/internal/purchase"
)

// BuyerCleanupFinalizer keeps a PurchaseRequest until its upstream is gone
// from the buyer's configuration.
const BuyerCleanupFinalizer = "obol.org/buyer-cleanup"

// Defaults of the PurchaseRequest reconciler.
const (
	DefaultBuyerConfigMap = "obol-buyer-upstreams"
	DefaultProbeInterval  = 5 * time.Minute
	DefaultBuyerTimeout   = 5 * time.Second
)

// PurchaseRequestReconciler turns PurchaseRequests into the buyer proxy's
// upstream configuration (one ConfigMap key per request, mounted as the
// proxy's --config-dir), probes each seller's price, and reports the pool's
// counts from the proxy's /status.
type PurchaseRequestReconciler struct {
	Client   client.Client
	Registry *evm.Registry

	// BuyerNamespace and BuyerConfigMap name the ConfigMap the proxy mounts.
	BuyerNamespace string
	BuyerConfigMap string
	// BuyerURL is the proxy's base URL (http://obol-buyer.NS.svc:8402);
	// "" skips reload and counts.
	BuyerURL string

	HTTPClient    *http.Client
	ProbeInterval time.Duration
	Resync        time.Duration
	APITimeout    time.Duration
	Now           func() time.Time
}

func (r *PurchaseRequestReconciler) defaults() {
	if r.Registry == nil {
		r.Registry = evm.Default()
	}
	if r.BuyerConfigMap == "" {
		r.BuyerConfigMap = DefaultBuyerConfigMap
	}
	if r.HTTPClient == nil {
		r.HTTPClient = &http.Client{Timeout: DefaultBuyerTimeout}
	}
	if r.ProbeInterval <= 0 {
		r.ProbeInterval = DefaultProbeInterval
	}
	if r.Resync <= 0 {
		r.Resync = 30 * time.Second
	}
	if r.APITimeout <= 0 {
		r.APITimeout = DefaultAPITimeout
	}
	if r.Now == nil {
		r.Now = time.Now
	}
}

// SetupWithManager registers the reconciler.
func (r *PurchaseRequestReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Client == nil {
		r.Client = mgr.GetClient()
	}
	r.defaults()
	return ctrl.NewControllerManagedBy(mgr).For(&v1alpha1.PurchaseRequest{}).Named("purchaserequest").Complete(r)
}

// ConfigKey is the request's key in the buyer ConfigMap (a file name in the
// proxy's config directory).
func ConfigKey(pr *v1alpha1.PurchaseRequest) string { return pr.Namespace + "." + pr.Name + ".json" }

// Reconcile brings the buyer's configuration and the request's status in
// line with its spec.
func (r *PurchaseRequestReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	r.defaults()
	ctx, cancel := context.WithTimeout(ctx, r.APITimeout+2*DefaultBuyerTimeout)
	defer cancel()
	var pr v1alpha1.PurchaseRequest
	if err := r.Client.Get(ctx, req.NamespacedName, &pr); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !pr.DeletionTimestamp.IsZero() {
		if !controllerutil.ContainsFinalizer(&pr, BuyerCleanupFinalizer) {
			return ctrl.Result{}, nil
		}
		if err := r.writeBuyerConfig(ctx, ConfigKey(&pr), nil); err != nil {
			return ctrl.Result{}, fmt.Errorf("remove %s from the buyer configuration: %w", req, err)
		}
		r.reloadBuyer(ctx)
		controllerutil.RemoveFinalizer(&pr, BuyerCleanupFinalizer)
		return ctrl.Result{}, client.IgnoreNotFound(r.Client.Update(ctx, &pr))
	}
	if controllerutil.AddFinalizer(&pr, BuyerCleanupFinalizer) {
		if err := r.Client.Update(ctx, &pr); err != nil {
			return ctrl.Result{}, err
		}
	}

	st := pr.Status.DeepCopy()
	st.ObservedGeneration = pr.Generation
	st.TotalSigned = purchase.TotalSigned(&pr)
	st.SignerAddress = purchase.Signer(&pr)
	validity := purchase.ValidityOf(&pr, r.Now())
	st.ValidUntil, st.NextExpiry = timeOrNil(validity.Last), timeOrNil(validity.Next)
	gen := pr.Generation
	set := func(t string, ok bool, reason, msg string) {
		s := metav1.ConditionFalse
		if ok {
			s = metav1.ConditionTrue
		}
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: gen})
	}

	// Payment terms must make sense before anything is published.
	upstream, cfgErr := purchase.Upstream(&pr)
	var cfgBytes []byte
	if cfgErr == nil {
		cfgErr = upstream.Validate(r.Registry)
	}
	if cfgErr == nil {
		cfgBytes, cfgErr = json.Marshal(upstream)
	}

	// Probe the seller's price now and then.
	mismatch := false
	if st.ProbedAt == nil || r.Now().Sub(st.ProbedAt.Time) >= r.ProbeInterval || meta.FindStatusCondition(st.Conditions, purchase.ConditionPricingMismatch) == nil {
		terms, err := purchase.Probe(ctx, r.HTTPClient, r.Registry, pr.Spec.Endpoint, pr.Spec.Payment.Network)
		now := metav1.NewTime(r.Now())
		st.ProbedAt = &now
		switch {
		case err != nil:
			st.ProbedPrice = ""
			meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: purchase.ConditionPricingMismatch, Status: metav1.ConditionUnknown,
				Reason: "ProbeFailed", Message: oneLine(err), ObservedGeneration: gen})
		default:
			st.ProbedPrice = terms.Price.String()
			diff := priceDiff(pr.Spec.Payment, terms.Payment())
			set(purchase.ConditionPricingMismatch, diff != "", map[bool]string{true: "PriceChanged", false: "PriceMatches"}[diff != ""],
				map[bool]string{true: "the seller now asks " + diff + "; the proxy will not pay until the request is re-created at the new terms", false: "the seller asks the price the authorizations were signed for"}[diff != ""])
		}
	}
	if c := meta.FindStatusCondition(st.Conditions, purchase.ConditionPricingMismatch); c != nil && c.Status == metav1.ConditionTrue {
		mismatch = true
	}

	configured := false
	if cfgErr != nil {
		set(purchase.ConditionBuyerConfigured, false, "InvalidSpec", oneLine(cfgErr))
	} else if err := r.writeBuyerConfig(ctx, ConfigKey(&pr), cfgBytes); err != nil {
		set(purchase.ConditionBuyerConfigured, false, "ConfigWriteFailed", oneLine(err))
	} else {
		configured = true
		r.reloadBuyer(ctx)
		if row, err := r.buyerStatus(ctx, pr.Name); err == nil && row != nil {
			st.Remaining, st.Spent, st.TotalSpent = row.Remaining, row.Used, row.Spent
			set(purchase.ConditionBuyerConfigured, true, "Loaded", fmt.Sprintf("the buyer proxy pays from %d remaining authorizations", row.Remaining))
		} else {
			st.Remaining = len(pr.Spec.PreSignedAuths) - st.Spent
			msg := "written to ConfigMap " + r.BuyerNamespace + "/" + r.BuyerConfigMap
			if err != nil {
				msg += "; the proxy's /status is unreachable: " + oneLine(err)
			}
			set(purchase.ConditionBuyerConfigured, true, "Written", msg)
		}
	}
	switch {
	case cfgErr != nil:
		set(v1alpha1.ConditionReady, false, "InvalidSpec", oneLine(cfgErr))
	case mismatch:
		set(v1alpha1.ConditionReady, false, "PricingMismatch", "the seller's price changed")
	case !configured:
		set(v1alpha1.ConditionReady, false, "BuyerNotConfigured", "the buyer configuration could not be written")
	case len(pr.Spec.PreSignedAuths) > 0 && validity.Unexpired == 0:
		set(v1alpha1.ConditionReady, false, "Expired", fmt.Sprintf("every pre-signed authorization expired (the last at %s): run `obol buy refill %s --key-file KEY --count N`",
			validity.Last.UTC().Format(time.RFC3339), pr.Name))
	case st.Remaining <= 0:
		set(v1alpha1.ConditionReady, false, "Exhausted", "no authorizations remain: run `obol buy refill "+pr.Name+" --key-file KEY --count N`")
	default:
		set(v1alpha1.ConditionReady, true, "Ready", fmt.Sprintf("%d authorizations remain", st.Remaining))
	}
	pr.Status = *st
	if err := r.Client.Status().Update(ctx, &pr); err != nil {
		if apierrors.IsConflict(err) {
			return ctrl.Result{Requeue: true}, nil
		}
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: r.Resync}, nil
}

func timeOrNil(t time.Time) *metav1.Time {
	if t.IsZero() {
		return nil
	}
	m := metav1.NewTime(t)
	return &m
}

// priceDiff describes how the probed terms differ from the signed ones ("" = same).
func priceDiff(signed, probed v1alpha1.PurchasePayment) string {
	var d []string
	if signed.Price != probed.Price {
		d = append(d, fmt.Sprintf("%s instead of %s atomic units", probed.Price, signed.Price))
	}
	if !strings.EqualFold(signed.PayTo, probed.PayTo) {
		d = append(d, "payTo "+probed.PayTo)
	}
	if !strings.EqualFold(signed.Asset, probed.Asset) {
		d = append(d, "asset "+probed.Asset)
	}
	return strings.Join(d, ", ")
}

// writeBuyerConfig sets (data != nil) or removes key in the buyer ConfigMap.
func (r *PurchaseRequestReconciler) writeBuyerConfig(ctx context.Context, key string, data []byte) error {
	if r.BuyerNamespace == "" {
		return errors.New("the controller has no --buyer-namespace")
	}
	var cm corev1.ConfigMap
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: r.BuyerNamespace, Name: r.BuyerConfigMap}, &cm)
	if apierrors.IsNotFound(err) {
		if data == nil {
			return nil
		}
		cm = corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: r.BuyerNamespace, Name: r.BuyerConfigMap,
			Labels: map[string]string{"app.kubernetes.io/part-of": "obol", "app.kubernetes.io/component": "buyer"}},
			Data: map[string]string{key: string(data)}}
		return r.Client.Create(ctx, &cm)
	}
	if err != nil {
		return err
	}
	if data == nil {
		if _, ok := cm.Data[key]; !ok {
			return nil
		}
		delete(cm.Data, key)
	} else {
		if cm.Data[key] == string(data) {
			return nil
		}
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		cm.Data[key] = string(data)
	}
	return r.Client.Update(ctx, &cm)
}

func (r *PurchaseRequestReconciler) reloadBuyer(ctx context.Context) {
	if r.BuyerURL == "" {
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(r.BuyerURL, "/")+"/admin/reload", nil)
	if err != nil {
		return
	}
	if resp, err := r.HTTPClient.Do(req); err == nil {
		resp.Body.Close()
	}
}

func (r *PurchaseRequestReconciler) buyerStatus(ctx context.Context, name string) (*proxy.UpstreamStatus, error) {
	if r.BuyerURL == "" {
		return nil, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(r.BuyerURL, "/")+"/status", nil)
	if err != nil {
		return nil, err
	}
	resp, err := r.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("buyer /status answered %s", resp.Status)
	}
	var body struct {
		Upstreams []proxy.UpstreamStatus `json:"upstreams"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("buyer /status: %w", err)
	}
	for i := range body.Upstreams {
		if body.Upstreams[i].Name == name {
			return &body.Upstreams[i], nil
		}
	}
	return nil, nil
}
