package passcode

import (
	"context"
	"runtime"
	"testing"
)

// BenchmarkVerifyDefault is the cost of one verification with DefaultParams
// on one worker: the server's per-guess price, and an attacker's per-guess
// price per core.
func BenchmarkVerifyDefault(b *testing.B) {
	h := newTestHasher(b, Options{Params: DefaultParams, Workers: 1})
	s := acquire(b, h)
	v := mustNew(b, s, "123456")
	pc := []byte("654321")
	b.Logf("params: %v", DefaultParams)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Verify(v, pc); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hashes/s")
}

// BenchmarkPoolDefault is the pool's throughput with DefaultParams and the
// default Workers (GOMAXPROCS): how many guesses per second one replica
// can evaluate before it starts answering ErrBusy.
func BenchmarkPoolDefault(b *testing.B) {
	h := newTestHasher(b, Options{Params: DefaultParams, Queue: 1 << 20})
	v := mustNew(b, acquire(b, h), "123456")
	b.Logf("params: %v, workers: %d (GOMAXPROCS %d)", DefaultParams, h.Stats().Workers, runtime.GOMAXPROCS(0))
	b.SetParallelism(4) // more callers than workers, as under load
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		pc := []byte("654321")
		for pb.Next() {
			s, err := h.Acquire(context.Background())
			if err != nil {
				b.Error(err)
				return
			}
			if _, err := s.Verify(v, pc); err != nil {
				b.Error(err)
			}
			s.Release()
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "hashes/s")
}
