package selfservice_test

import (
	"context"
	"testing"
	"time"

	"strongroom.dev/services/authd/internal/authdtest"
	"strongroom.dev/services/authd/internal/pgtest"
	"strongroom.dev/services/authd/mobileclient"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const backoff = 200 * time.Millisecond

// TestJourney: activation code → enroll → set passcode → passcode grant →
// /v1/sessions with the DPoP-bound token → wrong passcodes → throttle →
// lock → reset → sign in again; each step's events are in the log, in order.
func TestJourney(t *testing.T) {
	// The wait must outlast three sign-ins even under the race detector.
	const backoff = time.Second
	s := authdtest.Start(t, authdtest.Options{PasscodeBackoff: backoff})
	ctx := context.Background()
	app, err := mobileclient.New(s.PublicURL, s.Client)
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Enroll(ctx, s.ActivationCode(t, "alice", "enroll"), "Alice's Pixel", "android"); err != nil {
		t.Fatalf("enroll: %v", err)
	}
	if err := app.SetPasscode(ctx, "123456", ""); err != nil {
		t.Fatalf("set passcode: %v", err)
	}
	// Setting it again without a reset code is refused.
	if err := app.SetPasscode(ctx, "654321", ""); mobileclient.Code(err) != "activation_code_invalid" {
		t.Fatalf("second set without a code: %v", err)
	}
	tok, err := app.SignIn(ctx, "123456")
	if err != nil {
		t.Fatalf("sign in: %v\n%s", err, s.Logs.String())
	}
	if tok.TokenType != "DPoP" {
		t.Fatalf("token type %s", tok.TokenType)
	}
	sessions, err := app.Sessions(ctx, tok)
	if err != nil || len(sessions) != 1 || !sessions[0].Current || sessions[0].DeviceID != app.DeviceID || sessions[0].ACR != "urn:strongroom:acr:passcode" {
		t.Fatalf("sessions: %+v, %v", sessions, err)
	}

	// Wrong passcodes: counted, then throttled, then locked at the 5th.
	wrong := func(want string, remaining int) {
		t.Helper()
		_, err := app.SignIn(ctx, "000000")
		var e *mobileclient.Error
		if mobileclient.Code(err) != want {
			t.Fatalf("wrong passcode: %v, want %s", err, want)
		}
		if want == "passcode_incorrect" {
			_ = errorAs(err, &e)
			if e.AttemptsRemaining == nil || *e.AttemptsRemaining != remaining {
				t.Fatalf("attempts_remaining = %v, want %d", e.AttemptsRemaining, remaining)
			}
		}
	}
	wrong("passcode_incorrect", 4)
	wrong("passcode_incorrect", 3)
	wrong("passcode_incorrect", 2)
	_, err = app.SignIn(ctx, "123456") // even the right one waits
	var th *mobileclient.Error
	if !errorAs(err, &th) || th.Code != "passcode_throttled" || th.Status != 429 || th.RetryAfter <= 0 {
		t.Fatalf("4th attempt inside the wait: %v", err)
	}
	time.Sleep(backoff)
	wrong("passcode_incorrect", 1)
	time.Sleep(2 * backoff)
	wrong("device_locked", 0)
	if _, err := app.Sessions(ctx, tok); mobileclient.Code(err) != "invalid_token" {
		t.Fatalf("the lock must revoke the device's sessions: %v", err)
	}
	if _, err := app.SignIn(ctx, "123456"); mobileclient.Code(err) != "device_locked" {
		t.Fatalf("sign in while locked: %v", err)
	}

	// Forgot passcode: a reset code and a new passcode unlock the device.
	if err := app.SetPasscode(ctx, "246810", s.ActivationCode(t, "alice", "reset")); err != nil {
		t.Fatalf("reset: %v", err)
	}
	// This time the token response comes back sealed to a one-time key.
	app.SealResponses = true
	sealedTok, err := app.SignIn(ctx, "246810")
	if err != nil || sealedTok.TokenType != "DPoP" {
		t.Fatalf("sign in after reset, sealed response: %+v, %v", sealedTok, err)
	}
	if _, err := app.Sessions(ctx, sealedTok); err != nil {
		t.Fatalf("the unsealed token works: %v", err)
	}

	evs, err := s.App.Store.ReadStream(ctx, app.DeviceID, 0)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, ev := range evs {
		types = append(types, ev.Type)
	}
	want := []string{"device.enrolled", "device.passcode_set",
		"device.passcode_attempted", "device.passcode_verified",
		"device.passcode_attempted", "device.passcode_failed",
		"device.passcode_attempted", "device.passcode_failed",
		"device.passcode_attempted", "device.passcode_failed",
		"device.passcode_attempted", "device.passcode_failed",
		"device.passcode_attempted", "device.passcode_failed", "device.locked",
		"device.passcode_set", "device.unlocked",
		"device.passcode_attempted", "device.passcode_verified"}
	if len(types) != len(want) {
		t.Fatalf("device events:\n%v\nwant\n%v", types, want)
	}
	for i := range want {
		if types[i] != want[i] {
			t.Fatalf("event %d is %s, want %s\nall: %v", i, types[i], want[i], types)
		}
	}
}

func errorAs(err error, target **mobileclient.Error) bool {
	e, ok := err.(*mobileclient.Error)
	if ok {
		*target = e
	}
	return ok
}
