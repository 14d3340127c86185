package root

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// Commands build their own chain registry (evm.NewRegistry) or take one in
// their options: registering a dev token or a --token-* flag must never
// change the process-wide evm.Default() that library code falls back on.
func TestCommandsDoNotUseTheProcessWideRegistry(t *testing.T) {
	fset := token.NewFileSet()
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
			return err
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if sel, ok := n.(*ast.SelectorExpr); ok && sel.Sel.Name == "Default" {
				if id, ok := sel.X.(*ast.Ident); ok && id.Name == "evm" {
					t.Errorf("%s: evm.Default(): pass a registry instead", fset.Position(sel.Pos()))
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
