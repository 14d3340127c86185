package proxy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sort"
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

// State is the proxy's durable memory of every authorization taken.
//
// On disk it is one append-only journal per upstream in the directory
// <path>.d: a "take" line is written and fsynced before the authorization
// leaves (one fsync per payment), a "finish" line records the outcome. A
// journal is compacted once it is mostly history: the records still needed
// (authorizations not yet expired, spend of the last day for the daily
// cap) are kept, the rest is folded into one totals line. Cost per payment
// does not grow with the number of payments ever made.
type State struct {
	dir string // "" = memory only (tests)

	mu   sync.Mutex // guards used and ups' counters; never held during I/O
	used map[string]*Use
	ups  map[string]*upstreamState
}

// upstreamState is one upstream's journal and totals.
type upstreamState struct {
	io        sync.Mutex // serialises writes to f and compaction
	f         *os.File
	lines     int // lines in the journal
	compacted int // lines right after the last compaction (or load)
	taken     int // including records compacted away
	settled   int
	spent     *big.Int // value settled
	recent    []*Use   // ordered by At; for SpentSince
	live      int      // records in used
}

// journal line kinds.
const (
	opTake   = "take"
	opFinish = "finish"
	opTotals = "totals"
)

type line struct {
	Op string `json:"op"`
	Use
	Taken   int    `json:"taken,omitempty"`
	Settled int    `json:"settled,omitempty"`
	Spent   string `json:"spent,omitempty"`
}

// recentWindow is how long records are kept for the daily cap.
const recentWindow = 25 * time.Hour

func useKey(from, nonce string) string { return strings.ToLower(from) + "/" + strings.ToLower(nonce) }

// journalName is the file of one upstream (names have no '/' or spaces).
func journalName(upstream string) string { return upstream + ".jsonl" }

// LoadState opens (or starts) the state at path: its journals live in
// path + ".d". A state file of the earlier single-document layout at path is
// imported once and renamed to path + ".imported".
func LoadState(path string) (*State, error) {
	s := &State{used: map[string]*Use{}, ups: map[string]*upstreamState{}}
	if path == "" {
		return s, nil
	}
	s.dir = path + ".d"
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		return nil, fmt.Errorf("buyer state dir: %w", err)
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("read buyer state: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".jsonl") {
			continue
		}
		if err := s.replay(filepath.Join(s.dir, name), strings.TrimSuffix(name, ".jsonl")); err != nil {
			return nil, err
		}
	}
	if err := s.importLegacy(path); err != nil {
		return nil, err
	}
	return s, nil
}

func corrupt(path string, err error) error {
	return fmt.Errorf("buyer state %s is corrupt (%v): refusing to start, since a lost record could spend an authorization twice; move it aside only if you know no authorization in it is live", path, err)
}

// replay reads one journal. A last line cut short by a crash is dropped:
// its fsync never returned, so its authorization was never sent.
func (s *State) replay(path, upstream string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read buyer state: %w", err)
	}
	u := s.upstream(upstream)
	lines := bytes.Split(b, []byte("\n"))
	for i, raw := range lines {
		if len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		var l line
		if err := json.Unmarshal(raw, &l); err != nil {
			if i == len(lines)-1 {
				break // torn tail: no newline was written after it
			}
			return corrupt(path, fmt.Errorf("line %d: %w", i+1, err))
		}
		u.lines++
		switch l.Op {
		case opTotals:
			u.taken += l.Taken
			u.settled += l.Settled
			if v, ok := new(big.Int).SetString(l.Spent, 10); ok {
				u.spent.Add(u.spent, v)
			}
		case opTake:
			use := l.Use
			use.Upstream = upstream
			outcome := use.Outcome
			use.Outcome = "pending"
			s.add(u, &use)
			if outcome != "" && outcome != "pending" {
				s.settle(u, &use, outcome, use.Transaction)
			}
		case opFinish:
			if use, ok := s.used[useKey(l.From, l.Nonce)]; ok {
				s.settle(u, use, l.Outcome, l.Transaction)
			}
		default:
			return corrupt(path, fmt.Errorf("line %d: unknown op %q", i+1, l.Op))
		}
	}
	u.compacted = u.lines
	if len(b) > 0 && b[len(b)-1] != '\n' {
		// Cut the torn tail so the next append starts on a line of its own.
		if err := os.Truncate(path, int64(bytes.LastIndexByte(b, '\n')+1)); err != nil {
			return fmt.Errorf("repair buyer state %s: %w", path, err)
		}
	}
	return nil
}

