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

// BenchmarkRefreshProcess measures the hot path the way the targets are
// stated: authd as its own process (production mode) on the local
// PostgreSQL, DPoP-bound refreshes from 32 and 128 concurrent sessions,
// and the CPU-seconds authd and PostgreSQL spent (from /proc), so the
// benchmark's own clients are not counted. It also reports authd's RSS.
func BenchmarkRefreshProcess(b *testing.B) {
	for _, conc := range []int{32, 128} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			dsn := freshDatabase(b)
			args, pin := productionServe(b)
			// Enrolling many devices from one address needs a looser code limit.
			p := startAuthd(b, cleanEnv("DATABASE_URL="+dsn), append(args, "--migrate-on-start", "--code-attempts-per-ip", "100000")...)
			hc := routedClient(pin, p)
			defer hc.CloseIdleConnections()
			ctx := context.Background()
			apps := make([]*mobileclient.Client, conc)
			tokens := make([]string, conc)
			for i := range apps {
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
				apps[i], tokens[i] = app, tok.RefreshToken
			}
			pid := p.cmd.Process.Pid
			a0, pg0 := procCPU(pid, ""), procCPU(0, "postgres")
			var next atomic.Int64
			var mu sync.Mutex
			lat := make([]time.Duration, 0, b.N)
			peakRSS := 0.0
			b.ResetTimer()
			var wg sync.WaitGroup
			for i := range apps {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						start := time.Now()
						tok, err := apps[i].Refresh(ctx, tokens[i])
						if err != nil {
							b.Error(err)
							return
						}
						tokens[i] = tok.RefreshToken
						mu.Lock()
						lat = append(lat, time.Since(start))
						if len(lat)%200 == 0 {
							peakRSS = max(peakRSS, rssMiB(pid))
						}
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			cpu := (procCPU(pid, "") - a0) + (procCPU(0, "postgres") - pg0)
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "refreshes/s")
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			}
			if cpu > 0 {
				b.ReportMetric(float64(b.N)/cpu, "refreshes/cpu-s")
			}
			b.ReportMetric(max(peakRSS, rssMiB(pid)), "authd-rss-MiB")
		})
	}
}
