// Package stack installs, upgrades, uninstalls and renders the obol Helm chart
// embedded in the binary, through the Helm library (no helm binary). Releases
// are stored in the cluster like any Helm release (Secrets driver), so the
// helm CLI sees them too.
package stack

import (
	"fmt"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"

	obolchart "github.com/obolstack/obol/charts/obol"
)

// DefaultReleaseName is the release name `obol stack` uses unless told otherwise.
const DefaultReleaseName = "obol"

// DefaultNamespace is where the stack goes when no namespace is given.
const DefaultNamespace = "obol-system"

// LoadChart loads the embedded chart. A non-empty version becomes the chart's
// appVersion, which image.tag defaults to: the cluster runs the same obol
// version that installed it.
func LoadChart(version string) (*chart.Chart, error) {
	files, err := obolchart.Files()
	if err != nil {
		return nil, fmt.Errorf("read the embedded chart: %w", err)
	}
	buffered := make([]*loader.BufferedFile, 0, len(files))
	for _, f := range files {
		buffered = append(buffered, &loader.BufferedFile{Name: f.Name, Data: f.Data})
	}
	c, err := loader.LoadFiles(buffered)
	if err != nil {
		return nil, fmt.Errorf("load the embedded chart: %w (this is a bug in the obol build)", err)
	}
	if version != "" {
		c.Metadata.AppVersion = version
	}
	return c, nil
}
