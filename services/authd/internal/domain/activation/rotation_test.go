package activation

import (
	"slices"
	"testing"
	"time"

	"strongroom.dev/services/authd/internal/hmackey/hmackeytest"
)

// TestCodesAcrossKeyRotation: a code issued under K1 is found until K1
// retires (24 h after K2 takes over: as long as a code lives), while new
// codes are issued under K2 from its not_before.
func TestCodesAcrossKeyRotation(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	switchAt, retireK1 := t0.Add(time.Hour), t0.Add(25*time.Hour)
	k1 := hmackeytest.Key(t, t0.Add(-time.Hour), retireK1)
	k2 := hmackeytest.Key(t, switchAt, t0.Add(49*time.Hour))
	rot := hmackeytest.NewRotation(t, t0, k1, k2)
	codes, err := NewCodes(rot.Ring())
	if err != nil {
		t.Fatal(err)
	}
	rot.Set(switchAt.Add(-time.Second))
	code, stream, kid, err := codes.New()
	if err != nil || kid != k1.KID {
		t.Fatalf("issued under %q, %v; want K1", kid, err)
	}
	rot.Set(switchAt)
	code2, stream2, kid2, err := codes.New()
	if err != nil || kid2 != k2.KID {
		t.Fatalf("issued under %q after the switch, %v; want K2", kid2, err)
	}
	for _, at := range []time.Time{switchAt, retireK1.Add(-time.Nanosecond)} {
		rot.Set(at)
		if ids, ok := codes.StreamIDs(code); !ok || !slices.Contains(ids, stream) {
			t.Fatalf("at %v: K1's code is not found", at)
		}
		if ids, _ := codes.StreamIDs(code2); ids[0] != stream2 {
			t.Fatalf("at %v: the active key's stream is not tried first", at)
		}
	}
	rot.Set(retireK1)
	if ids, _ := codes.StreamIDs(code); slices.Contains(ids, stream) || len(ids) != 1 {
		t.Fatal("K1's code is found after K1 retired")
	}
}
