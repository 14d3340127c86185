package devchain

import (
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/ethereum/go-ethereum"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
)

// writeKeys writes every account's key to dir/<name>.key as 0x-prefixed
// hex, mode 0600, and records the paths in the accounts.
func (c *Chain) writeKeys(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("key directory %s: %w", dir, err)
	}
	for _, a := range c.accounts() {
		path := filepath.Join(dir, a.Name+".key")
		if err := writeKeyFile(path, []byte("0x"+hex.EncodeToString(crypto.FromECDSA(a.Key))+"\n")); err != nil {
			return fmt.Errorf("write key file of %s: %w", a.Name, err)
		}
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
		a.KeyFile = path
	}
	return nil
}

// writeKeyFile replaces path atomically with data, mode 0600 (also when the
// file existed with a looser mode).
func writeKeyFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".obol-key-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func ethereumCall(to common.Address, data []byte) ethereum.CallMsg {
	return ethereum.CallMsg{To: &to, Data: data}
}

func ethereumCallFrom(from, to common.Address, data []byte) ethereum.CallMsg {
	return ethereum.CallMsg{From: from, To: &to, Data: data}
}
