package passcode

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"
)

var (
	// ErrBusy means every worker is busy and the wait queue is full (or
	// MaxWait passed). Nothing was evaluated and nothing should be
	// counted: answer 503 with Retry-After.
	ErrBusy = errors.New("passcode hashing is saturated")
	// ErrSlotReleased reports use of a Slot after Release.
	ErrSlotReleased = errors.New("passcode: slot already released")
)

// Options configure a Hasher.
type Options struct {
	// Params for new verifiers. The zero value means DefaultParams.
	Params Params
	// Peppers: the first is current (used for new verifiers); all are
	// accepted for verification. At least one is required.
	Peppers []Pepper
	// Workers is the number of hashes that may run at once, and so bounds
	// hashing memory at about Workers × Params.Memory (for verifiers
	// made with other parameters, their stored memory cost). Default
	// runtime.GOMAXPROCS(0), which since Go 1.25 follows the container's
	// CPU limit.
	Workers int
	// Queue is how many callers may wait for a worker; beyond that,
	// Acquire fails with ErrBusy at once. Default 4 × Workers; negative
	// means no waiting at all.
	Queue int
	// MaxWait is how long a waiting caller waits before ErrBusy. Default
	// 2s.
	MaxWait time.Duration
}

// Hasher hashes and verifies passcodes on a bounded pool. It is safe for
// concurrent use.
type Hasher struct {
	params  Params
	peppers []Pepper // copies; [0] is current
	limits  limits

	workers int
	queue   int64
	maxWait time.Duration

	sem     chan struct{} // one token per busy worker
	waiting atomic.Int64
	refused atomic.Uint64
}

// NewHasher validates o and returns a Hasher. Pepper keys are copied.
func NewHasher(o Options) (*Hasher, error) {
	if o.Params == (Params{}) {
		o.Params = DefaultParams
	}
	if err := validateParams(o.Params); err != nil {
		return nil, err
	}
	if len(o.Peppers) == 0 {
		return nil, errors.New("passcode: at least one pepper is required")
	}
	peppers := make([]Pepper, len(o.Peppers))
	seen := make(map[string]bool, len(o.Peppers))
	for i, p := range o.Peppers {
		if !validPepperID(p.ID) {
			return nil, fmt.Errorf("passcode: pepper %d: id must be 1-64 of A-Z a-z 0-9 . _ : -", i)
		}
		if seen[p.ID] {
			return nil, fmt.Errorf("passcode: pepper id %q configured twice", p.ID)
		}
		seen[p.ID] = true
		if len(p.Key) < 32 {
			return nil, fmt.Errorf("passcode: pepper %q: key must be at least 32 bytes", p.ID)
		}
		if allZero(p.Key) {
			return nil, fmt.Errorf("passcode: pepper %q: key is all zeros", p.ID)
		}
		peppers[i] = Pepper{ID: p.ID, Key: append([]byte(nil), p.Key...)}
	}
	if o.Workers <= 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	switch {
	case o.Queue == 0:
		o.Queue = 4 * o.Workers
	case o.Queue < 0:
		o.Queue = 0
	}
	switch {
	case o.MaxWait == 0:
		o.MaxWait = 2 * time.Second
	case o.MaxWait < 0:
		return nil, errors.New("passcode: MaxWait must not be negative")
	}
	return &Hasher{
		params:  o.Params,
		peppers: peppers,
		limits:  defaultLimits,
		workers: o.Workers,
		queue:   int64(o.Queue),
		maxWait: o.MaxWait,
		sem:     make(chan struct{}, o.Workers),
	}, nil
}

func validateParams(p Params) error {
	if p.Threads < 1 || p.Threads > maxThreads {
		return fmt.Errorf("passcode: invalid Params (%v): threads must be 1 to %d", p, maxThreads)
	}
	if p.Time < 1 || p.Time > maxTime {
		return fmt.Errorf("passcode: invalid Params (%v): time must be 1 to %d", p, maxTime)
	}
	if p.Memory < 8*uint32(p.Threads) || p.Memory > maxMemoryKiB {
		return fmt.Errorf("passcode: invalid Params (%v): memory must be 8×threads to %d KiB", p, maxMemoryKiB)
	}
	if p.KeyLen < minHashLen || p.KeyLen > maxHashLen {
		return fmt.Errorf("passcode: invalid Params (%v): key length must be %d to %d bytes", p, minHashLen, maxHashLen)
	}
	return nil
}

func validPepperID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

func allZero(b []byte) bool {
	var acc byte
	for _, c := range b {
		acc |= c
	}
	return acc == 0
}

// Stats are pool gauges and counters for metrics.
type Stats struct {
	// Workers is the configured number of workers.
	Workers int
	// Busy is the number of slots held.
	Busy int
	// Waiting is the number of callers waiting in Acquire.
	Waiting int
	// Refused counts ErrBusy answers (queue full or MaxWait expired) since
	// the Hasher was made.
	Refused uint64
}

// Stats returns a snapshot of the pool.
func (h *Hasher) Stats() Stats {
	return Stats{
		Workers: h.workers,
		Busy:    len(h.sem),
		Waiting: int(h.waiting.Load()),
		Refused: h.refused.Load(),
	}
}

// Slot is a reserved worker. Acquire one before counting a passcode attempt
// so that a saturated server refuses without counting; then hash on it with
// New or Verify (as often as needed, e.g. Verify then New to rehash), and
// Release it. Calls on one Slot are serialized, so a Slot never runs more
// than one hash at a time.
type Slot struct {
	h       *Hasher
	mu      sync.Mutex // held while hashing; serializes use of the slot
	state   *slotState
	cleanup runtime.Cleanup
}

