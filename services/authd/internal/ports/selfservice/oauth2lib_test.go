package selfservice_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"strongroom.dev/services/authd/internal/authdtest"
	"strongroom.dev/services/authd/internal/projection"
	"strongroom.dev/services/authd/mobileclient"
	"strongroom.dev/services/dpop"
)

// dpopTransport adds a DPoP proof by the device key to every request and
// retries once with the server's nonce (RFC 9449 §8): what an app's HTTP
// stack does under a generic OAuth2 library.
type dpopTransport struct {
	app   *mobileclient.Client
	base  http.RoundTripper
	mu    sync.Mutex
	nonce string
}

func (d *dpopTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	for try := 0; ; try++ {
		req := r.Clone(r.Context())
		req.Body = io.NopCloser(bytes.NewReader(body))
		d.mu.Lock()
		nonce := d.nonce
		d.mu.Unlock()
		proof, err := dpop.NewProof(d.app.DeviceKey, req.Method, req.URL.String(), nonce, "", time.Now())
		if err != nil {
			return nil, err
		}
		req.Header.Set("DPoP", proof)
		resp, err := d.base.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		if n := resp.Header.Get("DPoP-Nonce"); n != "" {
			d.mu.Lock()
			d.nonce = n
			d.mu.Unlock()
		}
		if try == 0 && resp.StatusCode == http.StatusBadRequest && resp.Header.Get("DPoP-Nonce") != "" {
			resp.Body.Close()
			continue
		}
		return resp, nil
	}
}

// TestXOAuth2TokenSource: golang.org/x/oauth2 refreshes a passcode
// session's token against authd (the DPoP header added by a transport) and
// keeps working across rotations.
func TestXOAuth2TokenSource(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{})
	ctx := context.Background()
	app := enrolled(t, s, "quinn", "314159")
	first, err := app.SignIn(ctx, "314159")
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &dpopTransport{app: app, base: s.Client.Transport}}
	cfg := oauth2.Config{ClientID: "mobile-app", Endpoint: oauth2.Endpoint{TokenURL: s.PublicURL + "/oauth2/token", AuthStyle: oauth2.AuthStyleInParams}}
	octx := context.WithValue(ctx, oauth2.HTTPClient, hc)
	tok := &oauth2.Token{AccessToken: first.AccessToken, RefreshToken: first.RefreshToken, Expiry: time.Now().Add(-time.Second)}
	seen := map[string]bool{first.RefreshToken: true}
	for i := range 3 {
		// An expired token makes the source refresh.
		next, err := cfg.TokenSource(octx, tok).Token()
		if err != nil {
			t.Fatalf("refresh %d: %v", i, err)
		}
		if next.AccessToken == tok.AccessToken || next.RefreshToken == "" || seen[next.RefreshToken] || next.Type() != "DPoP" {
			t.Fatalf("refresh %d: %+v", i, next)
		}
		seen[next.RefreshToken] = true
		if !introspectActive(t, s, next.AccessToken) {
			t.Fatalf("refresh %d: token inactive", i)
		}
		next.Expiry = time.Now().Add(-time.Second)
		tok = next
	}
}

// TestRebuildingSessionsGivesTheSameAnswers rebuilds the inline sessions
// read model (the only one token checks read) from the log while authd
// serves, and compares.
func TestRebuildingSessionsGivesTheSameAnswers(t *testing.T) {
	s := authdtest.Start(t, authdtest.Options{})
	ctx := context.Background()
	app := enrolled(t, s, "rita", "271828")
	t1, _ := app.SignIn(ctx, "271828")
	t2, _ := app.SignIn(ctx, "271828")
	if _, err := app.Refresh(ctx, t1.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if err := app.SignOut(ctx, t1, sessionOf(t, s, t2.AccessToken)); err != nil {
		t.Fatal(err)
	}
	names := []string{"sessions"}
	before := map[string][]projection.Doc{}
	for _, n := range names {
		before[n], _ = s.App.ReadModels.All(ctx, n)
	}
	for _, n := range names {
		if err := s.App.ReadModels.Rebuild(ctx, n); err != nil {
			t.Fatalf("rebuild %s: %v", n, err)
		}
		after, _ := s.App.ReadModels.All(ctx, n)
		if len(after) != len(before[n]) || len(after) == 0 {
			t.Fatalf("%s: %d rows after rebuild, %d before", n, len(after), len(before[n]))
		}
		for i := range after {
			if after[i].Key != before[n][i].Key || !jsonEqual(after[i].Data, before[n][i].Data) {
				t.Fatalf("%s row %d differs:\n%s\n%s", n, i, after[i].Data, before[n][i].Data)
			}
		}
	}
	if !introspectActive(t, s, t1.AccessToken) || introspectActive(t, s, t2.AccessToken) {
		t.Fatal("answers changed after the rebuild")
	}
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}
