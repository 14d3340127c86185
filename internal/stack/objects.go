package stack

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"
)

// FieldManager names obol in managedFields of what it applies.
const FieldManager = "obol"

// SplitManifest parses multi-document YAML into objects, skipping empty
// documents.
func SplitManifest(manifest string) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for i, doc := range splitDocs(manifest) {
		m := map[string]any{}
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			return nil, fmt.Errorf("parse rendered document %d: %w", i+1, err)
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
	return out, nil
}

func splitDocs(manifest string) []string {
	var docs []string
	var cur strings.Builder
	sc := bufio.NewScanner(strings.NewReader(manifest))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "---") && strings.TrimSpace(strings.TrimLeft(line, "-")) == "" || strings.HasPrefix(line, "--- ") {
			docs = append(docs, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
	}
	docs = append(docs, cur.String())
	return docs
}

func parseObjects(manifest, defaultNS string) ([]Object, error) {
	objs, err := SplitManifest(manifest)
	if err != nil {
		return nil, err
	}
	out := make([]Object, 0, len(objs))
	for _, u := range objs {
		out = append(out, Object{APIVersion: u.GetAPIVersion(), Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName()})
	}
	return out, nil
}

type applier struct {
	dyn    dynamic.Interface
	mapper meta.RESTMapper
	ns     string
}

func (s *Stack) applier() (*applier, error) {
	cfg, err := s.getter.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("build the Kubernetes client: %w (check --kubeconfig and --context)", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("build the Kubernetes client: %w", err)
	}
	mapper, err := s.getter.ToRESTMapper()
	if err != nil {
		return nil, fmt.Errorf("discover the cluster's APIs: %w", err)
	}
	if r, ok := mapper.(meta.ResettableRESTMapper); ok {
		r.Reset()
	}
	return &applier{dyn: dyn, mapper: mapper, ns: s.namespace}, nil
}

// apply sends one object with server-side apply; dryRun makes the API server
// run every admission and validation step without persisting anything.
func (a *applier) apply(ctx context.Context, u *unstructured.Unstructured, dryRun bool) error {
	gvk := u.GroupVersionKind()
	mapping, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return fmt.Errorf("the cluster does not serve %s %s: %w", gvk.GroupVersion(), gvk.Kind, err)
	}
	var ri dynamic.ResourceInterface = a.dyn.Resource(mapping.Resource)
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		ns := u.GetNamespace()
		if ns == "" {
			ns = a.ns
		}
		ri = a.dyn.Resource(mapping.Resource).Namespace(ns)
	}
	data, err := json.Marshal(u.Object)
	if err != nil {
		return err
	}
	force := true
	opts := metav1.PatchOptions{FieldManager: FieldManager, Force: &force}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	_, err = ri.Patch(ctx, u.GetName(), types.ApplyPatchType, data, opts)
	return err
}

func isNamespaced(m meta.RESTMapper, u *unstructured.Unstructured) (bool, error) {
	gvk := u.GroupVersionKind()
	mapping, err := m.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return false, fmt.Errorf("the cluster does not serve %s %s: %w", gvk.GroupVersion(), gvk.Kind, err)
	}
	return mapping.Scope.Name() == meta.RESTScopeNameNamespace, nil
}

// serverDryRun sends every object of manifest to the API server as a
// server-side dry-run apply and reports every rejection.
func (s *Stack) serverDryRun(ctx context.Context, manifest string) ([]string, error) {
	objs, err := SplitManifest(manifest)
	if err != nil {
		return nil, err
	}
	a, err := s.applier()
	if err != nil {
		return nil, err
	}
	nsMissing := false
	cs, err := s.clientset()
	if err != nil {
		return nil, err
	}
	if _, err := cs.CoreV1().Namespaces().Get(ctx, s.namespace, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		nsMissing = true
	} else if err != nil {
		return nil, s.clusterErr("read namespace "+s.namespace, err)
	}
	var errs []error
	skipped := 0
	for _, u := range objs {
		namespaced, err := isNamespaced(a.mapper, u)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", u.GetKind(), u.GetName(), err))
			continue
		}
		if namespaced && nsMissing {
			skipped++
			continue
		}
		if err := a.apply(ctx, u, true); err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", u.GetKind(), u.GetName(), err))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("the API server rejected %d of %d objects in the dry run:\n%w", len(errs), len(objs), errors.Join(errs...))
	}
	var notes []string
	if skipped > 0 {
		notes = append(notes, fmt.Sprintf("dry run: namespace %s does not exist yet (install creates it), so %d namespaced objects were only rendered, not sent to the API server; create the namespace first for a full check", s.namespace, skipped))
	}
	return notes, nil
}

// applyCRDs applies the chart's CRDs server-side (so an upgrade updates them,
// which plain Helm never does) and waits until they are established. With
// dryRun the API server only validates them.
func (s *Stack) applyCRDs(ctx context.Context, c *chart.Chart, dryRun bool) ([]Object, error) {
	var objs []*unstructured.Unstructured
	for _, crd := range c.CRDObjects() {
		more, err := SplitManifest(string(crd.File.Data))
		if err != nil {
			return nil, fmt.Errorf("read CRD file %s: %w", crd.Filename, err)
		}
		objs = append(objs, more...)
	}
	if len(objs) == 0 {
		return nil, nil
	}
	a, err := s.applier()
	if err != nil {
		return nil, err
	}
	var out []Object
	for _, u := range objs {
		if err := a.apply(ctx, u, dryRun); err != nil {
			return nil, s.clusterErr(fmt.Sprintf("apply CRD %s", u.GetName()), err)
		}
		out = append(out, Object{APIVersion: u.GetAPIVersion(), Kind: u.GetKind(), Name: u.GetName()})
		if !dryRun {
			fmt.Fprintf(s.progress, "applied CustomResourceDefinition %s\n", u.GetName())
		}
	}
	if dryRun {
		return out, nil
	}
	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	for _, u := range objs {
		if err := waitEstablished(ctx, a.dyn.Resource(crdGVR), u.GetName()); err != nil {
			return nil, fmt.Errorf("CRD %s did not become established: %w", u.GetName(), err)
		}
	}
	return out, nil
}

func waitEstablished(ctx context.Context, ri dynamic.ResourceInterface, name string) error {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		got, err := ri.Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			conds, _, _ := unstructured.NestedSlice(got.Object, "status", "conditions")
			for _, c := range conds {
				cm, _ := c.(map[string]any)
				if cm["type"] == "Established" && cm["status"] == "True" {
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}
