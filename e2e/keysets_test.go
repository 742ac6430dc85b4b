package e2e

import (
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"strongroom.dev/api/keyset"
	"strongroom.dev/api/v1alpha1"
	"strongroom.dev/services/authd/mobileclient"
)

// TestKeySetsAcrossReplicas is key rotation end to end on the real clock:
// the operator binary against a real kube-apiserver rotates three KeySets
// (token-signing, payload-sealing, hmac-secret: a new key every 20 s,
// published 14 s ahead); a kubelet-style sync mounts their Secrets into two
// authd processes on one database — promptly for replica A, only every
// 3 s for replica B, so the two reload at different times. An app and two
// resource servers (one caching A's JWKS, one B's) work through both
// replicas across several rotations of every set:
//
//   - no token fails verification at either replica, and a resource
//     server whose JWKS cache is younger than publishAhead (less the
//     mounts' lag) never meets an unknown kid;
//   - tokens signed before a rotation stay active until they expire, and
//     every new token is signed with the key active by the clock;
//   - a passcode sealed to the keys fetched from one replica opens at the
//     other;
//   - a refresh-token chain and an activation code issued before the HMAC
//     rotations keep working;
//   - after `rotate-now: revoke`, the revoked key's tokens fail at once
//     at both replicas and new tokens use another key.
func TestKeySetsAcrossReplicas(t *testing.T) {
	kc := startKube(t)
	ctx, k8s := t.Context(), kc.client
	const (
		period       = 20 * time.Second
		publishAhead = 14 * time.Second
		slowSync     = 3 * time.Second
		// lag: the slow mount's sync plus authd's reload (1 s) and slack
		// for a loaded machine (the operator's write, the sync's reads);
		// in production it is about a minute against publishAhead's day.
		lag = slowSync + 5*time.Second
	)
	d := func(v time.Duration) metav1.Duration { return metav1.Duration{Duration: v} }
	pd := func(v time.Duration) *metav1.Duration { return &metav1.Duration{Duration: v} }
	sets := []*v1alpha1.KeySet{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "bank", Name: "signing"}, Spec: v1alpha1.KeySetSpec{
			Purpose: v1alpha1.PurposeTokenSigning, SecretName: "authd-signing",
			RotationPeriod: d(period), PublishAhead: d(publishAhead), RetireAfter: d(40 * time.Second), ProtectedLifetime: pd(30 * time.Second)}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "bank", Name: "sealing"}, Spec: v1alpha1.KeySetSpec{
			Purpose: v1alpha1.PurposePayloadSealing, SecretName: "authd-sealing",
			RotationPeriod: d(period), PublishAhead: d(publishAhead), RetireAfter: d(2 * time.Minute), ProtectedLifetime: pd(2 * time.Minute)}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "bank", Name: "hmac"}, Spec: v1alpha1.KeySetSpec{
			Purpose: v1alpha1.PurposeHMACSecret, SecretName: "authd-hmac",
			RotationPeriod: d(period), PublishAhead: d(publishAhead), RetireAfter: d(2 * time.Minute), ProtectedLifetime: pd(2 * time.Minute)}},
	}
	for _, ks := range sets {
		if err := k8s.Create(ctx, ks); err != nil {
			t.Fatal(err)
		}
	}
	startOperator(t, kc.root, kc.env)

	// The kubelet: each Secret mounted twice, once per replica.
	secretFiles := func(name string) map[string][]byte {
		var s corev1.Secret
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: "bank", Name: name}, &s); err != nil {
			return nil
		}
		return map[string][]byte{keyset.FileName: s.Data[keyset.FileName]}
	}
	names := []string{"authd-signing", "authd-sealing", "authd-hmac"}
	first := map[string]map[string][]byte{}
	waitUntil(t, 60*time.Second, "the operator's first keys", func() bool {
		for _, n := range names {
			if first[n] = secretFiles(n); first[n] == nil {
				return false
			}
		}
		return true
	})
	mountsA, mountsB := map[string]*kubeletMount{}, map[string]*kubeletMount{}
	for _, n := range names {
		mountsA[n], mountsB[n] = newKubeletMount(t, first[n]), newKubeletMount(t, first[n])
	}
	keys := &keyHistory{}
	keys.record(t, first["authd-signing"])
	syncCtx, stopSync := context.WithCancel(ctx)
	syncDone := make(chan struct{})
	go func() {
		defer close(syncDone)
		lastSlow := time.Now()
		for syncCtx.Err() == nil {
			slow := time.Since(lastSlow) >= slowSync
			if slow {
				lastSlow = time.Now()
			}
			for _, n := range names {
				f := secretFiles(n)
				if f == nil {
					continue
				}
				if !sameFiles(f, mountsA[n].last) {
					if n == "authd-signing" {
						keys.record(t, f)
					}
					mountsA[n].update(f)
				}
				if slow && !sameFiles(f, mountsB[n].last) {
					mountsB[n].update(f)
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { stopSync(); <-syncDone })

	dsn := freshDatabase(t)
	serve, pin := productionServe(t)
	start := func(mounts map[string]*kubeletMount) *process {
		args := slices.Clone(serve)
		args = withFlag(args, "--signing-keys-dir", mounts["authd-signing"].dir)
		args = withFlag(args, "--sealing-keys-dir", mounts["authd-sealing"].dir)
		args = withFlag(args, "--hmac-keys-dir", mounts["authd-hmac"].dir)
		args = append(args, "--access-token-lifetime", "30s", "--activation-code-lifetime", "2m", "--refresh-token-lifetime", "2m", "--migrate-on-start")
		return startAuthd(t, cleanEnv("DATABASE_URL="+dsn), args...)
	}
	a, b := start(mountsA), start(mountsB)
	via := map[string]*http.Client{"a": routedClient(pin, a), "b": routedClient(pin, b)}
	other := map[string]string{"a": "b", "b": "a"}
	for _, hc := range via {
		defer hc.CloseIdleConnections()
	}

	// Codes issued before any HMAC rotation: one for now, one for the end.
	code := issueCode(t, via["a"], "kim")
	lateCode := issueCode(t, via["b"], "kim")
	app, err := mobileclient.New("https://auth.bank.test", via["a"])
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Enroll(ctx, code, "Phone", "android"); err != nil {
		t.Fatalf("enroll: %v", err)
	}
	// The passcode sealed to B's keys, set through A.
	app.HTTP = splitClient(via["b"], via["a"])
	if err := app.SetPasscode(ctx, "271828", ""); err != nil {
		t.Fatalf("passcode: %v", err)
	}
	tok, err := app.SignIn(ctx, "271828")
	if err != nil {
		t.Fatalf("sign in: %v", err)
	}

	// Both documents tell clients to cache them for half of publishAhead.
	for _, path := range []string{"/.well-known/jwks.json", "/.well-known/sealing-keys.json"} {
		resp, err := via["b"].Get("https://auth.bank.test" + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := fmt.Sprintf("public, max-age=%d", int(publishAhead/2/time.Second)); resp.Header.Get("Cache-Control") != want {
			t.Fatalf("%s: Cache-Control %q, want %q", path, resp.Header.Get("Cache-Control"), want)
		}
	}

	// Resource servers: each caches one replica's JWKS, refetching it when
	// it is older than maxAge.
	maxAge := publishAhead - lag
	rs := map[string]*jwksCache{"a": {hc: via["a"], maxAge: maxAge}, "b": {hc: via["b"], maxAge: maxAge}}
	type issued struct {
		token, kid string
		iat, exp   time.Time
	}
	var tokens []issued
	kids := map[string]bool{}
	check := func(access string) issued {
		t.Helper()
		for name, c := range rs {
			if err := c.verify(t, access); err != nil {
				t.Fatalf("resource server with %s's JWKS: %v", name, err)
			}
		}
		var claims struct {
			IAT, EXP int64
		}
		kid, payload := jwsParts(t, access)
		if err := json.Unmarshal(payload, &claims); err != nil {
			t.Fatal(err)
		}
		it := issued{token: access, kid: kid, iat: time.Unix(claims.IAT, 0), exp: time.Unix(claims.EXP, 0)}
		// Signed with the key active by the clock at the instant of
		// issue, which iat gives to the second: the key active at iat, or
		// one that became active within that second.
		want, wantNB, knownNB, known := keys.lookup(it.iat, kid)
		switch {
		case !known:
			t.Fatalf("a token is signed with %s, a key never in the Secret", kid)
		case kid == want:
		case knownNB.After(it.iat) && knownNB.Before(it.iat.Add(time.Second)):
		default:
			t.Fatalf("a token issued at %s is signed with %s (active from %s), not with %s, active since %s",
				it.iat, kid, knownNB, want, wantNB)
		}
		kids[kid] = true
		tokens = append(tokens, it)
		return it
	}
	check(tok.AccessToken)

	deadline := time.Now().Add(70 * time.Second)
	replica := "a"
	for i := 0; time.Now().Before(deadline); i++ {
		replica = other[replica]
		// Refresh through one replica, alternately: the chain goes on
		// across the HMAC rotations.
		app.HTTP = via[replica]
		next, err := app.Refresh(ctx, tok.RefreshToken)
		if err != nil {
			t.Fatalf("refresh via %s after %d rounds: %v", replica, i, err)
		}
		tok = next
		check(tok.AccessToken)
		// Every token not yet expired is active at both replicas.
		now := time.Now()
		for _, it := range tokens {
			if it.exp.After(now.Add(time.Second)) {
				for name, hc := range via {
					if !introspect(t, hc, it.token) {
						t.Fatalf("a token signed with %s at %s, expiring %s, is inactive at %s", it.kid, it.iat, it.exp, name)
					}
				}
			}
		}
		// Now and then, a sign-in with the passcode sealed to the keys one
		// replica lists, opened by the other.
		if i%4 == 0 {
			app.HTTP = splitClient(via[replica], via[other[replica]])
			signed, err := app.SignIn(ctx, "271828")
			if err != nil {
				t.Fatalf("sign in, sealed to %s's keys, at %s: %v", replica, other[replica], err)
			}
			check(signed.AccessToken)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(kids) < 4 {
		t.Fatalf("only %d signing keys used in 70 s", len(kids))
	}

	// The activation code from before all the HMAC rotations still works.
	second, err := mobileclient.New("https://auth.bank.test", via["b"])
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Enroll(ctx, lateCode, "Tablet", "ios"); err != nil {
		t.Fatalf("an activation code issued before the HMAC rotations: %v", err)
	}

	// Revoke the signing key in use.
	var ks v1alpha1.KeySet
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(sets[0]), &ks); err != nil {
		t.Fatal(err)
	}
	app.HTTP = via["a"]
	if tok, err = app.Refresh(ctx, tok.RefreshToken); err != nil {
		t.Fatal(err)
	}
	victim := check(tok.AccessToken)
	patch := client.MergeFrom(ks.DeepCopy())
	if ks.Annotations == nil {
		ks.Annotations = map[string]string{}
	}
	ks.Annotations[v1alpha1.AnnotationRotateNow] = v1alpha1.RotateNowRevoke
	if err := k8s.Patch(ctx, &ks, patch); err != nil {
		t.Fatal(err)
	}
	revokedAt := time.Now()
	waitUntil(t, 20*time.Second, "both replicas dropping the revoked key", func() bool {
		for _, hc := range via {
			if strings.Contains(string(get200(t, hc, "/.well-known/jwks.json")), `"`+victim.kid+`"`) {
				return false
			}
		}
		return true
	})
	t.Logf("the revoked key left both JWKS %s after the annotation", time.Since(revokedAt).Round(time.Millisecond))
	for name, hc := range via {
		if introspect(t, hc, victim.token) {
			t.Fatalf("a token of the revoked key is still active at %s", name)
		}
	}
	for name, hc := range via {
		app.HTTP = hc
		if tok, err = app.Refresh(ctx, tok.RefreshToken); err != nil {
			t.Fatalf("refresh via %s after the revocation: %v", name, err)
		}
		if _, payload := jwsParts(t, tok.AccessToken); len(payload) == 0 {
			t.Fatal("empty token")
		}
		if kid, _ := jwsParts(t, tok.AccessToken); kid == victim.kid {
			t.Fatalf("%s signs with the revoked key", name)
		}
		if !introspect(t, hc, tok.AccessToken) || !introspect(t, via[other[name]], tok.AccessToken) {
			t.Fatal("a token signed after the revocation is not active at both")
		}
	}
	waitUntil(t, 20*time.Second, "the revoke annotations cleared", func() bool {
		var now v1alpha1.KeySet
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(sets[0]), &now); err != nil {
			return false
		}
		_, a := now.Annotations[v1alpha1.AnnotationRotateNow]
		_, r := now.Annotations[v1alpha1.AnnotationRevoking]
		return !a && !r && now.Status.ActiveKeyID != victim.kid && now.Status.ActiveKeyID != ""
	})
}

// withFlag sets the value of flag in args.
func withFlag(args []string, flag, value string) []string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			args[i+1] = value
			return args
		}
	}
	return append(args, flag, value)
}

