package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"strongroom.dev/services/authd/mobileclient"
)

// routedClient pins the certificate and sends auth.bank.test (public) and
// authd-internal.bank.test (internal) to one authd process, as a load
// balancer in front of replicas would.
func routedClient(pin string, p *process) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		// Like a fleet of apps, each keeping its connection: the default
		// of two idle connections would make every parallel client
		// handshake again for most requests.
		MaxIdleConnsPerHost: 512,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			switch {
			case strings.HasPrefix(addr, "auth.bank.test:"):
				addr = p.public
			case strings.HasPrefix(addr, "authd-internal.bank.test:"):
				addr = p.admin
			default:
				return nil, fmt.Errorf("no route to %s", addr)
			}
			return dialer.DialContext(ctx, network, addr)
		},
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true,
			VerifyConnection: func(cs tls.ConnectionState) error {
				leaf := cs.PeerCertificates[0]
				sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
				if base64.StdEncoding.EncodeToString(sum[:]) != pin {
					return errors.New("pin mismatch")
				}
				roots := x509.NewCertPool()
				roots.AddCert(leaf)
				_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: cs.ServerName})
				return err
			}},
	}}
}

// TestSessionAcrossProcesses: two authd processes on one database behind
// one issuer. A session started through one is refreshed, introspected and
// revoked through the other.
func TestSessionAcrossProcesses(t *testing.T) {
	dsn := freshDatabase(t)
	env := cleanEnv("DATABASE_URL=" + dsn)
	args, pin := productionServe(t)
	args = append(args, "--migrate-on-start")
	a := startAuthd(t, env, args...)
	b := startAuthd(t, env, args...)
	viaA, viaB := routedClient(pin, a), routedClient(pin, b)
	defer viaA.CloseIdleConnections()
	defer viaB.CloseIdleConnections()
	ctx := context.Background()

	code := issueCode(t, viaA, "ursula")
	app, err := mobileclient.New("https://auth.bank.test", viaA)
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Enroll(ctx, code, "Phone", "android"); err != nil {
		t.Fatalf("enroll via a: %v", err)
	}
	if err := app.SetPasscode(ctx, "161803", ""); err != nil {
		t.Fatalf("passcode via a: %v", err)
	}
	tok, err := app.SignIn(ctx, "161803")
	if err != nil {
		t.Fatalf("sign in via a: %v", err)
	}
	// Everything else through b.
	app.HTTP = viaB
	next, err := app.Refresh(ctx, tok.RefreshToken)
	if err != nil {
		t.Fatalf("refresh via b: %v", err)
	}
	if !introspect(t, viaB, next.AccessToken) || !introspect(t, viaA, next.AccessToken) {
		t.Fatal("the refreshed token is not active at both")
	}
	sessions, err := app.Sessions(ctx, next)
	if err != nil || len(sessions) != 1 {
		t.Fatalf("sessions via b: %v %v", sessions, err)
	}
	if err := app.SignOut(ctx, next, sessions[0].SID); err != nil {
		t.Fatalf("sign out via b: %v", err)
	}
	if introspect(t, viaA, next.AccessToken) || introspect(t, viaA, tok.AccessToken) {
		t.Fatal("revoked through b, still active at a")
	}
	app.HTTP = viaA
	if _, err := app.Refresh(ctx, next.RefreshToken); err == nil {
		t.Fatal("a session revoked through b refreshed through a")
	}
}

func backOffice(t testing.TB, hc *http.Client) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "https://auth.bank.test/oauth2/token",
		strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "scope": {"strongroom:admin"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("back-office", backOfficeSecret)
	var out struct {
		AccessToken string `json:"access_token"`
	}
	mustJSON(t, hc, req, http.StatusOK, &out)
	return out.AccessToken
}

func issueCode(t testing.TB, hc *http.Client, user string) string {
	t.Helper()
	return issueCodeFor(t, hc, user, "enroll")
}

// issueCodeFor has the back office issue a code for purpose (enroll or
// reset).
func issueCodeFor(t testing.TB, hc *http.Client, user, purpose string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"user_id": user, "purpose": purpose, "operator": "E2E Operator"})
	req, _ := http.NewRequest(http.MethodPost, "https://authd-internal.bank.test/admin/v1/activations", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+backOffice(t, hc))
	var out struct {
		Code string `json:"code"`
	}
	mustJSON(t, hc, req, http.StatusCreated, &out)
	return out.Code
}

// trailIPs reads a user's audit trail (its first page) through the back
// office and returns the client IP of the last event of each type.
func trailIPs(t testing.TB, hc *http.Client, user string) map[string]string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "https://authd-internal.bank.test/admin/v1/users/"+url.PathEscape(user)+
		"/events?operator="+url.QueryEscape("E2E Operator"), nil)
	req.Header.Set("Authorization", "Bearer "+backOffice(t, hc))
	var out struct {
		Events []struct {
			Type string `json:"type"`
			IP   string `json:"ip"`
		} `json:"events"`
	}
	mustJSON(t, hc, req, http.StatusOK, &out)
	ips := map[string]string{}
	for _, ev := range out.Events {
		ips[ev.Type] = ev.IP
	}
	return ips
}

func introspect(t testing.TB, hc *http.Client, token string) bool {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "https://authd-internal.bank.test/oauth2/introspect",
		strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("back-office", backOfficeSecret)
	var out struct {
		Active bool `json:"active"`
	}
	mustJSON(t, hc, req, http.StatusOK, &out)
	return out.Active
}

func mustJSON(t testing.TB, hc *http.Client, req *http.Request, want int, out any) {
	t.Helper()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s", req.Method, req.URL, resp.StatusCode, raw)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
}