// importLegacy reads the single-document state of earlier versions.
func (s *State) importLegacy(path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read buyer state: %w", err)
	}
	var old struct {
		Uses []Use `json:"uses"`
	}
	if err := json.Unmarshal(b, &old); err != nil {
		return corrupt(path, err)
	}
	touched := map[string]bool{}
	for i := range old.Uses {
		use := old.Uses[i]
		if _, ok := s.used[useKey(use.From, use.Nonce)]; ok {
			continue
		}
		u := s.upstream(use.Upstream)
		outcome := use.Outcome
		use.Outcome = "pending"
		s.add(u, &use)
		if outcome != "" && outcome != "pending" {
			s.settle(u, &use, outcome, use.Transaction)
		}
		touched[use.Upstream] = true
	}
	for name := range touched {
		if err := s.compact(name, time.Now()); err != nil {
			return err
		}
	}
	if err := os.Rename(path, path+".imported"); err != nil {
		return fmt.Errorf("buyer state: set the imported file aside: %w", err)
	}
	return nil
}

func (s *State) upstream(name string) *upstreamState {
	u := s.ups[name]
	if u == nil {
		u = &upstreamState{spent: new(big.Int)}
		s.ups[name] = u
	}
	return u
}

// add counts a taken record (s.mu held or loading).
func (s *State) add(u *upstreamState, use *Use) {
	if use.Outcome == "" {
		use.Outcome = "pending"
	}
	s.used[useKey(use.From, use.Nonce)] = use
	u.taken++
	u.live++
	i := sort.Search(len(u.recent), func(i int) bool { return u.recent[i].At.After(use.At) })
	u.recent = append(u.recent, nil)
	copy(u.recent[i+1:], u.recent[i:])
	u.recent[i] = use
}

// settle records an outcome (s.mu held or loading).
func (s *State) settle(u *upstreamState, use *Use, outcome, tx string) {
	if use.Outcome == "settled" {
		u.settled--
		if v, ok := new(big.Int).SetString(use.Value, 10); ok {
			u.spent.Sub(u.spent, v)
		}
	}
	use.Outcome, use.Transaction = outcome, tx
	if outcome == "settled" {
		u.settled++
		if v, ok := new(big.Int).SetString(use.Value, 10); ok {
			u.spent.Add(u.spent, v)
		}
	}
}

// Used reports whether an authorization was taken (and may still be valid).
func (s *State) Used(from, nonce string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.used[useKey(from, nonce)]
	return ok
}

// Lookup returns the record of an authorization taken.
func (s *State) Lookup(from, nonce string) (Use, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.used[useKey(from, nonce)]
	if !ok {
		return Use{}, false
	}
	return *u, true
}

// Take records u durably. It fails if the authorization was taken before
// or the record cannot be written and synced; the caller must then not
// send it.
func (s *State) Take(use Use) error {
	k := useKey(use.From, use.Nonce)
	use.Outcome = "pending"
	s.mu.Lock()
	if _, ok := s.used[k]; ok {
		s.mu.Unlock()
		return fmt.Errorf("authorization %s from %s was already used", use.Nonce, use.From)
	}
	u := s.upstream(use.Upstream)
	rec := &use
	s.add(u, rec)
	s.mu.Unlock()
	if err := s.append(u, use.Upstream, line{Op: opTake, Use: use}, true); err != nil {
		s.mu.Lock()
		delete(s.used, k)
		u.taken--
		u.live--
		for i, r := range u.recent {
			if r == rec {
				u.recent = append(u.recent[:i], u.recent[i+1:]...)
				break
			}
		}
		s.mu.Unlock()
		return err
	}
	return nil
}

// Finish records the outcome of a taken authorization. The line is not
// fsynced: a crash may lose it, which leaves the record pending (counted as
// spent for the daily cap, never offered again).
func (s *State) Finish(from, nonce, outcome, tx string) error {
	s.mu.Lock()
	use, ok := s.used[useKey(from, nonce)]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("authorization %s was never taken", nonce)
	}
	u := s.ups[use.Upstream]
	s.settle(u, use, outcome, tx)
	name := use.Upstream
	s.mu.Unlock()
	return s.append(u, name, line{Op: opFinish, Use: Use{From: from, Nonce: nonce, Outcome: outcome, Transaction: tx}}, false)
}

// append writes one journal line; sync makes it durable before returning.
func (s *State) append(u *upstreamState, name string, l line, sync bool) error {
	if s.dir == "" {
		return nil
	}
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	u.io.Lock()
	defer u.io.Unlock()
	if u.f == nil {
		f, err := os.OpenFile(filepath.Join(s.dir, journalName(name)), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("write buyer state: %w", err)
		}
		u.f = f
		if sync {
			syncDir(s.dir)
		}
	}
	if _, err := u.f.Write(b); err != nil {
		return fmt.Errorf("write buyer state: %w", err)
	}
	if sync {
		if err := u.f.Sync(); err != nil {
			return fmt.Errorf("sync buyer state: %w", err)
		}
	}
	u.lines++
	// Compact once the journal doubled since the last compaction: the cost
	// (proportional to the records kept) is spread over as many payments.
	if u.lines > 1024 && u.lines >= 2*u.compacted {
		if err := s.compactLocked(u, name, time.Now()); err != nil {
			return err
		}
	}
	return nil
}

