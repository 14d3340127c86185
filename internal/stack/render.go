package stack

import (
	"fmt"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
)

// MonitoringAPIVersion is the API the monitoring objects need.
const MonitoringAPIVersion = "monitoring.coreos.com/v1"

// RenderOptions are the inputs of a client-only render.
type RenderOptions struct {
	ReleaseName string
	Namespace   string
	// Version is the obol version image.tag defaults to.
	Version string
	Values  map[string]any
	// APIVersions the pretend cluster serves, in addition to the built-in
	// Kubernetes ones (e.g. monitoring.coreos.com/v1).
	APIVersions []string
	// KubeVersion the pretend cluster runs; defaults to DefaultKubeVersion.
	KubeVersion string
	// SkipCRDs leaves the CRDs out of the output.
	SkipCRDs bool
}

// DefaultKubeVersion is the Kubernetes version a client-only render assumes
// (the version of the client libraries obol is built with).
const DefaultKubeVersion = "v1.37.0"

// Rendered is the output of a render.
type Rendered struct {
	// Manifest is every object as multi-document YAML, CRDs first.
	Manifest string
	// Notes are things the user should know (e.g. skipped monitoring objects).
	Notes []string
}

// Render renders the chart without a cluster, like `helm template`.
func Render(opts RenderOptions) (*Rendered, error) {
	c, err := LoadChart(opts.Version)
	if err != nil {
		return nil, err
	}
	in := action.NewInstall(&action.Configuration{})
	in.ClientOnly = true
	in.DryRun = true
	in.Replace = true
	in.IncludeCRDs = !opts.SkipCRDs
	in.ReleaseName = defaultString(opts.ReleaseName, DefaultReleaseName)
	in.Namespace = defaultString(opts.Namespace, DefaultNamespace)
	in.APIVersions = chartutil.VersionSet(opts.APIVersions)
	kv, err := chartutil.ParseKubeVersion(defaultString(opts.KubeVersion, DefaultKubeVersion))
	if err != nil {
		return nil, fmt.Errorf("invalid Kubernetes version %q: %w (use a version like v1.33.0)", opts.KubeVersion, err)
	}
	in.KubeVersion = kv
	vals := opts.Values
	if vals == nil {
		vals = map[string]any{}
	}
	rel, err := in.Run(c, vals)
	if err != nil {
		return nil, fmt.Errorf("render the obol chart: %w", err)
	}
	out := &Rendered{Manifest: strings.TrimSpace(rel.Manifest) + "\n"}
	if monitoringSkipped(c, vals, rel.Manifest) {
		out.Notes = append(out.Notes, "monitoring: ServiceMonitor, PodMonitor and PrometheusRule were not rendered because "+
			"monitoring.enabled=auto and "+MonitoringAPIVersion+" is not among the API versions; pass --api-versions "+
			MonitoringAPIVersion+" or --set monitoring.enabled=true to include them")
	}
	return out, nil
}

// monitoringMode is the effective monitoring.enabled value: user values over
// chart defaults.
func monitoringMode(c *chart.Chart, vals map[string]any) string {
	for _, m := range []map[string]any{vals, c.Values} {
		if mon, ok := m["monitoring"].(map[string]any); ok {
			if v, ok := mon["enabled"]; ok && v != nil {
				return strings.ToLower(fmt.Sprint(v))
			}
		}
	}
	return "auto"
}

// monitoringSkipped reports whether auto mode left the monitoring objects out.
func monitoringSkipped(c *chart.Chart, vals map[string]any, manifest string) bool {
	return monitoringMode(c, vals) == "auto" && !strings.Contains(manifest, "apiVersion: "+MonitoringAPIVersion)
}

func defaultString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
