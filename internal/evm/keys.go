package evm

import (
	"bytes"
	"crypto/ecdsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ethereum/go-ethereum/accounts/keystore"
	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"
)

// KeyOptions says where a keystore passphrase comes from. Hex key files need
// neither.
type KeyOptions struct {
	// PassphraseEnv names an environment variable holding the passphrase.
	PassphraseEnv string
	// PassphraseFile is a file whose first line is the passphrase.
	PassphraseFile string
	// AllowInsecurePerms skips the file mode check (tests only).
	AllowInsecurePerms bool
}

// ErrInsecureKeyFile is returned for key files readable by group or others.
var ErrInsecureKeyFile = errors.New("key file is readable by group or others")

// LoadKey reads a secp256k1 private key from a file holding 64 hex digits
// (optionally 0x-prefixed) or a go-ethereum keystore JSON. It refuses files
// that group or others can read. Errors never contain key material.
func LoadKey(path string, opts KeyOptions) (*ecdsa.PrivateKey, error) {
	if path == "" {
		return nil, errors.New("no key file given: pass --key-file PATH (a hex private key or a keystore JSON, mode 0600)")
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("key file %s is a directory", path)
	}
	if !opts.AllowInsecurePerms && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o; run `chmod 600 %s`", ErrInsecureKeyFile, path, st.Mode().Perm(), path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("key file: %w", err)
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == '{' {
		return loadKeystore(path, trimmed, opts)
	}
	s := strings.TrimPrefix(strings.TrimPrefix(string(trimmed), "0x"), "0X")
	if len(s) != 64 {
		return nil, fmt.Errorf("key file %s: want 64 hex digits (optionally 0x-prefixed) or a keystore JSON, got %d characters", path, len(s))
	}
	raw, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("key file %s: not hex (want 64 hex digits or a keystore JSON)", path)
	}
	key, err := crypto.ToECDSA(raw)
	if err != nil {
		return nil, fmt.Errorf("key file %s: not a valid secp256k1 private key", path)
	}
	return key, nil
}

func loadKeystore(path string, data []byte, opts KeyOptions) (*ecdsa.PrivateKey, error) {
	var probe struct {
		Crypto json.RawMessage `json:"crypto"`
	}
	if err := json.Unmarshal(data, &probe); err != nil || len(probe.Crypto) == 0 {
		return nil, fmt.Errorf("key file %s: JSON but not a keystore (no crypto section)", path)
	}
	pass, err := passphrase(opts)
	if err != nil {
		return nil, fmt.Errorf("keystore %s: %w", path, err)
	}
	k, err := keystore.DecryptKey(data, pass)
	if err != nil {
		return nil, fmt.Errorf("keystore %s: could not decrypt (wrong passphrase?)", path)
	}
	return k.PrivateKey, nil
}

func passphrase(opts KeyOptions) (string, error) {
	if opts.PassphraseEnv != "" {
		if v, ok := os.LookupEnv(opts.PassphraseEnv); ok {
			return v, nil
		}
		if opts.PassphraseFile == "" {
			return "", fmt.Errorf("passphrase variable %s is not set", opts.PassphraseEnv)
		}
	}
	if opts.PassphraseFile != "" {
		b, err := os.ReadFile(opts.PassphraseFile)
		if err != nil {
			return "", fmt.Errorf("passphrase file: %w", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		return strings.TrimRight(line, "\r"), nil
	}
	return "", errors.New("a keystore needs a passphrase: set --passphrase-env VAR or --passphrase-file PATH")
}

// WriteKeyFile writes key as 0x-prefixed hex with mode 0600, creating the
// directory (0700) if needed.
func WriteKeyFile(path string, key *ecdsa.PrivateKey) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte("0x"+hex.EncodeToString(crypto.FromECDSA(key))+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Address returns the account address of a private key.
func Address(key *ecdsa.PrivateKey) common.Address { return crypto.PubkeyToAddress(key.PublicKey) }
