package selfservice_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"strongroom.dev/services/authd/internal/authdtest"
	"strongroom.dev/services/authd/mobileclient"
	"strongroom.dev/services/dpop"
)

func introspectActive(t *testing.T, s *authdtest.Server, token string) bool {
	t.Helper()
	r := s.Form(t, s.AdminURL+"/oauth2/introspect", basicAuth("back-office", s.AdminSecret), url.Values{"token": {token}})
	if r.Status != 200 {
		t.Fatalf("introspect: %d %s", r.Status, r.Body)
	}
	return r.JSON(t)["active"] == true
}

func basicAuth(id, secret string) http.Header {
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth(id, secret)
	return http.Header{"Authorization": req.Header["Authorization"]}
}

// TestRefreshRotation: rotation on every use; the old token again while
// its successor is unused gives the very same successor; once the
// successor is used, the old token is reuse and ends the session, every
// token of it goes inactive, and the audit trail records the reuse with
// its IP and trace id.
func TestRefreshRotation(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{})
	ctx := context.Background()
	app := enrolled(t, s, "jane", "102938")
	t0, err := app.SignIn(ctx, "102938")
	if err != nil || t0.RefreshToken == "" {
		t.Fatalf("sign in: %+v, %v", t0, err)
	}
	t1, err := app.Refresh(ctx, t0.RefreshToken)
	if err != nil || t1.RefreshToken == "" || t1.RefreshToken == t0.RefreshToken || t1.TokenType != "DPoP" {
		t.Fatalf("first refresh: %+v, %v", t1, err)
	}
	again, err := app.Refresh(ctx, t0.RefreshToken) // a lost response: ask again
	if err != nil || again.RefreshToken != t1.RefreshToken || again.AccessToken == t1.AccessToken {
		t.Fatalf("repeat: %+v, %v", again, err)
	}
	t2, err := app.Refresh(ctx, t1.RefreshToken) // the chain continues
	if err != nil || t2.RefreshToken == t1.RefreshToken {
		t.Fatalf("second refresh: %+v, %v", t2, err)
	}
	if !introspectActive(t, s, t2.AccessToken) {
		t.Fatal("the newest access token is inactive")
	}
	// Sign-in facts survive refreshes: acr and auth_time are the sign-in's.
	if _, err := app.Sessions(ctx, t2); err != nil {
		t.Fatalf("refreshed token at /v1: %v", err)
	}
	// t0 now is two generations old: reuse.
	if _, err := app.Refresh(ctx, t0.RefreshToken); mobileclient.Code(err) != "refresh_token_reused" {
		t.Fatalf("reuse: %v", err)
	}
	for _, tok := range []*mobileclient.Tokens{t0, t1, again, t2} {
		if introspectActive(t, s, tok.AccessToken) {
			t.Fatal("an access token of the reused session is still active")
		}
	}
	if _, err := app.Refresh(ctx, t2.RefreshToken); err == nil {
		t.Fatal("the session continued after reuse")
	}
	// The audit trail shows the reuse, with who and where.
	admin, _ := s.AdminToken(t, nil)
	r := s.Do(t, http.MethodGet, s.AdminURL+"/admin/v1/users/jane/events?operator=auditor&limit=500",
		http.Header{"Authorization": {"Bearer " + admin}}, "")
	found, refreshes := false, 0
	for _, e := range r.JSON(t)["events"].([]any) {
		ev := e.(map[string]any)
		actor, _ := ev["actor"].(map[string]any)
		switch ev["type"] {
		case "session.refresh_reuse_detected":
			found = ev["ip"] == "127.0.0.1" && len(ev["trace_id"].(string)) == 32 &&
				actor["kind"] == "device" && actor["id"] == app.DeviceID
		case "session.refreshed":
			// A refresh is the device's doing, not the system's.
			refreshes++
			if actor["kind"] != "device" || actor["id"] != app.DeviceID {
				t.Errorf("session.refreshed by %v", actor)
			}
		}
	}
	if !found || refreshes == 0 {
		t.Fatalf("no reuse by the device with IP and trace id, or no refresh, in the audit trail: %s", r.Body)
	}
}

