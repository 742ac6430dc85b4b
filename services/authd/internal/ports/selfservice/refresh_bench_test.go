package selfservice_test

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"strongroom.dev/services/authd/internal/authdtest"
	"strongroom.dev/services/authd/mobileclient"
)

// BenchmarkRefresh is the hot path in process: DPoP-bound refreshes over
// TLS on PostgreSQL at 8, 32 and 128 concurrent sessions, each refreshing
// its own chain; it reports refreshes/s and p50/p99. The CPU cost per
// refresh of authd alone is measured with authd as its own process
// (e2e, BenchmarkRefreshProcess).
func BenchmarkRefresh(b *testing.B) {
	for _, conc := range []int{8, 32, 128} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			s := authdtest.Start(b, authdtest.Options{})
			ctx := context.Background()
			apps := make([]*mobileclient.Client, conc)
			tokens := make([]string, conc)
			for i := range apps {
				apps[i] = enrolledB(b, s, fmt.Sprintf("r%d", i))
				t, err := apps[i].SignIn(ctx, "123456")
				if err != nil {
					b.Fatal(err)
				}
				tokens[i] = t.RefreshToken
			}
			var next atomic.Int64
			lat := make([]time.Duration, 0, b.N)
			var mu sync.Mutex
			b.ResetTimer()
			var wg sync.WaitGroup
			for i := range apps {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						start := time.Now()
						t, err := apps[i].Refresh(ctx, tokens[i])
						if err != nil {
							b.Error(err)
							return
						}
						tokens[i] = t.RefreshToken
						mu.Lock()
						lat = append(lat, time.Since(start))
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "refreshes/s")
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			}
		})
	}
}

// BenchmarkIntrospection measures RFC 7662 introspection of a DPoP-bound
// access token by the back office.
func BenchmarkIntrospection(b *testing.B) {
	s := authdtest.Start(b, authdtest.Options{})
	app := enrolledB(b, s, "intro")
	tok, err := app.SignIn(context.Background(), "123456")
	if err != nil {
		b.Fatal(err)
	}
	h := basicAuth("back-office", s.AdminSecret)
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	body := url.Values{"token": {tok.AccessToken}}.Encode()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if r := s.Do(b, "POST", s.AdminURL+"/oauth2/introspect", h, body); r.Status != 200 {
				b.Errorf("%d", r.Status)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "introspections/s")
}
