package stack

import (
	"fmt"
	"os"

	"helm.sh/helm/v3/pkg/strvals"
	"sigs.k8s.io/yaml"
)

// Values builds the user-supplied values: each -f file in order (later files
// win, maps merge key by key), then each --set k=v in order, like helm.
func Values(files, sets []string) (map[string]any, error) {
	out := map[string]any{}
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read values file: %w", err)
		}
		cur := map[string]any{}
		if err := yaml.Unmarshal(b, &cur); err != nil {
			return nil, fmt.Errorf("parse values file %s: %w (it must be a YAML map, like the chart's values.yaml)", path, err)
		}
		mergeInto(out, cur)
	}
	for _, s := range sets {
		if err := strvals.ParseInto(s, out); err != nil {
			return nil, fmt.Errorf("parse --set %q: %w (use --set key=value, e.g. --set verifier.payTo=0xabc...)", s, err)
		}
	}
	return out, nil
}

// mergeInto merges src into dst: nested maps merge, everything else is
// replaced by src.
func mergeInto(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				mergeInto(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}
