package stack

import (
	"context"
	"errors"
	"fmt"
	obolkube "github.com/obolstack/obol/internal/kube"
	"io"
	"log/slog"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage/driver"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"
)

// DefaultTimeout bounds --wait and each cluster operation.
const DefaultTimeout = 5 * time.Minute

// Config says which cluster, namespace and release a Stack works on.
type Config struct {
	// Kubeconfig, Context and Namespace are the global --kubeconfig,
	// --context and -n flags. An empty Namespace means DefaultNamespace.
	Kubeconfig string
	Context    string
	Namespace  string
	// ReleaseName defaults to DefaultReleaseName.
	ReleaseName string
	// Version is the obol version the images default to (buildinfo.Version).
	Version string
	// CacheDir overrides the discovery cache directory (~/.kube/cache).
	CacheDir string
	// Progress receives progress lines while waiting; nil discards them.
	Progress io.Writer
	Logger   *slog.Logger
	// Getter replaces the kubeconfig-based client configuration (tests).
	Getter genericclioptions.RESTClientGetter
}

// Stack runs Helm actions for one release of the embedded chart.
type Stack struct {
	getter    genericclioptions.RESTClientGetter
	namespace string
	name      string
	version   string
	progress  io.Writer
	log       *slog.Logger
	helm      *action.Configuration
}

// New prepares a Stack. It does not contact the cluster yet.
func New(c Config) (*Stack, error) {
	s := &Stack{
		namespace: defaultString(c.Namespace, DefaultNamespace),
		name:      defaultString(c.ReleaseName, DefaultReleaseName),
		version:   c.Version,
		progress:  c.Progress,
		log:       c.Logger,
		getter:    c.Getter,
	}
	if s.progress == nil {
		s.progress = io.Discard
	}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.getter == nil {
		// ConfigFlags falls back to http://localhost:8080 when there is no
		// kubeconfig at all; say so instead, the way every other command does.
		if _, err := (obolkube.Options{Kubeconfig: c.Kubeconfig, Context: c.Context}).RESTConfig(); err != nil {
			return nil, err
		}
		flags := genericclioptions.NewConfigFlags(false)
		flags.KubeConfig = &c.Kubeconfig
		flags.Context = &c.Context
		flags.Namespace = &s.namespace
		if c.CacheDir != "" {
			flags.CacheDir = &c.CacheDir
		}
		s.getter = flags
	}
	s.helm = new(action.Configuration)
	logf := func(format string, v ...any) { s.log.Debug(fmt.Sprintf(format, v...), "component", "helm") }
	if err := s.helm.Init(s.getter, s.namespace, "secret", logf); err != nil {
		return nil, fmt.Errorf("set up the Kubernetes client: %w (check --kubeconfig and --context)", err)
	}
	return s, nil
}

// Namespace is the namespace of the release.
func (s *Stack) Namespace() string { return s.namespace }

// ReleaseName is the name of the release.
func (s *Stack) ReleaseName() string { return s.name }

// Object names one rendered Kubernetes object.
type Object struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
}

// Result describes what an install, upgrade or uninstall did (or would do).
type Result struct {
	Release      string   `json:"release"`
	Namespace    string   `json:"namespace"`
	Revision     int      `json:"revision"`
	Status       string   `json:"status"`
	Description  string   `json:"description,omitempty"`
	ChartVersion string   `json:"chartVersion"`
	AppVersion   string   `json:"appVersion"`
	DryRun       bool     `json:"dryRun"`
	Objects      []Object `json:"objects"`
	Notes        []string `json:"notes,omitempty"`
	Manifest     string   `json:"-"`
}

// InstallOptions are the inputs of Install and Upgrade.
type InstallOptions struct {
	Values map[string]any
	// DryRun renders against the cluster's capabilities and sends every
	// object to the API server as a server-side dry run; nothing changes.
	DryRun bool
	// Wait blocks until the Deployments are rolled out (progress lines go to
	// Config.Progress) or Timeout passes.
	Wait    bool
	Timeout time.Duration
	// ResetValues (upgrade only) starts from the chart defaults instead of
	// the previous release's values.
	ResetValues bool
}

func (o InstallOptions) timeout() time.Duration {
	if o.Timeout <= 0 {
		return DefaultTimeout
	}
	return o.Timeout
}

