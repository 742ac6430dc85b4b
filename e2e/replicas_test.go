package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"strongroom.dev/services/dpop"
)

// TestDPoPReplayAcrossProcesses runs two authd processes on one database
// behind one issuer, as two replicas behind a load balancer: a DPoP proof
// used at one is refused at the other, and a nonce from one is good at the
// other.
func TestDPoPReplayAcrossProcesses(t *testing.T) {
	dsn := freshDatabase(t)
	env := cleanEnv("DATABASE_URL=" + dsn)
	args, pin := productionServe(t)
	args = append(args, "--migrate-on-start")
	a := startAuthd(t, env, args...)
	b := startAuthd(t, env, args...)
	client := pinnedClient(pin)
	defer client.CloseIdleConnections()

	token := func(p *process, proof string) (int, map[string]any, string) {
		req, _ := http.NewRequest(http.MethodPost, "https://"+p.public+"/oauth2/token",
			strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("back-office", backOfficeSecret)
		if proof != "" {
			req.Header.Set("DPoP", proof)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		return resp.StatusCode, m, resp.Header.Get("DPoP-Nonce")
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	const htu = "https://auth.bank.test/oauth2/token"
	_, _, nonce := token(a, "")
	proof, err := dpop.NewProof(key, "POST", htu, nonce, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if status, m, _ := token(a, proof); status != 200 || m["token_type"] != "DPoP" {
		t.Fatalf("replica a: %d %v", status, m)
	}
	if status, m, _ := token(b, proof); status != 400 || m["error"] != "invalid_dpop_proof" {
		t.Fatalf("the same proof at replica b: %d %v", status, m)
	}
	_, _, nonceA := token(a, "")
	fresh, _ := dpop.NewProof(key, "POST", htu, nonceA, "", time.Now())
	if status, m, _ := token(b, fresh); status != 200 {
		t.Fatalf("a's nonce at b: %d %v", status, m)
	}
}