// slotState is separate from Slot so that the GC safety net can refer to
// it without keeping the Slot reachable.
type slotState struct {
	h        *Hasher
	released atomic.Bool
}

func (st *slotState) release() bool {
	if st.released.CompareAndSwap(false, true) {
		<-st.h.sem
		return true
	}
	return false
}

// Acquire reserves a worker. If none is free it waits, provided fewer than
// Queue callers are already waiting, until one frees up, MaxWait passes
// (ErrBusy) or ctx ends (ctx's error). With the queue full it returns
// ErrBusy at once. Waiters are served in about arrival order (Go channel
// senders queue FIFO, and a freed worker is handed to a waiter before a
// newcomer can take it).
//
// The caller must call Release on the returned Slot, typically deferred.
func (h *Hasher) Acquire(ctx context.Context) (*Slot, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	select {
	case h.sem <- struct{}{}:
		return h.newSlot(), nil
	default:
	}
	for {
		n := h.waiting.Load()
		if n >= h.queue {
			h.refused.Add(1)
			return nil, ErrBusy
		}
		if h.waiting.CompareAndSwap(n, n+1) {
			break
		}
	}
	defer h.waiting.Add(-1)
	timer := time.NewTimer(h.maxWait)
	defer timer.Stop()
	select {
	case h.sem <- struct{}{}:
		return h.newSlot(), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-timer.C:
		h.refused.Add(1)
		return nil, ErrBusy
	}
}

func (h *Hasher) newSlot() *Slot {
	st := &slotState{h: h}
	s := &Slot{h: h, state: st}
	// Safety net, not a substitute for Release: a Slot dropped without
	// Release would shrink the pool for good, so give its worker back when
	// the Slot is collected.
	s.cleanup = runtime.AddCleanup(s, func(st *slotState) { st.release() }, st)
	return s
}

// Release returns the worker to the pool. It waits for a hash running on
// the slot to finish, so the worker stays counted while it hashes. Calling
// it again is a no-op.
func (s *Slot) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state.release() {
		s.cleanup.Stop()
	}
}

// New makes a verifier for passcode with the current pepper, the Hasher's
// Params and a fresh 16-byte random salt (so two devices, or two settings
// of the same passcode, never share a verifier). It does not check the
// passcode policy; call Policy.Validate first. passcode is not modified.
func (s *Slot) New(passcode []byte) (Verifier, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state.released.Load() {
		return Verifier{}, ErrSlotReleased
	}
	h := s.h
	pep := &h.peppers[0]
	salt := make([]byte, saltLen)
	rand.Read(salt) // never fails (crypto/rand: Go ≥ 1.24 crashes instead)
	v := phc{memory: h.params.Memory, time: h.params.Time, threads: h.params.Threads, salt: salt}
	v.hash = hashPeppered(pep.Key, passcode, salt, v.time, v.memory, v.threads, h.params.KeyLen)
	out := Verifier{PHC: v.encode(), PepperID: pep.ID}
	clear(v.hash)
	return out, nil
}

// Verify reports whether passcode matches v, comparing in constant time.
// The Argon2id parameters come from v.PHC, so verifiers made under older
// Params keep working; parameters beyond the package ceilings are refused
// with ErrMalformed. A verifier made with a pepper that is not configured
// gives ErrUnknownPepper. On either error nothing was evaluated and ok is
// false. passcode is not modified.
func (s *Slot) Verify(v Verifier, passcode []byte) (ok bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state.released.Load() {
		return false, ErrSlotReleased
	}
	h := s.h
	stored, err := h.limits.parsePHC(v.PHC)
	if err != nil {
		return false, err
	}
	pep := h.pepper(v.PepperID)
	if pep == nil {
		return false, ErrUnknownPepper
	}
	got := hashPeppered(pep.Key, passcode, stored.salt, stored.time, stored.memory, stored.threads, uint32(len(stored.hash)))
	ok = subtle.ConstantTimeCompare(got, stored.hash) == 1
	clear(got)
	clear(stored.hash)
	return ok, nil
}

func (h *Hasher) pepper(id string) *Pepper {
	for i := range h.peppers {
		if h.peppers[i].ID == id {
			return &h.peppers[i]
		}
	}
	return nil
}

// hashPeppered is Argon2id(HMAC-SHA-256(key, passcode), salt, ...). The
// HMAC output is zeroed; the HMAC's and Argon2's internal buffers cannot be
// reached from here and are left to the garbage collector.
func hashPeppered(key, passcode, salt []byte, t, m uint32, p uint8, keyLen uint32) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write(passcode)
	var x [sha256.Size]byte
	mac.Sum(x[:0])
	out := argon2.IDKey(x[:], salt, t, m, p, keyLen)
	clear(x[:])
	return out
}

// NeedsRehash reports whether v should be replaced (with Slot.New, after a
// successful Verify on the same Slot): it was made with other parameters
// or salt length than the current ones, or with a pepper that is no longer
// current. A malformed verifier also needs it.
func (h *Hasher) NeedsRehash(v Verifier) bool {
	if v.PepperID != h.peppers[0].ID {
		return true
	}
	stored, err := h.limits.parsePHC(v.PHC)
	if err != nil {
		return true
	}
	p := h.params
	return stored.memory != p.Memory || stored.time != p.Time || stored.threads != p.Threads ||
		uint32(len(stored.hash)) != p.KeyLen || len(stored.salt) != saltLen
}
