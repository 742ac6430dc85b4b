package pgstore

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgxlisten"
)

// Waker turns the NOTIFY of every committed append into an immediate poll
// by the outbox subscribers, so delivery takes milliseconds instead of a
// poll interval, while an idle system polls only once per IdlePoll.
type Waker struct {
	connect func(ctx context.Context) (*pgx.Conn, error)
	log     *slog.Logger

	mu   sync.Mutex
	subs map[*Backoff]struct{}
}

// NewWaker returns a waker that listens on its own connection from connect.
func NewWaker(connect func(ctx context.Context) (*pgx.Conn, error), log *slog.Logger) *Waker {
	return &Waker{connect: connect, log: log, subs: map[*Backoff]struct{}{}}
}

// Run listens until ctx is done, reconnecting after failures. Missed
// notifications (while reconnecting) only cost one idle poll interval.
func (w *Waker) Run(ctx context.Context) error {
	l := &pgxlisten.Listener{
		Connect:        w.connect,
		ReconnectDelay: time.Second,
		LogError: func(ctx context.Context, err error) {
			if ctx.Err() == nil {
				w.log.WarnContext(ctx, "outbox listener", "err", err)
			}
		},
	}
	l.Handle(NotifyChannel, pgxlisten.HandlerFunc(func(_ context.Context, n *pgconn.Notification, _ *pgx.Conn) error {
		if n.Payload == "" {
			w.Wake()
		} else {
			w.wake(strings.Split(n.Payload, ","))
		}
		return nil
	}))
	err := l.Listen(ctx)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// Wake signals every subscriber that new events may be visible.
func (w *Waker) Wake() { w.wake(nil) }

// wake signals the subscribers that read events of streamTypes (nil:
// every subscriber). A subscriber scoped to other types is left to its
// idle poll, which reads what came meanwhile in batches.
func (w *Waker) wake(streamTypes []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for b := range w.subs {
		if streamTypes == nil || b.scope == nil || slices.ContainsFunc(streamTypes, func(t string) bool { return slices.Contains(b.scope, t) }) {
			b.signal()
		}
	}
}

// NewBackoff returns a watermill-sql BackoffManager for one subscriber; it
// is released when done is closed. scope, if not nil, lists the stream
// types whose appends wake the subscriber (projection.Scope).
func (w *Waker) NewBackoff(idlePoll time.Duration, scope []string, done <-chan struct{}) *Backoff {
	b := &Backoff{wake: make(chan struct{}, 1), idle: idlePoll, scope: scope, done: done}
	w.mu.Lock()
	w.subs[b] = struct{}{}
	w.mu.Unlock()
	go func() {
		<-done
		w.mu.Lock()
		delete(w.subs, b)
		w.mu.Unlock()
	}()
	return b
}

// Backoff implements watermill-sql's BackoffManager. The subscriber calls
// HandleError after every poll, outside its transaction, and sleeps for the
// returned duration; Backoff does the waiting itself so that a wake-up can
// cut it short, and returns 0.
type Backoff struct {
	wake  chan struct{}
	idle  time.Duration
	scope []string
	done  <-chan struct{}

	// burst is the next quick re-poll delay after a wake-up found nothing:
	// an event can be committed yet held back behind an older running
	// transaction, which sends no notification when it ends.
	burst time.Duration

	lastOK atomic.Int64 // unix nanos of the last successful poll
}

const (
	burstStart = 2 * time.Millisecond
	burstMax   = 250 * time.Millisecond
	retryAfter = time.Second
)

func (b *Backoff) signal() {
	select {
	case b.wake <- struct{}{}:
	default: // already pending: one poll will see everything
	}
}

// LastOK returns when the subscriber last polled without error.
func (b *Backoff) LastOK() time.Time {
	n := b.lastOK.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// HandleError implements wsql.BackoffManager.
func (b *Backoff) HandleError(logger watermill.LoggerAdapter, noMsg bool, err error) time.Duration {
	if err != nil {
		if strings.Contains(strings.ToLower(err.Error()), "concurrent update") {
			return 0 // another replica's poll won the offsets row; try again
		}
		logger.Error("outbox poll failed", err, nil)
		return retryAfter
	}
	b.lastOK.Store(time.Now().UnixNano())
	if !noMsg {
		b.burst = 0
		return 0
	}
	wait := b.idle
	if b.burst > 0 {
		wait = b.burst
		b.burst *= 2
		if b.burst > burstMax {
			b.burst = 0
		}
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-b.wake:
		b.burst = burstStart
	case <-t.C:
	case <-b.done:
	}
	return 0
}
