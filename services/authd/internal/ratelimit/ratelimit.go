// Package ratelimit limits attempts per client IP and in total, with token
// buckets from golang.org/x/time/rate. It guards what can be guessed
// (activation codes): the per-IP limit slows one guesser, the global limit
// bounds a distributed one.
package ratelimit

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter is safe for concurrent use.
type Limiter struct {
	perIP  rate.Limit
	burst  int
	global *rate.Limiter

	mu      sync.Mutex
	clients map[string]*client
	now     func() time.Time
}

type client struct {
	lim  *rate.Limiter
	seen time.Time
}

// maxClients bounds memory under a flood of distinct addresses; beyond it
// idle entries are dropped first.
const maxClients = 100_000

// New returns a limiter allowing perIP events per second per address (with
// burst) and global events per second in total (with globalBurst).
func New(perIP rate.Limit, burst int, global rate.Limit, globalBurst int) *Limiter {
	return &Limiter{perIP: perIP, burst: burst, global: rate.NewLimiter(global, globalBurst),
		clients: map[string]*client{}, now: time.Now}
}

// Allow reports whether one more attempt from ip may proceed now.
func (l *Limiter) Allow(ip string) bool {
	now := l.now()
	l.mu.Lock()
	c, ok := l.clients[ip]
	if !ok {
		if len(l.clients) >= maxClients {
			l.sweepLocked(now, time.Minute)
		}
		c = &client{lim: rate.NewLimiter(l.perIP, l.burst)}
		l.clients[ip] = c
	}
	c.seen = now
	allowed := c.lim.AllowN(now, 1)
	l.mu.Unlock()
	// The global bucket is only charged for attempts the per-IP limit let
	// through, so one noisy address cannot starve everyone else.
	return allowed && l.global.AllowN(now, 1)
}

// Sweep forgets addresses idle for longer than idle.
func (l *Limiter) Sweep(idle time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweepLocked(l.now(), idle)
}

func (l *Limiter) sweepLocked(now time.Time, idle time.Duration) {
	for ip, c := range l.clients {
		if now.Sub(c.seen) > idle {
			delete(l.clients, ip)
		}
	}
}