func (s *Stack) loadChart(vals map[string]any) (*chart.Chart, error) {
	if ns, ok := vals["namespace"].(map[string]any); ok {
		if create, _ := ns["create"].(bool); create {
			return nil, errors.New("namespace.create=true renders a Namespace object for applying `obol stack render` output with other tools; `obol stack install` creates the namespace itself: drop that value")
		}
	}
	return LoadChart(s.version)
}

// Install installs the chart as a new release.
func (s *Stack) Install(ctx context.Context, o InstallOptions) (*Result, error) {
	c, err := s.loadChart(o.Values)
	if err != nil {
		return nil, err
	}
	if o.Values == nil {
		o.Values = map[string]any{}
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout())
	defer cancel()

	if _, err := s.helm.Releases.Last(s.name); err == nil {
		return nil, fmt.Errorf("release %q already exists in namespace %s: use `obol stack upgrade` to change it, or `obol stack uninstall` first", s.name, s.namespace)
	} else if !errors.Is(err, driver.ErrReleaseNotFound) {
		return nil, s.clusterErr("read the release history", err)
	}

	storageNote := s.buyerStorage(ctx, o.Values)

	crdObjs, err := s.applyCRDs(ctx, c, o.DryRun)
	if err != nil {
		return nil, err
	}
	var notes []string
	if storageNote != "" {
		notes = append(notes, storageNote)
	}

	in := action.NewInstall(s.helm)
	in.ReleaseName = s.name
	in.Namespace = s.namespace
	in.CreateNamespace = true
	in.SkipCRDs = true // applied above, server-side, so later versions update them
	in.Timeout = o.timeout()
	in.Wait = o.Wait && !o.DryRun
	if o.DryRun {
		in.DryRun = true
		in.DryRunOption = "server"
	}
	stop := s.watchRollout(ctx, in.Wait)
	rel, err := in.RunWithContext(ctx, c, o.Values)
	stop()
	if err != nil {
		return nil, s.actionErr("install", err)
	}
	return s.finish(ctx, c, rel, o, crdObjs, notes)
}

// Upgrade upgrades the existing release to this binary's chart and values.
func (s *Stack) Upgrade(ctx context.Context, o InstallOptions) (*Result, error) {
	c, err := s.loadChart(o.Values)
	if err != nil {
		return nil, err
	}
	if o.Values == nil {
		o.Values = map[string]any{}
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout())
	defer cancel()
	if _, err := s.helm.Releases.Last(s.name); errors.Is(err, driver.ErrReleaseNotFound) {
		return nil, fmt.Errorf("no release %q in namespace %s: run `obol stack install` first (or pass -n with the namespace it is in)", s.name, s.namespace)
	} else if err != nil {
		return nil, s.clusterErr("read the release history", err)
	}

	crdObjs, err := s.applyCRDs(ctx, c, o.DryRun)
	if err != nil {
		return nil, err
	}

	up := action.NewUpgrade(s.helm)
	up.Namespace = s.namespace
	up.SkipCRDs = true
	up.Timeout = o.timeout()
	up.Wait = o.Wait && !o.DryRun
	up.MaxHistory = 10
	if o.ResetValues {
		up.ResetValues = true
	} else {
		up.ResetThenReuseValues = true
	}
	if o.DryRun {
		up.DryRun = true
		up.DryRunOption = "server"
	}
	stop := s.watchRollout(ctx, up.Wait)
	rel, err := up.RunWithContext(ctx, s.name, c, o.Values)
	stop()
	if err != nil {
		return nil, s.actionErr("upgrade", err)
	}
	return s.finish(ctx, c, rel, o, crdObjs, nil)
}

func (s *Stack) finish(ctx context.Context, c *chart.Chart, rel *release.Release, o InstallOptions, crdObjs []Object, notes []string) (*Result, error) {
	res := s.result(rel)
	res.DryRun = o.DryRun
	res.Notes = append(res.Notes, notes...)
	objs, err := parseObjects(rel.Manifest, s.namespace)
	if err != nil {
		return nil, err
	}
	if o.DryRun {
		more, err := s.serverDryRun(ctx, rel.Manifest)
		if err != nil {
			return nil, err
		}
		res.Notes = append(res.Notes, more...)
	}
	res.Objects = append(crdObjs, objs...)
	if note := devImageNote(s.version, mergedForCheck(rel, o.Values)); note != "" {
		res.Notes = append(res.Notes, note)
	}
	if monitoringSkipped(c, mergedForCheck(rel, o.Values), rel.Manifest) {
		res.Notes = append(res.Notes, "monitoring: the cluster does not serve "+MonitoringAPIVersion+
			" (prometheus-operator), so the ServiceMonitor, PodMonitor and PrometheusRule were skipped; install "+
			"prometheus-operator (e.g. kube-prometheus-stack) and run `obol stack upgrade`, or set monitoring.enabled=true")
	}
	return res, nil
}

