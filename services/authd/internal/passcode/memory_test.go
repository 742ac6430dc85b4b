package passcode

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A flood of guesses with production parameters keeps the heap near
// Workers × 19 MiB: every guess is admitted (Queue = number of guesses) and
// evaluated, yet only Workers hashes hold Argon2 memory at a time.
func TestMemoryBound(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: hashes 200 times with the production Argon2id parameters (make test runs it)")
	}
	const workers, guesses = 2, 200
	h := newTestHasher(t, Options{Params: DefaultParams, Workers: workers, Queue: guesses, MaxWait: 10 * time.Minute})
	v := mustNew(t, acquire(t, h), "123456")
	for range 3 {
		runtime.GC()
	}
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	var (
		peakHeap  uint64
		peakBusy  int
		stop      = make(chan struct{})
		sampled   = make(chan struct{})
		evaluated atomic.Int64
	)
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			peakHeap = max(peakHeap, ms.HeapInuse)
			peakBusy = max(peakBusy, h.Stats().Busy)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()

	start := make(chan struct{})
	var wg sync.WaitGroup
	begin := time.Now()
	for range guesses {
		wg.Go(func() {
			<-start
			s, err := h.Acquire(context.Background())
			if err != nil {
				t.Errorf("Acquire: %v", err)
				return
			}
			defer s.Release()
			ok, err := s.Verify(v, []byte("654321"))
			if err != nil || ok {
				t.Errorf("Verify = %v, %v", ok, err)
			}
			evaluated.Add(1)
		})
	}
	close(start)
	wg.Wait()
	close(stop)
	<-sampled

	const mib = 1 << 20
	limit := uint64(2*workers*19*mib + 64*mib)
	t.Logf("%d guesses in %v; HeapInuse before %.1f MiB, peak %.1f MiB (limit %.0f MiB); peak busy workers %d",
		evaluated.Load(), time.Since(begin).Round(time.Millisecond),
		float64(before.HeapInuse)/mib, float64(peakHeap)/mib, float64(limit)/mib, peakBusy)
	if evaluated.Load() != guesses {
		t.Fatalf("evaluated %d of %d guesses", evaluated.Load(), guesses)
	}
	if peakHeap >= limit {
		t.Fatalf("HeapInuse peaked at %.1f MiB, limit %.0f MiB", float64(peakHeap)/mib, float64(limit)/mib)
	}
	if peakBusy > workers {
		t.Fatalf("%d workers busy at once, pool has %d", peakBusy, workers)
	}
}
