package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Use is one authorization taken from a pool. It is recorded, durably,
// before the request that carries it is sent.
type Use struct {
	Upstream string    `json:"upstream"`
	From     string    `json:"from"`
	Nonce    string    `json:"nonce"`
	Value    string    `json:"value"`
	At       time.Time `json:"at"`
	// ValidBefore is the authorization's expiry (unix seconds); after it
	// the record is needed only for totals.
	ValidBefore int64 `json:"validBefore,omitempty"`
	// Outcome is "pending", "settled" or "failed".
	Outcome     string `json:"outcome"`
	Transaction string `json:"transaction,omitempty"`
}

// State is the proxy's durable memory: every authorization ever taken.
type State struct {
	mu   sync.Mutex
	path string // "" = memory only (tests)
	Uses []Use  `json:"uses"`
	used map[string]int
}

func useKey(from, nonce string) string { return strings.ToLower(from) + "/" + strings.ToLower(nonce) }

// LoadState opens (or starts) the state file.
func LoadState(path string) (*State, error) {
	s := &State{path: path, used: map[string]int{}}
	if path == "" {
		return s, nil
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read buyer state: %w", err)
	}
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("buyer state %s is corrupt (%v): refusing to start, since a lost record could spend an authorization twice; move it aside only if you know no authorization in it is live", path, err)
	}
	for i, u := range s.Uses {
		s.used[useKey(u.From, u.Nonce)] = i
	}
	return s, nil
}

// Used reports whether an authorization was ever taken.
func (s *State) Used(from, nonce string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.used[useKey(from, nonce)]
	return ok
}

// Take records u durably. It fails if the authorization was taken before
// or the record cannot be written; the caller must then not send it.
func (s *State) Take(u Use) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := useKey(u.From, u.Nonce)
	if _, ok := s.used[k]; ok {
		return fmt.Errorf("authorization %s from %s was already used", u.Nonce, u.From)
	}
	u.Outcome = "pending"
	s.Uses = append(s.Uses, u)
	s.used[k] = len(s.Uses) - 1
	if err := s.saveLocked(); err != nil {
		s.Uses = s.Uses[:len(s.Uses)-1]
		delete(s.used, k)
		return err
	}
	return nil
}

// Finish records the outcome of a taken authorization.
func (s *State) Finish(from, nonce, outcome, tx string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.used[useKey(from, nonce)]
	if !ok {
		return fmt.Errorf("authorization %s was never taken", nonce)
	}
	s.Uses[i].Outcome = outcome
	s.Uses[i].Transaction = tx
	return s.saveLocked()
}

// SpentSince sums the value of authorizations an upstream took at or after
// since, whatever their outcome (a taken authorization may settle).
func (s *State) SpentSince(upstream string, since time.Time) *big.Int {
	s.mu.Lock()
	defer s.mu.Unlock()
	sum := new(big.Int)
	for _, u := range s.Uses {
		if u.Upstream == upstream && !u.At.Before(since) {
			if v, ok := new(big.Int).SetString(u.Value, 10); ok {
				sum.Add(sum, v)
			}
		}
	}
	return sum
}

// Counts returns how many authorizations an upstream took and how many of
// them settled.
func (s *State) Counts(upstream string) (taken, settled int, spent *big.Int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	spent = new(big.Int)
	for _, u := range s.Uses {
		if u.Upstream != upstream {
			continue
		}
		taken++
		if u.Outcome == "settled" {
			settled++
			if v, ok := new(big.Int).SetString(u.Value, 10); ok {
				spent.Add(spent, v)
			}
		}
	}
	return taken, settled, spent
}

// saveLocked writes the state atomically: temp file, fsync, rename, fsync
// of the directory.
func (s *State) saveLocked() error {
	if s.path == "" {
		return nil
	}
	b, err := json.MarshalIndent(s, "", " ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(s.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("buyer state dir: %w", err)
	}
	f, err := os.CreateTemp(dir, ".state-*")
	if err != nil {
		return fmt.Errorf("write buyer state: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write buyer state: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync buyer state: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("replace buyer state: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