// devImageNote warns when a development build would deploy an image tag
// that no registry has.
func devImageNote(version string, vals map[string]any) string {
	if version != "dev" && version != "" {
		return ""
	}
	if img, ok := vals["image"].(map[string]any); ok {
		if tag, _ := img["tag"].(string); tag != "" {
			return ""
		}
	}
	return "image: this obol binary is a development build (version \"dev\"), so the pods use image tag \"dev\"; set --set image.tag=<a released version> (or push your own image and set image.repository)"
}

// mergedForCheck returns the values the release was rendered with.
func mergedForCheck(rel *release.Release, vals map[string]any) map[string]any {
	if rel != nil && rel.Config != nil {
		return rel.Config
	}
	return vals
}

func (s *Stack) result(rel *release.Release) *Result {
	r := &Result{Release: rel.Name, Namespace: rel.Namespace, Revision: rel.Version, Manifest: rel.Manifest}
	if rel.Info != nil {
		r.Status = rel.Info.Status.String()
		r.Description = rel.Info.Description
	}
	if rel.Chart != nil && rel.Chart.Metadata != nil {
		r.ChartVersion = rel.Chart.Metadata.Version
		r.AppVersion = rel.Chart.Metadata.AppVersion
	}
	return r
}

// UninstallOptions are the inputs of Uninstall.
type UninstallOptions struct {
	DryRun      bool
	Wait        bool
	Timeout     time.Duration
	KeepHistory bool
}

// Uninstall removes the release's objects. CRDs (and so every ServiceOffer
// and PurchaseRequest) stay, like with helm: delete them by hand if wanted.
// Helm's uninstall takes no context: a ctx that is already done stops it
// before it starts, ctx's deadline shortens its timeout, and when ctx ends
// while it runs Uninstall returns ctx's error at once.
func (s *Stack) Uninstall(ctx context.Context, o UninstallOptions) (*Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("uninstall %s: %w", s.name, err)
	}
	un := action.NewUninstall(s.helm)
	un.DryRun = o.DryRun
	un.Wait = o.Wait
	un.KeepHistory = o.KeepHistory
	un.Timeout = InstallOptions{Timeout: o.Timeout}.timeout()
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < un.Timeout {
		un.Timeout = time.Until(dl)
	}
	type ran struct {
		resp *release.UninstallReleaseResponse
		err  error
	}
	done := make(chan ran, 1)
	go func() {
		resp, err := un.Run(s.name)
		done <- ran{resp, err}
	}()
	var resp *release.UninstallReleaseResponse
	var err error
	select {
	case r := <-done:
		resp, err = r.resp, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("uninstall %s: %w (Helm may still be deleting objects; run `obol stack status`)", s.name, ctx.Err())
	}
	if err != nil {
		if errors.Is(err, driver.ErrReleaseNotFound) || strings.Contains(err.Error(), "not found") {
			return nil, fmt.Errorf("no release %q in namespace %s: nothing to uninstall (pass -n with the namespace it is in)", s.name, s.namespace)
		}
		return nil, s.actionErr("uninstall", err)
	}
	res := &Result{Release: s.name, Namespace: s.namespace, Status: "uninstalled", DryRun: o.DryRun}
	if resp != nil && resp.Release != nil {
		res = s.result(resp.Release)
		res.DryRun = o.DryRun
		if o.DryRun {
			res.Status = "would be uninstalled"
		}
		res.Objects, _ = parseObjects(resp.Release.Manifest, s.namespace)
	}
	if resp != nil && resp.Info != "" {
		res.Notes = append(res.Notes, strings.TrimSpace(resp.Info))
	}
	res.Notes = append(res.Notes, "the CRDs serviceoffers.obol.org and purchaserequests.obol.org (and their objects) were kept")
	return res, nil
}

// DeploymentStatus is the rollout state of one Deployment of the release.
type DeploymentStatus struct {
	Name      string `json:"name"`
	Desired   int32  `json:"desired"`
	Ready     int32  `json:"ready"`
	Updated   int32  `json:"updated"`
	Available int32  `json:"available"`
}

