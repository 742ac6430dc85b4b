package oauth_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/ory/fosite/token/jwt"

	"strongroom.dev/services/authd/internal/authdtest"
	"strongroom.dev/services/authd/internal/keys"
	"strongroom.dev/services/authd/internal/oauth"
)

// BenchmarkClientCredentials measures whole client_credentials grants over
// real TLS against PostgreSQL (each one starts a session: one event, one
// inline read-model row), at 8 and 32 concurrent clients.
func BenchmarkClientCredentials(b *testing.B) {
	for _, conc := range []int{8, 32} {
		b.Run(fmt.Sprintf("concurrency=%d", conc), func(b *testing.B) {
			s := authdtest.Start(b, authdtest.Options{})
			h := basic("back-office", s.AdminSecret)
			h.Set("Content-Type", "application/x-www-form-urlencoded")
			body := url.Values{"grant_type": {"client_credentials"}}.Encode()
			lat := make([]time.Duration, 0, b.N)
			var mu sync.Mutex
			work := make(chan struct{}, b.N)
			for range b.N {
				work <- struct{}{}
			}
			close(work)
			b.ResetTimer()
			var wg sync.WaitGroup
			for range conc {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range work {
						start := time.Now()
						r := s.Do(b, http.MethodPost, s.PublicURL+"/oauth2/token", h, body)
						if r.Status != 200 {
							b.Errorf("%d %s", r.Status, r.Body)
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
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			}
		})
	}
}

// BenchmarkSignAccessToken measures RFC 9068 access-token signing with the
// crypto.Signer-backed ES256 signer.
func BenchmarkSignAccessToken(b *testing.B) {
	k, err := keys.Generate()
	if err != nil {
		b.Fatal(err)
	}
	src, _ := keys.NewStatic(k)
	s := &oauth.Signer{Keys: src}
	claims := jwt.MapClaims{"iss": "https://auth.bank.example", "sub": "user-1", "aud": []string{"https://api.bank.example"},
		"client_id": "mobile-app", "exp": time.Now().Add(5 * time.Minute).Unix(), "iat": time.Now().Unix(),
		"jti": "0b5f2a8e-3c1d-4e7b-9a6f-1d2c3b4a5e6f", "scope": "payments", "sid": "s-1", "auth_time": time.Now().Unix(),
		"acr": "urn:strongroom:acr:passcode", "amr": []string{"pin", "swk"}, "cnf": map[string]any{"jkt": k.KID}}
	ctx := context.Background()
	for b.Loop() {
		if _, _, err := s.Generate(ctx, claims, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "signings/s")
}