// TestParallelRefreshes: 50 refreshes at once with the same token from
// the same device all get the same successor; the session stays valid and
// exactly one chain continues.
func TestParallelRefreshes(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{})
	ctx := context.Background()
	app := enrolled(t, s, "kim", "564738")
	tok, err := app.SignIn(ctx, "564738")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	successors := map[string]int{}
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := app.Refresh(ctx, tok.RefreshToken)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				successors["error: "+err.Error()]++
				return
			}
			successors[got.RefreshToken]++
		}()
	}
	wg.Wait()
	if len(successors) != 1 {
		t.Fatalf("parallel refreshes got %d different answers: %v", len(successors), successors)
	}
	var next string
	for k := range successors {
		next = k
	}
	cont, err := app.Refresh(ctx, next)
	if err != nil {
		t.Fatalf("the chain does not continue: %v", err)
	}
	if !introspectActive(t, s, cont.AccessToken) {
		t.Fatal("the session ended")
	}
}

// TestRefreshWithAnotherKeyIsReuse: the right token with another DPoP key
// ends the session.
func TestRefreshWithAnotherKeyIsReuse(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{})
	ctx := context.Background()
	app := enrolled(t, s, "liam", "246802")
	tok, err := app.SignIn(ctx, "246802")
	if err != nil {
		t.Fatal(err)
	}
	thief, _ := mobileclient.New(s.PublicURL, s.Client)
	if _, err := thief.Refresh(ctx, tok.RefreshToken); mobileclient.Code(err) != "refresh_token_reused" {
		t.Fatalf("another key: %v", err)
	}
	if _, err := app.Refresh(ctx, tok.RefreshToken); err == nil {
		t.Fatal("the session survived a refresh by another key")
	}
	if introspectActive(t, s, tok.AccessToken) {
		t.Fatal("the access token is still active")
	}
}

// TestReplayedRefreshProof: a DPoP proof is good for one refresh. The jti
// is recorded in the refresh's own transaction, so 16 copies of one proof
// with one refresh token, sent at once, get exactly one successor; the
// rest are refused as replays and decide nothing (the session goes on).
func TestReplayedRefreshProof(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{})
	ctx := context.Background()
	app := enrolled(t, s, "noor", "135790")
	tok, err := app.SignIn(ctx, "135790")
	if err != nil {
		t.Fatal(err)
	}
	u := s.PublicURL + "/oauth2/token"
	form := url.Values{"grant_type": {"refresh_token"}, "client_id": {"mobile-app"}, "refresh_token": {tok.RefreshToken}}
	proof, err := dpop.NewProof(app.DeviceKey, "POST", u, s.Nonce(t), "", nowish())
	if err != nil {
		t.Fatal(err)
	}
	const n = 16
	var wg sync.WaitGroup
	start := make(chan struct{})
	answers := make([]*authdtest.Response, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			answers[i] = s.Form(t, u, http.Header{"DPoP": {proof}}, form)
		}()
	}
	close(start)
	wg.Wait()
	var successor string
	for _, r := range answers {
		switch m := r.JSON(t); {
		case r.Status == 200 && successor == "":
			successor, _ = m["refresh_token"].(string)
		case r.Status == 400 && m["error"] == "invalid_dpop_proof":
		default:
			t.Fatalf("copy of a used proof: %d %s", r.Status, r.Body)
		}
	}
	if successor == "" {
		t.Fatal("no copy of the proof got a successor")
	}
	if again := s.Form(t, u, http.Header{"DPoP": {proof}}, form); again.Status != 400 || again.JSON(t)["error"] != "invalid_dpop_proof" {
		t.Fatalf("the proof once more: %d %s", again.Status, again.Body)
	}
	next, err := app.Refresh(ctx, successor)
	if err != nil {
		t.Fatalf("the session did not survive the replays: %v", err)
	}
	if !introspectActive(t, s, next.AccessToken) {
		t.Fatal("the new access token is inactive")
	}
}

// TestRefreshRacingRevocation: once a revocation has committed, no refresh
// of the session succeeds — whatever was in flight.
func TestRefreshRacingRevocation(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{})
	ctx := context.Background()
	app := enrolled(t, s, "mia", "135246")
	for round := range 5 {
		tok, err := app.SignIn(ctx, "135246")
		if err != nil {
			t.Fatal(err)
		}
		sid := sessionOf(t, s, tok.AccessToken)
		var wg sync.WaitGroup
		for range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = app.Refresh(ctx, tok.RefreshToken)
			}()
		}
		if err := s.App.OAuth.Storage.RevokeSession(ctx, sid, "signed_out", ""); err != nil {
			t.Fatal(err)
		}
		// After the revocation committed, a refresh never succeeds.
		if _, err := app.Refresh(ctx, tok.RefreshToken); err == nil {
			t.Fatalf("round %d: refresh after revocation succeeded", round)
		}
		wg.Wait()
		// And in the log, nothing was refreshed after the revocation.
		evs, _ := s.App.Store.ReadStream(ctx, sid, 0)
		revoked := false
		for _, ev := range evs {
			if ev.Type == "session.revoked" {
				revoked = true
			} else if revoked && ev.Type == "session.refreshed" {
				t.Fatalf("round %d: refreshed after revoked", round)
			}
		}
	}
}