func (s *State) compact(name string, now time.Time) error {
	if s.dir == "" {
		return nil
	}
	u := s.ups[name]
	u.io.Lock()
	defer u.io.Unlock()
	return s.compactLocked(u, name, now)
}

// compactLocked rewrites one journal (u.io held): a totals line for what
// is dropped, then the records still needed. Temp file, fsync, rename,
// fsync of the directory: a crash leaves the old or the new journal.
func (s *State) compactLocked(u *upstreamState, name string, now time.Time) error {
	s.mu.Lock()
	var keep []Use
	taken, settled, spent := u.taken, u.settled, new(big.Int).Set(u.spent)
	cutoff := now.Add(-recentWindow)
	var recent []*Use
	for k, use := range s.used {
		if use.Upstream != name {
			continue
		}
		if use.Outcome != "pending" && use.ValidBefore != 0 && use.ValidBefore < now.Unix() && use.At.Before(cutoff) {
			delete(s.used, k) // expired and out of the cap window: totals only
			u.live--
			continue
		}
		keep = append(keep, *use)
	}
	for _, r := range u.recent {
		if !r.At.Before(cutoff) {
			recent = append(recent, r)
		}
	}
	for _, r := range u.recent {
		if r.At.Before(cutoff) {
			if _, ok := s.used[useKey(r.From, r.Nonce)]; ok {
				recent = append(recent, r) // still live: keep it sorted below
			}
		}
	}
	sort.Slice(recent, func(i, j int) bool { return recent[i].At.Before(recent[j].At) })
	u.recent = recent
	s.mu.Unlock()

	// Totals of what is dropped = all totals minus the kept records'.
	for _, k := range keep {
		taken--
		if k.Outcome == "settled" {
			settled--
			if v, ok := new(big.Int).SetString(k.Value, 10); ok {
				spent.Sub(spent, v)
			}
		}
	}
	sort.Slice(keep, func(i, j int) bool { return keep[i].At.Before(keep[j].At) })
	var buf bytes.Buffer
	w := bufio.NewWriter(&buf)
	enc := json.NewEncoder(w)
	_ = enc.Encode(line{Op: opTotals, Taken: taken, Settled: settled, Spent: spent.String()})
	for _, k := range keep {
		_ = enc.Encode(line{Op: opTake, Use: k})
	}
	_ = w.Flush()
	path := filepath.Join(s.dir, journalName(name))
	f, err := os.CreateTemp(s.dir, ".compact-*")
	if err != nil {
		return fmt.Errorf("compact buyer state: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(buf.Bytes()); err != nil {
		f.Close()
		return fmt.Errorf("compact buyer state: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("compact buyer state: %w", err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("compact buyer state: %w", err)
	}
	syncDir(s.dir)
	if u.f != nil {
		u.f.Close()
		u.f = nil
	}
	u.lines = 1 + len(keep)
	u.compacted = u.lines
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// SpentSince sums the value of authorizations an upstream took at or after
// since, whatever their outcome (a taken authorization may settle). since
// must be within the last 25 hours.
func (s *State) SpentSince(upstream string, since time.Time) *big.Int {
	s.mu.Lock()
	defer s.mu.Unlock()
	sum := new(big.Int)
	u := s.ups[upstream]
	if u == nil {
		return sum
	}
	i := sort.Search(len(u.recent), func(i int) bool { return !u.recent[i].At.Before(since) })
	for _, r := range u.recent[i:] {
		if v, ok := new(big.Int).SetString(r.Value, 10); ok {
			sum.Add(sum, v)
		}
	}
	return sum
}

// Counts returns how many authorizations an upstream took, how many of
// them settled and the value settled.
func (s *State) Counts(upstream string) (taken, settled int, spent *big.Int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.ups[upstream]
	if u == nil {
		return 0, 0, new(big.Int)
	}
	return u.taken, u.settled, new(big.Int).Set(u.spent)
}

// Close closes the journals.
func (s *State) Close() error {
	s.mu.Lock()
	ups := make([]*upstreamState, 0, len(s.ups))
	for _, u := range s.ups {
		ups = append(ups, u)
	}
	s.mu.Unlock()
	for _, u := range ups {
		u.io.Lock()
		if u.f != nil {
			u.f.Close()
			u.f = nil
		}
		u.io.Unlock()
	}
	return nil
}
