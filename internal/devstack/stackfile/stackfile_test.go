package stackfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/common"

	"github.com/obolstack/obol/internal/evm"
)

func TestWriteReadRemove(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dev", "stack.json")
	if _, err := Read(path); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing file: %v", err)
	}
	reg := evm.NewRegistry()
	chain, _ := reg.Chain("dev")
	tok := evm.Token{Address: common.HexToAddress("0x2b1894172E4e079140C3DaE53394356262b7e258"), Symbol: "USDC", Decimals: 6, EIP712Name: "USDC", EIP712Version: "2"}
	if err := Write(path, Info{PID: os.Getpid(), Chain: chain, Token: tok, Price: "0.001"}); err != nil {
		t.Fatal(err)
	}
	info, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Alive() || info.Format != FormatVersion || info.Token.Address != tok.Address {
		t.Fatalf("info %+v", info)
	}
	info.Register(reg)
	if got, err := reg.Token("eip155:1337", tok.Address.Hex()); err != nil || got.EIP712Name != "USDC" {
		t.Fatalf("registered token %+v, %v", got, err)
	}
	// Another process's file is left alone; ours is removed.
	if err := Remove(path, os.Getpid()+1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal("removed another process's stack file")
	}
	if err := Remove(path, os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("stack file still there")
	}
}

func TestReadRejectsBadFiles(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"garbage":  "not json",
		"format":   `{"format": 99}`,
		"no token": `{"format": 1, "chain": {"chainId": 1337}}`,
	} {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Read(p); err == nil || !strings.Contains(err.Error(), "obol dev") {
			t.Errorf("%s: err %v, want one that says to restart obol dev", name, err)
		}
	}
}

func TestDefaultPathHonoursEnv(t *testing.T) {
	t.Setenv(EnvPath, "/x/y.json")
	if DefaultPath() != "/x/y.json" {
		t.Fatal(DefaultPath())
	}
	t.Setenv(EnvPath, "")
	if !strings.HasSuffix(DefaultPath(), filepath.Join("obol", "dev", "stack.json")) {
		t.Fatal(DefaultPath())
	}
}
