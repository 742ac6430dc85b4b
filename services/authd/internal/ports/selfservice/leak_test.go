package selfservice_test

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"strongroom.dev/services/authd/internal/authdtest"
	"strongroom.dev/services/authd/internal/eventstore"
	"strongroom.dev/services/authd/mobileclient"
)

// TestNoPasscodeCodeOrTokenLeaks runs enrollment, passcode set, sign-in,
// wrong passcodes and a reset, then searches everything authd wrote — logs,
// spans, every event — for the secrets of the run.
func TestNoPasscodeCodeOrTokenLeaks(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{PasscodeBackoff: time.Millisecond})
	ctx := context.Background()
	app, _ := mobileclient.New(s.PublicURL, s.Client)
	enrollCode := s.ActivationCode(t, "gina", "enroll")
	if err := app.Enroll(ctx, enrollCode, "Phone", "android"); err != nil {
		t.Fatal(err)
	}
	const passcode, wrong, newPasscode = "918273", "564738", "192837"
	if err := app.SetPasscode(ctx, passcode, ""); err != nil {
		t.Fatal(err)
	}
	tok, err := app.SignIn(ctx, passcode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.SignIn(ctx, wrong); mobileclient.Code(err) != "passcode_incorrect" {
		t.Fatal(err)
	}
	resetCode := s.ActivationCode(t, "gina", "reset")
	if err := app.SetPasscode(ctx, newPasscode, resetCode); err != nil {
		t.Fatal(err)
	}

	var out strings.Builder
	out.WriteString(s.Logs.String())
	for _, span := range s.Spans.GetSpans() {
		b, _ := json.Marshal(span.Attributes)
		out.Write(b)
	}
	pos := eventstore.Start
	for {
		evs, err := s.App.Store.ReadAll(ctx, pos, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) == 0 {
			break
		}
		for _, ev := range evs {
			b, _ := json.Marshal(ev)
			out.Write(b)
		}
		pos = evs[len(evs)-1].Position
	}
	all := out.String()
	if !strings.Contains(all, "device.passcode_set") {
		t.Fatal("the events were not captured: the search would prove nothing")
	}
	for name, secret := range map[string]string{
		"enroll code": enrollCode, "reset code": resetCode, "access token": tok.AccessToken,
		"token signature": tok.AccessToken[strings.LastIndexByte(tok.AccessToken, '.')+1:],
		// The refresh token's session id is public; its secret and tag
		// are not.
		"refresh token": tok.RefreshToken, "refresh token secret and tag": tok.RefreshToken[strings.IndexByte(tok.RefreshToken, '.')+1:],
	} {
		if strings.Contains(all, secret) || strings.Contains(strings.ToLower(all), strings.ToLower(secret)) {
			t.Errorf("the %s appears in authd's output", name)
		}
	}
	for _, p := range []string{passcode, wrong, newPasscode} {
		if regexp.MustCompile(`(^|[^0-9])` + p + `([^0-9]|$)`).MatchString(all) {
			t.Errorf("passcode %s appears in authd's output", p)
		}
	}
	if strings.Contains(all, "$argon2id$") {
		t.Error("a passcode verifier appears in authd's output")
	}
}
