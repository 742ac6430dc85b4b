package sealing

import (
	"testing"
)

// BenchmarkSealOpen measures one passcode seal (client) plus open
// (server) per iteration and reports it as seal+open/s.
func BenchmarkSealOpen(b *testing.B) {
	for _, s := range suites {
		b.Run(s.name, func(b *testing.B) {
			k := mustGenerate(b, s.kemID, testLater)
			r := mustRing(b, k)
			e := k.Public()
			info, aad, pt := []byte(InfoPasscode), PasscodeAAD("dev", "jti"), []byte("123456")
			b.ReportAllocs()
			for b.Loop() {
				sealed, err := Seal(e, info, aad, pt)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := r.Open(k.KID, sealed, info, aad, testNow); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "seal+open/s")
		})
	}
}

// BenchmarkOpen is the server's share alone: what one passcode grant costs.
func BenchmarkOpen(b *testing.B) {
	for _, s := range suites {
		b.Run(s.name, func(b *testing.B) {
			k := mustGenerate(b, s.kemID, testLater)
			r := mustRing(b, k)
			info, aad := []byte(InfoPasscode), PasscodeAAD("dev", "jti")
			sealed, err := Seal(k.Public(), info, aad, []byte("123456"))
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := r.Open(k.KID, sealed, info, aad, testNow); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "open/s")
		})
	}
}

// BenchmarkSealTo is a sealed token response, including ParseClientKey's
// trial encapsulation.
func BenchmarkSealTo(b *testing.B) {
	for _, s := range suites {
		b.Run(s.name, func(b *testing.B) {
			pub, _, err := NewClientKey(s.kemID)
			if err != nil {
				b.Fatal(err)
			}
			raw := mustJSON(b, pub)
			body := make([]byte, 1500)
			for b.Loop() {
				k, err := ParseClientKey(raw)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := SealTo(k, []byte(InfoTokenResponse), []byte("jti"), body); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "parse+seal/s")
		})
	}
}
