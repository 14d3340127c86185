package sell

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"github.com/obolstack/obol/internal/cli/cmdutil"
)

// printData prints v as JSON, YAML or, for the table format, through
// table. YAML double-quotes every string that starts with 0x: YAML 1.1
// readers (kubectl's included) take an unquoted 0x… that fits in 64 bits
// for a number, which would corrupt an address or nonce.
func printData(w io.Writer, format string, v any, table func(io.Writer) error) error {
	if format != cmdutil.OutputYAML {
		return cmdutil.PrintStructured(w, format, v, table)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("render YAML: %w", err)
	}
	blockStyle(&n)
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return err
	}
	return enc.Close()
}

// blockStyle turns the flow style JSON parses into block style and quotes
// hex strings.
func blockStyle(n *yaml.Node) {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!str" && strings.HasPrefix(n.Value, "0x") {
			n.Style = yaml.DoubleQuotedStyle
		} else {
			n.Style = 0
		}
	default:
		n.Style = 0
	}
	for _, c := range n.Content {
		blockStyle(c)
	}
}