// splitClient sends GET /.well-known/sealing-keys.json through keys and
// everything else through rest: an app that fetched the sealing keys from
// one replica and whose next request lands on another.
func splitClient(keys, rest *http.Client) *http.Client {
	return &http.Client{Timeout: 15 * time.Second, Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if r.URL.Path == "/.well-known/sealing-keys.json" {
			return keys.Transport.RoundTrip(r)
		}
		return rest.Transport.RoundTrip(r)
	})}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// jwksCache is a resource server's view of the JWKS: fetched again only
// when older than maxAge, and never on an unknown kid (that is what the
// test checks cannot happen).
type jwksCache struct {
	hc      *http.Client
	maxAge  time.Duration
	set     jose.JSONWebKeySet
	fetched time.Time
}

func (c *jwksCache) verify(t *testing.T, token string) error {
	t.Helper()
	if time.Since(c.fetched) > c.maxAge {
		if err := json.Unmarshal(get200(t, c.hc, "/.well-known/jwks.json"), &c.set); err != nil {
			t.Fatal(err)
		}
		c.fetched = time.Now()
	}
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		return err
	}
	kid := jws.Signatures[0].Header.KeyID
	keys := c.set.Key(kid)
	if len(keys) != 1 {
		return fmt.Errorf("unknown kid %s in a JWKS fetched %s ago", kid, time.Since(c.fetched).Round(time.Millisecond))
	}
	pub, ok := keys[0].Key.(*ecdsa.PublicKey)
	if !ok {
		return fmt.Errorf("kid %s is not an EC key", kid)
	}
	if _, err := jws.Verify(pub); err != nil {
		return fmt.Errorf("kid %s: %w", kid, err)
	}
	return nil
}

