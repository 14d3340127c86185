package evm

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethereum/go-ethereum/accounts/keystore"
	"github.com/ethereum/go-ethereum/crypto"
)

func TestLoadKeyHexAndPermissions(t *testing.T) {
	key, _ := crypto.GenerateKey()
	dir := t.TempDir()
	p := filepath.Join(dir, "buyer.key")
	if err := WriteKeyFile(p, key); err != nil {
		t.Fatal(err)
	}
	got, err := LoadKey(p, KeyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if Address(got) != Address(key) {
		t.Fatal("loaded a different key")
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = LoadKey(p, KeyOptions{})
	if !errors.Is(err, ErrInsecureKeyFile) || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("want insecure-permissions error, got %v", err)
	}
	hexKey := strings.TrimSpace(mustRead(t, p))
	if strings.Contains(err.Error(), hexKey[2:]) {
		t.Fatal("error leaks key material")
	}
	bad := filepath.Join(dir, "bad.key")
	os.WriteFile(bad, []byte("0xnothex"), 0o600)
	if _, err := LoadKey(bad, KeyOptions{}); err == nil || strings.Contains(err.Error(), "nothex") {
		t.Fatalf("bad key: %v", err)
	}
}

func TestLoadKeystore(t *testing.T) {
	key, _ := crypto.GenerateKey()
	dir := t.TempDir()
	ks := keystore.NewKeyStore(dir, keystore.LightScryptN, keystore.LightScryptP)
	acct, err := ks.ImportECDSA(key, "s3cret")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("OBOL_TEST_PASS", "s3cret")
	got, err := LoadKey(acct.URL.Path, KeyOptions{PassphraseEnv: "OBOL_TEST_PASS"})
	if err != nil {
		t.Fatal(err)
	}
	if Address(got) != acct.Address {
		t.Fatal("keystore loaded a different key")
	}
	pf := filepath.Join(dir, "pass")
	os.WriteFile(pf, []byte("wrong\n"), 0o600)
	if _, err := LoadKey(acct.URL.Path, KeyOptions{PassphraseFile: pf}); err == nil || !strings.Contains(err.Error(), "wrong passphrase") {
		t.Fatalf("want wrong passphrase error, got %v", err)
	}
	if _, err := LoadKey(acct.URL.Path, KeyOptions{}); err == nil || !strings.Contains(err.Error(), "passphrase") {
		t.Fatalf("want missing passphrase error, got %v", err)
	}
}

func mustRead(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
