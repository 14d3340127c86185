// Package stackfile reads and writes the file a running `obol dev` leaves
// behind (by default $XDG_CACHE_HOME/obol/dev/stack.json, i.e.
// ~/.cache/obol/dev/stack.json on Linux) so other obol commands on the same
// machine — `obol buy pay` above all — know the development chain's id, the
// address and EIP-712 domain of the token it deployed, and its URLs.
package stackfile

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/obolstack/obol/internal/evm"
)

// EnvPath overrides the default location.
const EnvPath = "OBOL_DEV_STACK"

// FormatVersion is the version of the file's layout.
const FormatVersion = 1

// Info is what `obol dev` publishes about itself. It holds no secrets: the
// buyer's key stays in its own 0600 file, named here by path.
type Info struct {
	Format    int       `json:"format"`
	PID       int       `json:"pid"`
	StartedAt time.Time `json:"startedAt"`

	Chain  evm.Chain `json:"chain"`
	RPCURL string    `json:"rpcURL"`
	Token  evm.Token `json:"token"`

	FacilitatorURL string `json:"facilitatorURL"`
	VerifierURL    string `json:"verifierURL"`
	MetricsURL     string `json:"metricsURL"`
	// PaidURLs are the demo's paid endpoints.
	PaidURLs []string `json:"paidURLs"`
	// Price is the demo offer's price per call, in token units ("0.001").
	Price string `json:"price"`

	SellerAddress string `json:"sellerAddress"`
	BuyerAddress  string `json:"buyerAddress"`
	BuyerKeyFile  string `json:"buyerKeyFile"`
}

// DefaultPath is $OBOL_DEV_STACK, else <user cache dir>/obol/dev/stack.json.
func DefaultPath() string {
	if p := os.Getenv(EnvPath); p != "" {
		return p
	}
	dir, err := os.UserCacheDir()
	if err != nil || dir == "" {
		dir = filepath.Join(os.TempDir(), "obol-cache")
	}
	return filepath.Join(dir, "obol", "dev", "stack.json")
}

// Write stores info at path atomically (mode 0644 in a 0700 directory).
func Write(path string, info Info) error {
	if info.Format == 0 {
		info.Format = FormatVersion
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("dev stack file: %w", err)
	}
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("dev stack file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("dev stack file: %w", err)
	}
	return nil
}

// ErrNotFound means no dev stack file exists at the path.
var ErrNotFound = errors.New("no dev stack file")

// Read loads the file at path.
func Read(path string) (*Info, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w at %s (is `obol dev` running?)", ErrNotFound, path)
	}
	if err != nil {
		return nil, fmt.Errorf("dev stack file: %w", err)
	}
	var info Info
	if err := json.Unmarshal(b, &info); err != nil {
		return nil, fmt.Errorf("dev stack file %s: %w (delete it and restart `obol dev`)", path, err)
	}
	if info.Format != FormatVersion {
		return nil, fmt.Errorf("dev stack file %s has format %d, this obol reads %d (restart `obol dev`)", path, info.Format, FormatVersion)
	}
	if info.Chain.ChainID == 0 || info.Token.Address == ([20]byte{}) || info.Token.EIP712Name == "" {
		return nil, fmt.Errorf("dev stack file %s lacks the chain id or the token (restart `obol dev`)", path)
	}
	return &info, nil
}

// Remove deletes the file if it still describes this process.
func Remove(path string, pid int) error {
	info, err := Read(path)
	if err != nil {
		return nil
	}
	if info.PID != pid {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// Alive reports whether the process that wrote the file still runs.
func (i *Info) Alive() bool {
	if i.PID <= 0 {
		return false
	}
	p, err := os.FindProcess(i.PID)
	if err != nil {
		return false
	}
	return p.Signal(syscall.Signal(0)) == nil
}

// Register puts the dev chain's id and token into reg, so payments on that
// chain sign with the token's own EIP-712 domain.
func (i *Info) Register(reg *evm.Registry) {
	reg.SetDevChain(i.Chain.ChainID, i.Token)
}