func sessionOf(t *testing.T, s *authdtest.Server, token string) string {
	t.Helper()
	r := s.Form(t, s.AdminURL+"/oauth2/introspect", basicAuth("back-office", s.AdminSecret), url.Values{"token": {token}})
	sid, _ := r.JSON(t)["sid"].(string)
	if sid == "" {
		t.Fatalf("no sid: %s", r.Body)
	}
	return sid
}

// TestSelfService: a user signs out of one session and removes a device;
// objects of another user answer 404 like missing ones; a revoked refresh
// token (RFC 7009) ends its session.
func TestSelfService(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{})
	ctx := context.Background()
	phone := enrolled(t, s, "nora", "111333")
	tablet := enrolled(t, s, "nora", "111333")
	other := enrolled(t, s, "oscar", "222444")
	p1, err := phone.SignIn(ctx, "111333")
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := phone.SignIn(ctx, "111333")
	tb, _ := tablet.SignIn(ctx, "111333")
	o, _ := other.SignIn(ctx, "222444")
	list, err := phone.Sessions(ctx, p1)
	if err != nil || len(list) != 3 {
		t.Fatalf("nora's sessions: %+v, %v", list, err)
	}
	// Oscar cannot see or touch Nora's things.
	if err := other.SignOut(ctx, o, sessionOf(t, s, p2.AccessToken)); mobileclient.Code(err) != "not_found" {
		t.Fatalf("another user's session: %v", err)
	}
	if err := other.RemoveDevice(ctx, o, tablet.DeviceID); mobileclient.Code(err) != "not_found" {
		t.Fatalf("another user's device: %v", err)
	}
	if err := phone.SignOut(ctx, p1, "no-such-session"); mobileclient.Code(err) != "not_found" {
		t.Fatalf("missing session: %v", err)
	}
	if !introspectActive(t, s, p2.AccessToken) || !introspectActive(t, s, tb.AccessToken) {
		t.Fatal("refused requests changed something")
	}
	// Sign out of p2 from p1.
	if err := phone.SignOut(ctx, p1, sessionOf(t, s, p2.AccessToken)); err != nil {
		t.Fatalf("sign out: %v", err)
	}
	if introspectActive(t, s, p2.AccessToken) || !introspectActive(t, s, p1.AccessToken) {
		t.Fatal("sign-out ended the wrong session")
	}
	// Remove the tablet: its session ends, its key is unknown.
	if err := phone.RemoveDevice(ctx, p1, tablet.DeviceID); err != nil {
		t.Fatalf("remove device: %v", err)
	}
	if introspectActive(t, s, tb.AccessToken) {
		t.Fatal("the removed device's session is still active")
	}
	if _, err := tablet.SignIn(ctx, "111333"); mobileclient.Code(err) != "device_unknown" {
		t.Fatalf("removed device signs in: %v", err)
	}
	// RFC 7009 on a refresh token, by its holder, ends the session.
	form := url.Values{"token": {p1.RefreshToken}, "client_id": {"mobile-app"}}
	if r := s.Form(t, s.PublicURL+"/oauth2/revoke", nil, form); r.Status != 400 {
		t.Fatalf("revocation without a proof: %d", r.Status)
	}
	if !introspectActive(t, s, p1.AccessToken) {
		t.Fatal("a refused revocation ended the session")
	}
	if err := phoneRevoke(t, s, phone, p1.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if introspectActive(t, s, p1.AccessToken) {
		t.Fatal("revoking the refresh token did not end the session")
	}
	if _, err := phone.Refresh(ctx, p1.RefreshToken); err == nil {
		t.Fatal("a revoked refresh token still refreshes")
	}
}

