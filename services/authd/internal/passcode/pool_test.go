package passcode

import (
	"context"
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"
)

// waitFor polls cond; the pool has no hook for "a caller is now waiting",
// so tests that need one poll Stats (never sleeping longer than needed).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// 50 callers arrive at once at a pool with Workers=2, Queue=2: exactly two
// get a slot, exactly two wait, and the other 46 are refused at once —
// before any slot is released — without being counted anywhere else.
func TestAcquireSaturation(t *testing.T) {
	const n = 50
	h := newTestHasher(t, Options{Workers: 2, Queue: 2, MaxWait: time.Minute})
	start := make(chan struct{})
	release := make(chan struct{}) // closed to let slot holders go
	busy := make(chan struct{}, n)
	got := make(chan *Slot, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			<-start
			s, err := h.Acquire(context.Background())
			switch {
			case errors.Is(err, ErrBusy):
				busy <- struct{}{}
			case err != nil:
				t.Errorf("Acquire: %v", err)
			default:
				got <- s
				<-release
				if _, err := s.Verify(Verifier{PHC: "x", PepperID: "p2"}, nil); !errors.Is(err, ErrMalformed) {
					t.Errorf("Verify on slot: %v", err)
				}
				s.Release()
			}
		})
	}
	close(start)

	// Two slots are granted and held; no release has happened yet.
	for range 2 {
		<-got
	}
	// The 46 refusals all arrive while both slots are still held.
	for i := range n - 4 {
		select {
		case <-busy:
		case <-got:
			t.Fatalf("a third caller got a slot while both were held (after %d refusals)", i)
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d callers refused", i, n-4)
		}
	}
	waitFor(t, "two waiters", func() bool { return h.Stats().Waiting == 2 })
	if st := h.Stats(); st != (Stats{Workers: 2, Busy: 2, Waiting: 2, Refused: n - 4}) {
		t.Fatalf("Stats = %+v", st)
	}
	select {
	case <-busy:
		t.Fatal("a waiter was refused")
	case <-got:
		t.Fatal("a waiter got a slot while both were held")
	default:
	}

	close(release)
	for range 2 { // the two waiters are served once slots free up
		select {
		case <-got:
		case <-busy:
			t.Fatal("a waiter was refused after release")
		case <-time.After(10 * time.Second):
			t.Fatal("waiters not served after release")
		}
	}
	wg.Wait()
	if st := h.Stats(); st != (Stats{Workers: 2, Busy: 0, Waiting: 0, Refused: n - 4}) {
		t.Fatalf("final Stats = %+v", st)
	}
}

func TestAcquireMaxWait(t *testing.T) {
	const maxWait = 50 * time.Millisecond
	h := newTestHasher(t, Options{Workers: 1, Queue: 1, MaxWait: maxWait})
	held := acquire(t, h)
	begin := time.Now()
	s, err := h.Acquire(context.Background())
	if !errors.Is(err, ErrBusy) || s != nil {
		t.Fatalf("Acquire = %v, %v; want ErrBusy", s, err)
	}
	if d := time.Since(begin); d < maxWait {
		t.Fatalf("gave up after %v, before MaxWait %v", d, maxWait)
	}
	if st := h.Stats(); st != (Stats{Workers: 1, Busy: 1, Waiting: 0, Refused: 1}) {
		t.Fatalf("Stats = %+v", st)
	}
	held.Release()
	s2 := acquire(t, h) // the pool recovers
	s2.Release()
}

func TestAcquireContextCancel(t *testing.T) {
	h := newTestHasher(t, Options{Workers: 1, Queue: 1, MaxWait: time.Minute})
	held := acquire(t, h)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := h.Acquire(ctx)
		done <- err
	}()
	waitFor(t, "the waiter", func() bool { return h.Stats().Waiting == 1 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire = %v; want context.Canceled", err)
	}
	if st := h.Stats(); st != (Stats{Workers: 1, Busy: 1, Waiting: 0, Refused: 0}) {
		t.Fatalf("Stats = %+v (a cancellation is not a refusal)", st)
	}
	// A context that is already done fails at once, even with a free slot.
	held.Release()
	if _, err := h.Acquire(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire(done ctx) = %v", err)
	}
	dctx, dcancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer dcancel()
	held2 := acquire(t, h)
	if _, err := h.Acquire(dctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire(deadline) = %v", err)
	}
	held2.Release()
	if st := h.Stats(); st.Busy != 0 || st.Waiting != 0 {
		t.Fatalf("Stats = %+v", st)
	}
}

func TestNoQueue(t *testing.T) {
	h := newTestHasher(t, Options{Workers: 1, Queue: -1, MaxWait: time.Minute})
	acquire(t, h)
	begin := time.Now()
	if _, err := h.Acquire(context.Background()); !errors.Is(err, ErrBusy) {
		t.Fatalf("Acquire = %v; want ErrBusy", err)
	}
	if d := time.Since(begin); d > time.Second {
		t.Fatalf("refusal took %v", d)
	}
}

// A Slot is one worker: concurrent hashes on the same Slot run one at a
// time, and Release waits for a running hash.
func TestSlotSerializes(t *testing.T) {
	h := newTestHasher(t, Options{Workers: 1})
	s := acquire(t, h)
	v := mustNew(t, s, "123456")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if ok, err := s.Verify(v, []byte("123456")); err != nil || !ok {
				t.Errorf("Verify = %v, %v", ok, err)
			}
		})
	}
	wg.Wait()
	s.Release()
}

// A Slot dropped without Release gives its worker back when collected.
func TestLeakedSlotIsReclaimed(t *testing.T) {
	h := newTestHasher(t, Options{Workers: 1})
	func() {
		if _, err := h.Acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
	}()
	waitFor(t, "the leaked slot to be reclaimed", func() bool {
		runtime.GC()
		return h.Stats().Busy == 0
	})
}
