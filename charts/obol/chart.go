// Package obol embeds the obol Helm chart (Chart.yaml, values.yaml,
// templates/, files/ and crds/) so the binary can install it without any
// chart on disk. internal/stack loads it with Helm's loader.
package obol

import (
	"embed"
	"io/fs"
	"path"
	"strings"
)

// The whole directory is embedded (all: keeps _helpers.tpl); Files filters
// it down to what belongs to the chart, so a missing crds/ directory is not a
// build error.
//
//go:embed all:*
var embedded embed.FS

// File is one file of the chart, with its path relative to the chart root.
type File struct {
	Name string
	Data []byte
}

// Files returns the chart's files in a stable order.
func Files() ([]File, error) {
	var out []File
	err := fs.WalkDir(embedded, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !belongs(p) {
			return nil
		}
		b, err := embedded.ReadFile(p)
		if err != nil {
			return err
		}
		out = append(out, File{Name: p, Data: b})
		return nil
	})
	return out, err
}

func belongs(p string) bool {
	switch p {
	case "Chart.yaml", "values.yaml", "values.schema.json", ".helmignore":
		return true
	}
	top, _, found := strings.Cut(p, "/")
	if !found {
		return false
	}
	switch top {
	case "templates", "files":
		return true
	case "crds":
		ext := path.Ext(p)
		return ext == ".yaml" || ext == ".yml" || ext == ".json"
	}
	return false
}
