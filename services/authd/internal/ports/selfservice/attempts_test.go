package selfservice_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"strongroom.dev/services/authd/internal/authdtest"
	"strongroom.dev/services/authd/mobileclient"
)

// enrolled returns an app with a device enrolled for user and passcode set.
func enrolled(t *testing.T, s *authdtest.Server, user, passcode string) *mobileclient.Client {
	t.Helper()
	ctx := context.Background()
	app, err := mobileclient.New(s.PublicURL, s.Client)
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Enroll(ctx, s.ActivationCode(t, user, "enroll"), "Phone", "ios"); err != nil {
		t.Fatalf("enroll: %v", err)
	}
	if err := app.SetPasscode(ctx, passcode, ""); err != nil {
		t.Fatalf("set passcode: %v", err)
	}
	return app
}

// countTypes counts a device's events by type.
func countTypes(t *testing.T, s *authdtest.Server, deviceID string) map[string]int {
	t.Helper()
	evs, err := s.App.Store.ReadStream(context.Background(), deviceID, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, ev := range evs {
		n[ev.Type]++
	}
	return n
}

// TestConcurrentWrongPasscodes: 100 wrong passcodes at once for one
// device are never evaluated more than the policy allows — 3 in a burst,
// then one per wait — the rest refused unevaluated; continuing after each
// wait locks the device at exactly the 5th failure. The invariant is
// checked on the event log itself: every counted attempt after the 3rd
// starts at least the policy's wait after the one before.
func TestConcurrentWrongPasscodes(t *testing.T) {
	const wait = time.Second // long enough that a burst ends inside it
	s := authdtest.Start(t, authdtest.Options{PasscodeBackoff: wait})
	app := enrolled(t, s, "bob", "112233")
	ctx := context.Background()

	// The parallel attempts share one client, as an app's threads do.
	burst := func(n int) map[string]int {
		var mu sync.Mutex
		codes := map[string]int{}
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := app.SignIn(ctx, "999999")
				mu.Lock()
				codes[mobileclient.Code(err)]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		return codes
	}
	// Refused unevaluated means throttled or locked, or — when the hashing
	// pool is saturated before the device state says so —
	// temporarily_unavailable.
	codes := burst(100)
	if codes["passcode_incorrect"] < 3 || codes["passcode_incorrect"]+codes["passcode_throttled"]+codes["temporarily_unavailable"] != 100 {
		t.Fatalf("first burst: %v", codes)
	}
	locked := false
	for round := 0; round < 5 && !locked; round++ {
		time.Sleep(wait << round)
		codes = burst(100)
		locked = codes["device_locked"] > 0
	}
	if !locked {
		t.Fatal("the device never locked")
	}
	evs, err := s.App.Store.ReadStream(ctx, app.DeviceID, 0)
	if err != nil {
		t.Fatal(err)
	}
	var attempts []time.Time
	n := map[string]int{}
	for _, ev := range evs {
		n[ev.Type]++
		if ev.Type == "device.passcode_attempted" {
			attempts = append(attempts, ev.OccurredAt)
		}
	}
	if n["device.passcode_attempted"] != 5 || n["device.passcode_failed"] != 5 || n["device.locked"] != 1 {
		t.Fatalf("events: %v, want exactly 5 evaluated failures and one lock", n)
	}
	for i := 3; i < len(attempts); i++ {
		if gap, need := attempts[i].Sub(attempts[i-1]), wait<<(i-3); gap < need {
			t.Errorf("attempt %d came %s after the previous one, inside the %s wait", i+1, gap, need)
		}
	}
}

// TestRefusedAttemptsAreNotCounted: a proof by a foreign key, or a seal
// that does not open, leaves attempts_remaining untouched.
func TestRefusedAttemptsAreNotCounted(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{PasscodeBackoff: backoff})
	app := enrolled(t, s, "carol", "135790")
	ctx := context.Background()
	if _, err := app.SignIn(ctx, "000000"); mobileclient.Code(err) != "passcode_incorrect" {
		t.Fatalf("first wrong passcode: %v", err)
	}
	before := countTypes(t, s, app.DeviceID)

	stranger, _ := mobileclient.New(s.PublicURL, s.Client)
	stranger.DeviceID = app.DeviceID
	if _, err := stranger.SignIn(ctx, "000000"); mobileclient.Code(err) != "device_unknown" {
		t.Fatalf("foreign key: %v", err)
	}
	// A seal made for another device id does not open here.
	bad := *app
	bad.DeviceID = app.DeviceID + "x"
	if _, err := bad.SignIn(ctx, "000000"); mobileclient.Code(err) != "device_unknown" {
		t.Fatalf("other device id: %v", err)
	}
	after := countTypes(t, s, app.DeviceID)
	if after["device.passcode_attempted"] != before["device.passcode_attempted"] {
		t.Fatalf("refused attempts were counted: %v → %v", before, after)
	}
	_, err := app.SignIn(ctx, "000001")
	var e *mobileclient.Error
	if !errorAs(err, &e) || e.AttemptsRemaining == nil || *e.AttemptsRemaining != 3 {
		t.Fatalf("attempts_remaining after refused attempts: %v", err)
	}
}
