package rsverify

import (
	"container/heap"
	"context"
	"crypto/sha256"
	"errors"
	"sync"
	"time"
)

// DefaultReplayCacheSize is the capacity of the default replay cache. Each
// entry costs about 80 bytes; at 1,000 proofs/s and a 60 s leeway the cache
// holds about 120,000 entries (a proof is remembered until iat + leeway).
const DefaultReplayCacheSize = 1 << 20

// ErrReplayCacheFull is returned by MemoryReplayCache when it holds its
// maximum of unexpired entries. The request is then refused (503 from the
// middleware): evicting an unexpired entry would let that proof be replayed.
var ErrReplayCacheFull = errors.New("rsverify: replay cache full")

// MemoryReplayCache is an in-process ReplayCache with a bounded number of
// entries. Entries are keyed by SHA-256(jkt, jti), so their size does not
// depend on what clients send, and dropped once their time has passed.
type MemoryReplayCache struct {
	now func() time.Time
	max int

	mu      sync.Mutex
	entries map[[32]byte]time.Time
	expiry  expiryHeap
}

// NewMemoryReplayCache returns a cache of at most maxEntries unexpired
// proofs (DefaultReplayCacheSize if maxEntries <= 0). now is the clock used
// to expire entries (time.Now if nil); it must be the Verifier's clock, since
// the "until" times it gets are computed from that clock.
func NewMemoryReplayCache(maxEntries int, now func() time.Time) *MemoryReplayCache {
	if maxEntries <= 0 {
		maxEntries = DefaultReplayCacheSize
	}
	if now == nil {
		now = time.Now
	}
	return &MemoryReplayCache{now: now, max: maxEntries, entries: make(map[[32]byte]time.Time)}
}

// Seen implements ReplayCache.
func (c *MemoryReplayCache) Seen(_ context.Context, jkt, jti string, until time.Time) (bool, error) {
	h := sha256.New()
	h.Write([]byte(jkt))
	h.Write([]byte{0})
	h.Write([]byte(jti))
	var key [32]byte
	h.Sum(key[:0])

	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	// Drop expired entries; amortized O(log n) per entry ever added. An
	// entry lives through its until instant: a proof is acceptable up to
	// and including iat + leeway.
	for len(c.expiry) > 0 && c.expiry[0].until.Before(now) {
		e := heap.Pop(&c.expiry).(expiryEntry)
		delete(c.entries, e.key)
	}
	if _, ok := c.entries[key]; ok {
		return true, nil
	}
	if until.Before(now) {
		// Already outside its window: the proof's iat check refuses any
		// later use, nothing to remember.
		return false, nil
	}
	if len(c.entries) >= c.max {
		return false, ErrReplayCacheFull
	}
	c.entries[key] = until
	heap.Push(&c.expiry, expiryEntry{key: key, until: until})
	return false, nil
}

// Len returns the number of entries held (for metrics); expired entries
// are dropped by the next Seen.
func (c *MemoryReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

type expiryEntry struct {
	key   [32]byte
	until time.Time
}

// expiryHeap is a min-heap of entries by expiry time.
type expiryHeap []expiryEntry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].until.Before(h[j].until) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiryEntry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}
