//go:build tools

// Package tools pins controller-gen, which generates the CRD YAML under
// charts/obol/crds/ and the deepcopy code of internal/monetizeapi/v1alpha1.
// It lives in its own module so its dependencies never touch the main go.mod.
// Run it with `go run sigs.k8s.io/controller-tools/cmd/controller-gen` from
// this directory, or through `make generate`.
package tools

import _ "sigs.k8s.io/controller-tools/cmd/controller-gen"