func phoneRevoke(t *testing.T, s *authdtest.Server, app *mobileclient.Client, refresh string) error {
	t.Helper()
	u := s.PublicURL + "/oauth2/revoke"
	p, err := dpop.NewProof(app.DeviceKey, "POST", u, "", "", nowish())
	if err != nil {
		return err
	}
	r := s.Form(t, u, http.Header{"DPoP": {p}}, url.Values{"token": {refresh}, "client_id": {"mobile-app"}})
	if r.Status != 200 {
		t.Fatalf("revoke: %d %s", r.Status, r.Body)
	}
	return nil
}

// TestSessionsExpireByThemselves: a session past its end stops working by
// its own timestamps; the sweeper records session.expired once even when
// several replicas run it at the same moment, and the read model forgets
// the session.
func TestSessionsExpireByThemselves(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{})
	ctx := context.Background()
	app := enrolled(t, s, "paul", "909090")
	tok, err := app.SignIn(ctx, "909090")
	if err != nil {
		t.Fatal(err)
	}
	sid := sessionOf(t, s, tok.AccessToken)
	// A second session, signed out: revoked sessions leave the read model
	// too once they are due.
	tok2, err := app.SignIn(ctx, "909090")
	if err != nil {
		t.Fatal(err)
	}
	sid2 := sessionOf(t, s, tok2.AccessToken)
	if err := app.SignOut(ctx, tok2, sid2); err != nil {
		t.Fatal(err)
	}
	// Nothing is due yet: the sweeper leaves every session alone.
	if n, err := s.App.Devices.ExpireSessions(ctx); err != nil || n != 0 {
		t.Fatalf("a sweep before anything is due expired %d sessions (%v)", n, err)
	}
	// Pretend 13 hours have passed (the clock is the fake boundary).
	s.App.Devices.Now = func() time.Time { return time.Now().Add(13 * time.Hour) }
	var wg sync.WaitGroup
	counts := make([]int, 4)
	for i := range counts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			counts[i], _ = s.App.Devices.ExpireSessions(ctx)
		}()
	}
	wg.Wait()
	total := 0
	for _, c := range counts {
		total += c
	}
	// Paul's two sessions and the back office's (whose token ended long
	// ago).
	if total != 3 {
		t.Fatalf("%d sessions expired by 4 sweepers, want 3", total)
	}
	if _, ok, _ := s.App.ReadModels.Get(ctx, "sessions", sid2); ok {
		t.Fatal("the signed-out session is still in the read model")
	}
	evs, _ := s.App.Store.ReadStream(ctx, sid, 0)
	expired := 0
	for _, ev := range evs {
		if ev.Type == "session.expired" {
			expired++
		}
	}
	if expired != 1 || evs[len(evs)-1].Type != "session.expired" {
		t.Fatalf("paul's session has %d session.expired events", expired)
	}
	if _, ok, _ := s.App.ReadModels.Get(ctx, "sessions", sid); ok {
		t.Fatal("the expired session is still in the read model")
	}
	if introspectActive(t, s, tok.AccessToken) {
		t.Fatal("a token of an expired session is active")
	}
	if _, err := app.Refresh(ctx, tok.RefreshToken); err == nil {
		t.Fatal("an expired session refreshed")
	}
}

// TestRefreshUnderLoad: 512 refreshes at once (64 sessions, 8 parallel
// requests each with the same token) all complete — the server degrades by
// queueing on its connection pool, never by deadlocking or failing — and
// every session's chain continues with one successor.
func TestRefreshUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: 512 concurrent refreshes against PostgreSQL (make test runs it)")
	}
	s := authdtest.Start(t, authdtest.Options{})
	ctx := context.Background()
	const sessions, perSession = 64, 8
	apps := make([]*mobileclient.Client, sessions)
	toks := make([]*mobileclient.Tokens, sessions)
	for i := range apps {
		apps[i] = enrolled(t, s, fmt.Sprintf("load-%d", i), "123456")
		tok, err := apps[i].SignIn(ctx, "123456")
		if err != nil {
			t.Fatal(err)
		}
		toks[i] = tok
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	successors := make([]map[string]bool, sessions)
	var failures []string
	start := make(chan struct{})
	for i := range apps {
		successors[i] = map[string]bool{}
		for range perSession {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				got, err := apps[i].Refresh(ctx, toks[i].RefreshToken)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failures = append(failures, err.Error())
					return
				}
				successors[i][got.RefreshToken] = true
			}()
		}
	}
	close(start)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d refreshes failed, e.g. %s", len(failures), sessions*perSession, failures[0])
	}
	for i, set := range successors {
		if len(set) != 1 {
			t.Fatalf("session %d: %d different successors", i, len(set))
		}
	}
}
