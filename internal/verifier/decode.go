package verifier

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// Pos is a place in a YAML file (1-based).
type Pos struct {
	Line   int
	Column int
}

// decodeYAML decodes data into out (a pointer to a struct tagged with
// `yaml:"name"`) by walking the node tree itself, so that every error names
// the field path and the line, and unknown keys are rejected. It records the
// position of every path it visits in pos.
func decodeYAML(data []byte, out any, pos map[string]Pos) []*FieldError {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return []*FieldError{{Msg: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return []*FieldError{{Msg: "the file is empty: it needs at least payTo, chain, facilitatorURL and routes"}}
	}
	d := &nodeDecoder{pos: pos}
	d.decode(doc.Content[0], reflect.ValueOf(out).Elem(), "")
	return d.errs
}

type nodeDecoder struct {
	pos  map[string]Pos
	errs []*FieldError
}

func (d *nodeDecoder) fail(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, &FieldError{Path: path, Pos: Pos{n.Line, n.Column}, Msg: fmt.Sprintf(format, args...)})
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "something else"
}

func (d *nodeDecoder) decode(n *yaml.Node, v reflect.Value, path string) {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if d.pos != nil && path != "" {
		d.pos[path] = Pos{n.Line, n.Column}
	}
	if isNull(n) {
		return // leave the zero value
	}
	if v.Type() == rawJSONType {
		d.decodeJSON(n, v, path)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		nv := reflect.New(v.Type().Elem())
		d.decode(n, nv.Elem(), path)
		v.Set(nv)
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.fail(n, path, "want a mapping of fields, got %s", kindName(n))
			return
		}
		fields := yamlFields(v.Type())
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			key := k.Value
			sub := joinPath(path, key)
			idx, ok := fields[key]
			if !ok {
				d.errs = append(d.errs, &FieldError{Path: sub, Pos: Pos{k.Line, k.Column},
					Msg: fmt.Sprintf("unknown field (known: %s)", strings.Join(fieldNames(fields), ", "))})
				continue
			}
			if seen[key] {
				d.errs = append(d.errs, &FieldError{Path: sub, Pos: Pos{k.Line, k.Column}, Msg: "given twice"})
				continue
			}
			seen[key] = true
			d.decode(val, v.Field(idx), sub)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.fail(n, path, "want a list, got %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.fail(n, path, "want a string, got %s", kindName(n))
			return
		}
		// The source text, not YAML's reading of it: price 0.10 stays
		// "0.10" and an unquoted 0x... address is not turned into a number.
		v.SetString(n.Value)
	case reflect.Bool:
		b, err := strconv.ParseBool(n.Value)
		if n.Kind != yaml.ScalarNode || err != nil {
			d.fail(n, path, "want true or false, got %s", kindName(n))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64:
		i, err := strconv.ParseInt(n.Value, 10, 64)
		if n.Kind != yaml.ScalarNode || err != nil {
			d.fail(n, path, "want an integer, got %s", kindName(n))
			return
		}
		v.SetInt(i)
	default:
		d.fail(n, path, "internal: cannot decode into %s", v.Type())
	}
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func yamlFields(t reflect.Type) map[string]int {
	m := map[string]int{}
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("yaml")
		name, _, _ := strings.Cut(tag, ",")
		if name == "" || name == "-" {
			continue
		}
		m[name] = i
	}
	return m
}

func fieldNames(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