// Status is the state of the release in the cluster.
type Status struct {
	Release      string             `json:"release"`
	Namespace    string             `json:"namespace"`
	Revision     int                `json:"revision"`
	Status       string             `json:"status"`
	Description  string             `json:"description,omitempty"`
	ChartVersion string             `json:"chartVersion"`
	AppVersion   string             `json:"appVersion"`
	Updated      time.Time          `json:"updated"`
	Monitoring   bool               `json:"monitoring"`
	Deployments  []DeploymentStatus `json:"deployments"`
	Objects      []Object           `json:"objects"`
}

// Status reads the release and the rollout state of its Deployments.
func (s *Stack) Status(ctx context.Context) (*Status, error) {
	rel, err := action.NewStatus(s.helm).Run(s.name)
	if err != nil {
		if errors.Is(err, driver.ErrReleaseNotFound) {
			return nil, fmt.Errorf("no release %q in namespace %s: run `obol stack install` (or pass -n with the namespace it is in)", s.name, s.namespace)
		}
		return nil, s.clusterErr("read the release", err)
	}
	r := s.result(rel)
	st := &Status{
		Release: r.Release, Namespace: r.Namespace, Revision: r.Revision, Status: r.Status,
		Description: r.Description, ChartVersion: r.ChartVersion, AppVersion: r.AppVersion,
		Monitoring:  strings.Contains(rel.Manifest, "apiVersion: "+MonitoringAPIVersion),
		Deployments: []DeploymentStatus{},
	}
	if rel.Info != nil {
		st.Updated = rel.Info.LastDeployed.Time.UTC()
	}
	st.Objects, _ = parseObjects(rel.Manifest, s.namespace)
	deps, err := s.deployments(ctx)
	if err != nil {
		return nil, err
	}
	st.Deployments = deps
	return st, nil
}

func (s *Stack) clientset() (*kubernetes.Clientset, error) {
	cfg, err := s.getter.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("build the Kubernetes client: %w (check --kubeconfig and --context)", err)
	}
	return kubernetes.NewForConfig(cfg)
}

func (s *Stack) deployments(ctx context.Context) ([]DeploymentStatus, error) {
	cs, err := s.clientset()
	if err != nil {
		return nil, err
	}
	list, err := cs.AppsV1().Deployments(s.namespace).List(ctx, metav1.ListOptions{
		LabelSelector: "app.kubernetes.io/part-of=obol,app.kubernetes.io/instance=" + s.name,
	})
	if err != nil {
		return nil, s.clusterErr("list the Deployments", err)
	}
	out := make([]DeploymentStatus, 0, len(list.Items))
	for _, d := range list.Items {
		desired := int32(1)
		if d.Spec.Replicas != nil {
			desired = *d.Spec.Replicas
		}
		out = append(out, DeploymentStatus{
			Name: d.Name, Desired: desired, Ready: d.Status.ReadyReplicas,
			Updated: d.Status.UpdatedReplicas, Available: d.Status.AvailableReplicas,
		})
	}
	return out, nil
}

func (s *Stack) actionErr(verb string, err error) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, MonitoringAPIVersion) || strings.Contains(msg, "ServiceMonitor") || strings.Contains(msg, "PrometheusRule"):
		return fmt.Errorf("%s release %q: %w (monitoring.enabled=true needs prometheus-operator's CRDs in the cluster; install them or use monitoring.enabled=auto)", verb, s.name, err)
	case strings.Contains(msg, "context deadline exceeded") || strings.Contains(msg, "timed out waiting"):
		return fmt.Errorf("%s release %q: %w (the rollout did not finish in time: check `obol stack status` and the pods' events, or raise --timeout)", verb, s.name, err)
	}
	return s.clusterErr(verb+" release "+fmt.Sprintf("%q", s.name), err)
}

func (s *Stack) clusterErr(what string, err error) error {
	switch {
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%s: %w (your kubeconfig user lacks the permission: use a cluster-admin context)", what, err)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("%s: %w (the cluster rejected your credentials: refresh the kubeconfig)", what, err)
	case strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "no such host") || strings.Contains(err.Error(), "Kubernetes cluster unreachable"):
		return fmt.Errorf("%s: %w (is the cluster running? check --kubeconfig and --context)", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