// jwsParts returns a compact JWS's kid and payload, unverified.
func jwsParts(t *testing.T, token string) (kid string, payload []byte) {
	t.Helper()
	jws, err := jose.ParseSignedCompact(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	return jws.Signatures[0].Header.KeyID, jws.UnsafePayloadWithoutVerification()
}

func get200(t *testing.T, hc *http.Client, path string) []byte {
	t.Helper()
	resp, err := hc.Get("https://auth.bank.test" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", path, resp.StatusCode, err)
	}
	return body
}

// keyHistory is every signing key seen in the operator's keys.json
// (kid → not_before), to know which key was active when.
type keyHistory struct {
	mu        sync.Mutex
	notBefore map[string]time.Time
}

// record adds the keys of one version of the Secret's files.
func (h *keyHistory) record(t testing.TB, files map[string][]byte) {
	f, err := keyset.Parse(files[keyset.FileName])
	if err != nil {
		t.Errorf("the operator wrote a keys.json authd cannot parse: %v", err)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.notBefore == nil {
		h.notBefore = map[string]time.Time{}
	}
	for _, k := range f.Keys {
		h.notBefore[k.KID] = k.NotBefore
	}
}

// lookup returns the key active at instant at (the latest not_before not
// after it) and since when, and when kid became active (known is false
// for a kid never seen).
func (h *keyHistory) lookup(at time.Time, kid string) (active string, activeSince, kidSince time.Time, known bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, nb := range h.notBefore {
		if !nb.After(at) && nb.After(activeSince) {
			active, activeSince = k, nb
		}
	}
	kidSince, known = h.notBefore[kid]
	return active, activeSince, kidSince, known
}
