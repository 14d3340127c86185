package earnings

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The captures in docs/earnings.md are the golden files: keep them in step.
func TestDocsCaptureMatchesGolden(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "earnings.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range []string{"TestTUIData", "TestTUISpendTab", "TestTUINarrow", "TestWriteTable"} {
		b, err := os.ReadFile(filepath.Join("testdata", g+".golden"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(doc), strings.TrimRight(string(b), "\n")) {
			t.Errorf("docs/earnings.md does not contain testdata/%s.golden: paste it in again", g)
		}
	}
}
