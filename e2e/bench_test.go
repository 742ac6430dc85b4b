package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"strongroom.dev/services/authd/mobileclient"
)

// procCPU returns the CPU seconds (user+system) of one process, or of all
// processes named comm when pid is 0.
func procCPU(pid int, comm string) float64 {
	read := func(path string) (string, float64) {
		raw, err := os.ReadFile(path)
		if err != nil {
			return "", 0
		}
		s := string(raw)
		open, closeIdx := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || closeIdx < 0 {
			return "", 0
		}
		f := strings.Fields(s[closeIdx+2:])
		if len(f) < 13 {
			return "", 0
		}
		u, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		return s[open+1 : closeIdx], (u + st) / 100 // USER_HZ
	}
	if pid != 0 {
		_, cpu := read(fmt.Sprintf("/proc/%d/stat", pid))
		return cpu
	}
	total := 0.0
	paths, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range paths {
		if c, cpu := read(p); c == comm {
			total += cpu
		}
	}
	return total
}

func rssMiB(pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

// benchRig is authd as its own process (production mode) on a fresh
// database of the local PostgreSQL, with n signed-in apps.
type benchRig struct {
	pid    int
	apps   []*mobileclient.Client
	tokens []string
}

func newBenchRig(b *testing.B, n int) *benchRig {
	b.Helper()
	dsn := freshDatabase(b)
	args, pin := productionServe(b)
	// Enrolling many devices from one address needs a looser code limit.
	p := startAuthd(b, cleanEnv("DATABASE_URL="+dsn), append(args, "--migrate-on-start", "--code-attempts-per-ip", "100000")...)
	hc := routedClient(pin, p)
	b.Cleanup(hc.CloseIdleConnections)
	ctx := context.Background()
	r := &benchRig{pid: p.cmd.Process.Pid, apps: make([]*mobileclient.Client, n), tokens: make([]string, n)}
	for i := range r.apps {
		app, err := mobileclient.New("https://auth.bank.test", hc)
		if err != nil {
			b.Fatal(err)
		}
		if err := app.Enroll(ctx, issueCode(b, hc, fmt.Sprintf("bench-%d", i)), "Phone", "ios"); err != nil {
			b.Fatal(err)
		}
		if err := app.SetPasscode(ctx, "123456", ""); err != nil {
			b.Fatal(err)
		}
		tok, err := app.SignIn(ctx, "123456")
		if err != nil {
			b.Fatal(err)
		}
		r.apps[i], r.tokens[i] = app, tok.RefreshToken
	}
	return r
}

// refresh rotates app i's refresh token.
func (r *benchRig) refresh(i int) error {
	tok, err := r.apps[i].Refresh(context.Background(), r.tokens[i])
	if err != nil {
		return err
	}
	r.tokens[i] = tok.RefreshToken
	return nil
}

// closedLoop runs n refreshes from every app at once, each app sending its
// next refresh when the last one is answered, and returns the latencies.
func (r *benchRig) closedLoop(b *testing.B, n int) []time.Duration {
	var next atomic.Int64
	var mu sync.Mutex
	lat := make([]time.Duration, 0, n)
	var wg sync.WaitGroup
	for i := range r.apps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				start := time.Now()
				if err := r.refresh(i); err != nil {
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
	return lat
}

// openLoop sends n refreshes at a fixed rate, whatever the answers do, and
// returns each one's latency from the moment it was due (so a stalled
// server is not flattered by the clients waiting for it). A refresh due
// while every app still waits for an answer queues for the next free app.
func (r *benchRig) openLoop(b *testing.B, n int, rate float64) []time.Duration {
	free := make(chan int, len(r.apps))
	for i := range r.apps {
		free <- i
	}
	var mu sync.Mutex
	lat := make([]time.Duration, 0, n)
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	for k := range n {
		due := start.Add(time.Duration(k) * interval)
		time.Sleep(time.Until(due))
		i := <-free
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := r.refresh(i)
			took := time.Since(due)
			free <- i
			if err != nil {
				b.Error(err)
				return
			}
			mu.Lock()
			lat = append(lat, took)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return lat
}

func reportLatency(b *testing.B, lat []time.Duration) {
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) > 0 {
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	}
}

// BenchmarkRefreshProcess measures the hot path the way the targets are
// stated: authd as its own process (production mode) on the local
// PostgreSQL, DPoP-bound refreshes from 8, 32 and 128 concurrent sessions,
// and the CPU-seconds authd and PostgreSQL spent (from /proc), so the
// benchmark's own clients are not counted. It also reports authd's RSS.
//
// half-peak first finds the peak rate (a closed loop of 128 sessions for
// two seconds), then sends refreshes at half that rate, open loop, and
// reports the latency they see: the "p99 at half of peak" target.
func BenchmarkRefreshProcess(b *testing.B) {
	for _, conc := range []int{8, 32, 128} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			r := newBenchRig(b, conc)
			a0, pg0 := procCPU(r.pid, ""), procCPU(0, "postgres")
			peakRSS := 0.0
			done := make(chan struct{})
			go func() {
				t := time.NewTicker(100 * time.Millisecond)
				defer t.Stop()
				for {
					select {
					case <-done:
						return
					case <-t.C:
						peakRSS = max(peakRSS, rssMiB(r.pid))
					}
				}
			}()
			b.ResetTimer()
			lat := r.closedLoop(b, b.N)
			b.StopTimer()
			close(done)
			authdCPU, pgCPU := procCPU(r.pid, "")-a0, procCPU(0, "postgres")-pg0
			cpu := authdCPU + pgCPU
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "refreshes/s")
			reportLatency(b, lat)
			if cpu > 0 {
				b.ReportMetric(float64(b.N)/cpu, "refreshes/cpu-s")
				// The split says which side a change saved on.
				b.ReportMetric(authdCPU*1e6/float64(b.N), "authd-cpu-us/refresh")
				b.ReportMetric(pgCPU*1e6/float64(b.N), "pg-cpu-us/refresh")
			}
			b.ReportMetric(max(peakRSS, rssMiB(r.pid)), "authd-rss-MiB")
		})
	}
	b.Run("half-peak", func(b *testing.B) {
		r := newBenchRig(b, 128)
		start := time.Now()
		n := 0
		for time.Since(start) < 2*time.Second {
			n += 256
			r.closedLoop(b, 256)
		}
		peak := float64(n) / time.Since(start).Seconds()
		b.ResetTimer()
		lat := r.openLoop(b, b.N, peak/2)
		b.StopTimer()
		b.ReportMetric(peak/2, "refreshes/s")
		reportLatency(b, lat)
	})
}
