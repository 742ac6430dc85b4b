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
	// The biometric side: a key, a confirmed payment, a refused assertion.
	fresh, err := app.SignIn(ctx, newPasscode)
	if err != nil {
		t.Fatal(err)
	}
	if err := app.EnrollBiometric(ctx, fresh, nil); err != nil {
		t.Fatal(err)
	}
	ch, err := app.Challenge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	paid, err := app.Assertion(ch.Value, payment)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := app.GrantBiometric(ctx, paid[:len(paid)-4]+"AAAA"); mobileclient.Code(err) != "assertion_invalid" {
		t.Fatalf("a broken assertion: %v", err)
	}
	payTok, err := app.GrantBiometric(ctx, paid)
	if err != nil {
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
	if !strings.Contains(all, "device.passcode_set") || !strings.Contains(all, "challenge.consumed") {
		t.Fatal("the events were not captured: the search would prove nothing")
	}
	for name, secret := range map[string]string{
		"enroll code": enrollCode, "reset code": resetCode, "access token": tok.AccessToken,
		"token signature": tok.AccessToken[strings.LastIndexByte(tok.AccessToken, '.')+1:],
		// The refresh token's session id is public; its secret and tag
		// are not.
		"refresh token": tok.RefreshToken, "refresh token secret and tag": tok.RefreshToken[strings.IndexByte(tok.RefreshToken, '.')+1:],
		// What a user confirms is personal data of a third party: the log
		// keeps only its digest. The assertion and its challenge stay out
		// too (the challenge's stream id is a hash of it).
		"payment token": payTok.AccessToken, "creditor": "Müller", "IBAN": "DE89370400440532013000",
		"payment reference": "Invoice 2026-117", "assertion signature": paid[strings.LastIndexByte(paid, '.')+1:],
		"challenge": ch.Value,
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
