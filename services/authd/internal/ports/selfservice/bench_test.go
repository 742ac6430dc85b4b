package selfservice_test

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"strongroom.dev/services/authd/internal/authdtest"
	"strongroom.dev/services/authd/internal/passcode"
	"strongroom.dev/services/authd/mobileclient"
)

// BenchmarkPasscodeGrant measures whole passcode sign-ins over TLS on
// PostgreSQL — DPoP, HPKE open, attempt counted, Argon2id, outcome, token,
// session — at 8 and 32 concurrent devices. Bounded by Argon2id by design:
// the hash cost is reported beside it.
func BenchmarkPasscodeGrant(b *testing.B) {
	for _, conc := range []int{8, 32} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			s := authdtest.Start(b, authdtest.Options{})
			ctx := context.Background()
			apps := make([]*mobileclient.Client, conc)
			for i := range apps {
				apps[i] = enrolledB(b, s, fmt.Sprintf("bench-%d", i))
			}
			var shed atomic.Int64
			closedLoop(b, apps, func(app *mobileclient.Client) error {
				_, err := app.SignIn(ctx, "123456")
				for mobileclient.Code(err) == "temporarily_unavailable" {
					// Load shed by the bounded hashing pool: an app
					// retries after a pause, and so does the benchmark.
					shed.Add(1)
					time.Sleep(20 * time.Millisecond)
					_, err = app.SignIn(ctx, "123456")
				}
				return err
			})
			b.ReportMetric(hashMillis(b), "argon2id-ms/hash")
			b.ReportMetric(float64(shed.Load())/float64(b.N), "shed/grant")
			b.Logf("Argon2id %s on %d workers", passcode.DefaultParams, s.App.Hasher.Stats().Workers)
		})
	}
}

// BenchmarkGuessFlood sends 200 concurrent wrong guesses for one device
// and reports the peak heap while they are refused: the bounded hashing
// pool keeps memory flat however many guesses arrive.
func BenchmarkGuessFlood(b *testing.B) {
	s := authdtest.Start(b, authdtest.Options{})
	app := enrolledB(b, s, "flood")
	ctx := context.Background()
	var peak atomic.Uint64
	stop := make(chan struct{})
	go func() {
		var m runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
				runtime.ReadMemStats(&m)
				if m.HeapInuse > peak.Load() {
					peak.Store(m.HeapInuse)
				}
			}
		}
	}()
	refused := 0
	var mu sync.Mutex
	for b.Loop() {
		var wg sync.WaitGroup
		for range 200 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := app.SignIn(ctx, "999999")
				if code := mobileclient.Code(err); code != "passcode_incorrect" {
					mu.Lock()
					refused++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
	close(stop)
	b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(refused)/float64(b.N), "refused/flood")
}

func enrolledB(b *testing.B, s *authdtest.Server, user string) *mobileclient.Client {
	b.Helper()
	ctx := context.Background()
	app, err := mobileclient.New(s.PublicURL, s.Client)
	if err != nil {
		b.Fatal(err)
	}
	if err := app.Enroll(ctx, s.ActivationCode(b, user, "enroll"), "Phone", "ios"); err != nil {
		b.Fatal(err)
	}
	if err := app.SetPasscode(ctx, "123456", ""); err != nil {
		b.Fatal(err)
	}
	return app
}

// hashMillis measures one Argon2id hash with the default parameters.
func hashMillis(b *testing.B) float64 {
	h, err := passcode.NewHasher(passcode.Options{Peppers: []passcode.Pepper{{ID: "bench", Key: []byte("0123456789abcdef0123456789abcdef")}}})
	if err != nil {
		b.Fatal(err)
	}
	slot, err := h.Acquire(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer slot.Release()
	start := time.Now()
	if _, err := slot.New([]byte("123456")); err != nil {
		b.Fatal(err)
	}
	return float64(time.Since(start).Microseconds()) / 1000
}

// BenchmarkBiometricGrant measures whole biometric sign-ins over TLS on
// PostgreSQL — a challenge (DPoP with nonce, one append) and the grant
// (DPoP, assertion verified, challenge read, session started and challenge
// consumed in one append) — at 8 and 32 concurrent devices.
func BenchmarkBiometricGrant(b *testing.B) {
	for _, conc := range []int{8, 32} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			s := authdtest.Start(b, authdtest.Options{})
			ctx := context.Background()
			apps := make([]*mobileclient.Client, conc)
			for i := range apps {
				apps[i] = enrolledB(b, s, fmt.Sprintf("bench-%d", i))
				tok, err := apps[i].SignIn(ctx, "123456")
				if err != nil {
					b.Fatal(err)
				}
				if err := apps[i].EnrollBiometric(ctx, tok, nil); err != nil {
					b.Fatal(err)
				}
			}
			closedLoop(b, apps, func(app *mobileclient.Client) error {
				_, err := app.SignInBiometric(ctx, nil)
				return err
			})
		})
	}
}

// closedLoop runs b.N sign-ins, each app one at a time, all apps at once,
// and reports grants/s and the p50 and p99 latency.
func closedLoop(b *testing.B, apps []*mobileclient.Client, signIn func(*mobileclient.Client) error) {
	var next atomic.Int64
	lat := make([]time.Duration, 0, b.N)
	var mu sync.Mutex
	b.ResetTimer()
	var wg sync.WaitGroup
	for _, app := range apps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				start := time.Now()
				if err := signIn(app); err != nil {
					b.Error(err)
					return
				}
				mu.Lock()
				lat = append(lat, time.Since(start))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "grants/s")
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
}
