package e2e

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"strongroom.dev/api/authzdetails"
	"strongroom.dev/api/fastclock"
	"strongroom.dev/api/keyset"
	"strongroom.dev/api/pinset"
	"strongroom.dev/api/v1alpha1"
	"strongroom.dev/services/authd/mobileclient"
	"strongroom.dev/services/dpop"
	"strongroom.dev/services/rsverify"
)

// lifeRate is how much faster than the wall clock the clock of the whole
// system runs in TestLifeOfAUser: the operator, both authd replicas, the
// app and the bank's API read the same fast clock (api/fastclock). At 20,
// a certificate rotation every 15 minutes and a signing-key rotation every
// 10 take 45 and 30 seconds, while a DPoP proof still has its 60 seconds
// of leeway (3 s of wall time), a challenge its minute, a token its five.
const lifeRate = 20

// accessLifetime is authd's default access-token lifetime.
const accessLifetime = 5 * time.Minute

// TestLifeOfAUser is the whole system end to end: a real kube-apiserver and
// etcd, the operator as a process, two authd replicas on one PostgreSQL
// database behind a TCP load balancer (TLS ends at authd), each mounting
// the operator's Secrets and ConfigMap the way the kubelet does (one
// promptly, one only every second), the reference mobile client as the
// app, and a bank's API verifying tokens with rsverify. Under a clock 20
// times faster than the wall clock, the operator rotates the pinned
// certificate (every 15 min), the signing, sealing and HMAC keys (every
// 10 min) while the user lives: enrollment, passcode, biometric key,
// biometric sign-ins, refreshes landing on both replicas, a confirmed
// payment, wrong passcodes up to the lock, a reset, and sign-out. The app
// pins every connection to the pin set it holds (refreshed from the signed
// pinset.json, as an app does every few days) and the API verifies every
// token: nothing may fail across the rotations.
func TestLifeOfAUser(t *testing.T) {
	kc := startKube(t)
	ctx, k8s := t.Context(), kc.client
	fastAuthd := buildBinary(t, kc.root, "strongroom.dev/services/authd/cmd/authd", "-tags", "strongroom_fastclock")
	fastOperator := buildBinary(t, kc.root, "strongroom.dev/operator/cmd/operator", "-tags", "strongroom_fastclock")
	clk, err := fastclock.New(time.Now(), lifeRate)
	if err != nil {
		t.Fatal(err)
	}
	clockEnv := fastclock.Env + "=" + clk.String()

	// The cluster: a CA and a pin-manifest key (made by the bank), a
	// PinnedCertificate and three KeySets, the operator.
	caPEM, manifest := pinningSecrets(t, k8s)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	d := func(v time.Duration) metav1.Duration { return metav1.Duration{Duration: v} }
	pd := func(v time.Duration) *metav1.Duration { return &metav1.Duration{Duration: v} }
	ns := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: "bank", Name: name} }
	pc := &v1alpha1.PinnedCertificate{ObjectMeta: ns("authd"), Spec: v1alpha1.PinnedCertificateSpec{
		SecretName: "authd-tls", DNSNames: []string{"auth.bank.test", "authd-internal.bank.test"},
		Issuer:   v1alpha1.IssuerSpec{CA: &v1alpha1.CAIssuer{SecretName: "bank-ca"}},
		Validity: d(30 * time.Minute), RenewBefore: d(15 * time.Minute), PublishAhead: d(8 * time.Minute), BackupKeys: 1,
		PinSet: v1alpha1.PinSetSpec{ConfigMapName: "authd-pinset", ManifestKeys: []v1alpha1.ManifestKeyRef{{SecretName: "manifest-a"}}},
	}}
	sets := []*v1alpha1.KeySet{
		{ObjectMeta: ns("signing"), Spec: v1alpha1.KeySetSpec{Purpose: v1alpha1.PurposeTokenSigning, SecretName: "authd-signing",
			RotationPeriod: d(10 * time.Minute), PublishAhead: d(4 * time.Minute), RetireAfter: d(10 * time.Minute), ProtectedLifetime: pd(10 * time.Minute)}},
		{ObjectMeta: ns("sealing"), Spec: v1alpha1.KeySetSpec{Purpose: v1alpha1.PurposePayloadSealing, SecretName: "authd-sealing",
			RotationPeriod: d(10 * time.Minute), PublishAhead: d(4 * time.Minute), RetireAfter: d(10 * time.Minute)}},
		{ObjectMeta: ns("hmac"), Spec: v1alpha1.KeySetSpec{Purpose: v1alpha1.PurposeHMACSecret, SecretName: "authd-hmac",
			RotationPeriod: d(10 * time.Minute), PublishAhead: d(4 * time.Minute), RetireAfter: d(30 * time.Minute), ProtectedLifetime: pd(30 * time.Minute)}},
	}
	for _, o := range []client.Object{pc, sets[0], sets[1], sets[2]} {
		if err := k8s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	runOperator(t, fastOperator, kc.env, clockEnv)

	// The kubelet: every Secret and the ConfigMap, mounted into each
	// replica; replica a's copies follow within 0.1 s, b's within 1 s.
	secret := func(name string, keys ...string) func() map[string][]byte {
		return func() map[string][]byte {
			var s corev1.Secret
			if err := k8s.Get(ctx, types.NamespacedName{Namespace: "bank", Name: name}, &s); err != nil {
				return nil
			}
			files := map[string][]byte{}
			for _, k := range keys {
				files[k] = s.Data[k]
			}
			return files
		}
	}
	sources := map[string]func() map[string][]byte{
		"tls":     secret("authd-tls", "tls.crt", "tls.key"),
		"signing": secret("authd-signing", keyset.FileName),
		"sealing": secret("authd-sealing", keyset.FileName),
		"hmac":    secret("authd-hmac", keyset.FileName),
		"pinset": func() map[string][]byte {
			var c corev1.ConfigMap
			if err := k8s.Get(ctx, types.NamespacedName{Namespace: "bank", Name: "authd-pinset"}, &c); err != nil {
				return nil
			}
			return map[string][]byte{"pinset.json": []byte(c.Data["pinset.json"]), "android.xml": []byte(c.Data["android.xml"])}
		},
	}
	first := map[string]map[string][]byte{}
	waitUntil(t, 60*time.Second, "the operator's first certificate, pin set and keys", func() bool {
		for name, read := range sources {
			if first[name] = read(); first[name] == nil {
				return false
			}
		}
		return true
	})
	keys := &keyHistory{}
	keys.record(t, first["signing"])
	mounts := map[string]map[string]*kubeletMount{"a": {}, "b": {}}
	for name, files := range first {
		mounts["a"][name], mounts["b"][name] = newKubeletMount(t, files), newKubeletMount(t, files)
	}
	syncCtx, stopSync := context.WithCancel(ctx)
	syncDone := make(chan struct{})
	go func() {
		defer close(syncDone)
		lastB := time.Now()
		for syncCtx.Err() == nil {
			syncB := time.Since(lastB) >= time.Second
			if syncB {
				lastB = time.Now()
			}
			for name, read := range sources {
				files := read()
				if files == nil {
					continue
				}
				if !sameFiles(files, mounts["a"][name].last) {
					if name == "signing" {
						keys.record(t, files)
					}
					mounts["a"][name].update(files)
				}
				if syncB && !sameFiles(files, mounts["b"][name].last) {
					mounts["b"][name].update(files)
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { stopSync(); <-syncDone })

	// The database, migrated first (the chart's pre-install Job), then
	// the two replicas.
	dsn := freshDatabase(t)
	env := cleanEnv("DATABASE_URL="+dsn, clockEnv)
	migrate := exec.Command(fastAuthd, "migrate")
	migrate.Env = env
	if out, err := migrate.CombinedOutput(); err != nil {
		t.Fatalf("authd migrate: %v\n%s", err, out)
	}
	clientsFile, peppersDir := lifeFiles(t)
	replicas := map[string]*process{}
	for _, name := range []string{"a", "b"} {
		m := mounts[name]
		replicas[name] = startAuthdBinary(t, fastAuthd, env, "serve",
			"--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
			"--issuer", "https://auth.bank.test", "--admin-url", "https://authd-internal.bank.test",
			"--tls-cert-file", filepath.Join(m["tls"].dir, "tls.crt"), "--tls-key-file", filepath.Join(m["tls"].dir, "tls.key"),
			"--pinset-dir", m["pinset"].dir, "--signing-keys-dir", m["signing"].dir,
			"--sealing-keys-dir", m["sealing"].dir, "--hmac-keys-dir", m["hmac"].dir,
			"--clients-file", clientsFile, "--peppers-dir", peppersDir, "--activation-code-lifetime", "30m",
			"--proxy-protocol-from", "127.0.0.1")
	}
	// The balancer sends the PROXY protocol, so authd sees each client's
	// address: the phone's is 127.0.0.2, the balancer's 127.0.0.1.
	lb := startBalancer(t, true, replicas["a"].public, replicas["b"].public)
	const phoneIP = "127.0.0.2"

	// TLS as the app and the back office see it: the bank's CA, checked at
	// the system's clock.
	tlsConfig := func(verify func(tls.ConnectionState) error) *tls.Config {
		return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots, Time: clk.Now, VerifyConnection: verify}
	}
	dialFrom := func(local string, route map[string]string) func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := &net.Dialer{Timeout: 5 * time.Second}
		if local != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
		}
		return func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, _ := net.SplitHostPort(addr)
			to, ok := route[host]
			if !ok {
				return nil, fmt.Errorf("no route to %s", addr)
			}
			return d.DialContext(ctx, network, to)
		}
	}
	dial := func(route map[string]string) func(ctx context.Context, network, addr string) (net.Conn, error) {
		return dialFrom("", route)
	}
	// The app pins every new connection (one per request, so the balancer
	// spreads them over both replicas) to the pin set it holds.
	pins := &heldPins{served: map[string]int{}}
	initial, err := pinset.Verify(string(first["pinset"]["pinset.json"]), manifest, 0, clk.Now())
	if err != nil {
		t.Fatalf("the operator's first pin set: %v", err)
	}
	pins.hold(initial) // compiled into the app
	public := map[string]string{"auth.bank.test": lb.addr()}
	appHTTP := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true, DialContext: dialFrom(phoneIP, public), TLSClientConfig: tlsConfig(pins.verify)}}
	// The pin set itself is signed: fetched over any TLS connection.
	fetcher := &mobileclient.Client{Issuer: "https://auth.bank.test", Now: clk.Now, HTTP: &http.Client{Timeout: 15 * time.Second,
		Transport: &http.Transport{DisableKeepAlives: true, DialContext: dial(public), TLSClientConfig: tlsConfig(nil)}}}
	refreshPins := func() {
		t.Helper()
		set, err := fetcher.PinSet(ctx, manifest, pins.version())
		if err != nil {
			t.Fatalf("the app's pin-set refresh: %v", err)
		}
		pins.hold(set)
	}
	// The back office, at each replica's internal listener.
	backOfficeVia := map[string]*http.Client{}
	for name, p := range replicas {
		backOfficeVia[name] = &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
			DisableKeepAlives: true, TLSClientConfig: tlsConfig(nil),
			DialContext: dial(map[string]string{"auth.bank.test": lb.addr(), "authd-internal.bank.test": p.admin})}}
	}
	// The bank's payment API: rsverify, at the system's clock, its JWKS
	// fetched through the balancer.
	api, err := rsverify.New(ctx, rsverify.Config{
		Issuer: "https://auth.bank.test", Audience: "https://api.bank.test", Now: clk.Now,
		HTTPClient:  &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{DialContext: dial(public), TLSClientConfig: tlsConfig(nil)}},
		ExternalURL: func(r *http.Request) string { return "https://api.bank.test" + r.URL.EscapedPath() },
	})
	if err != nil {
		t.Fatal(err)
	}

	app, err := mobileclient.New("https://auth.bank.test", appHTTP)
	if err != nil {
		t.Fatal(err)
	}
	app.Now = clk.Now
	callAPI := func(token string) (*rsverify.Token, error) {
		const u = "https://api.bank.test/v1/payments"
		proof, err := dpop.NewProof(app.DeviceKey, http.MethodPost, u, "", token, clk.Now())
		if err != nil {
			return nil, err
		}
		r := httptest.NewRequest(http.MethodPost, u, nil)
		r.Header.Set("Authorization", "DPoP "+token)
		r.Header.Set("DPoP", proof)
		return api.Verify(r)
	}
	kids := map[string]bool{}
	var live []*rsverify.Token // tokens issued, with their raw form
	raw := map[*rsverify.Token]string{}
	// check has the bank's API verify a new token and holds it to the key
	// active by the clock when it was issued.
	check := func(what string, tok *mobileclient.Tokens, acr string) *rsverify.Token {
		t.Helper()
		v, err := callAPI(tok.AccessToken)
		if err != nil {
			t.Fatalf("%s: the bank's API refused the token: %v", what, err)
		}
		if v.ACR != acr || v.JKT != app.KeyThumbprint() {
			t.Fatalf("%s: acr %q, cnf.jkt %q", what, v.ACR, v.JKT)
		}
		// When authd issued it, by the system's clock: exp less the
		// lifetime (iat is fosite's, which reads the wall clock; the two
		// agree in production).
		issued := v.ExpiresAt.Add(-accessLifetime)
		kid, _ := jwsParts(t, tok.AccessToken)
		want, wantNB, knownNB, known := keys.lookup(issued, kid)
		switch {
		case !known:
			t.Fatalf("%s: signed with %s, a key never in the Secret", what, kid)
		case kid == want:
		// A grant takes its time when it starts and signs when it ends,
		// after hashing the passcode: a key may become active in between
		// (up to 3 s of wall time on a loaded machine, a minute of this
		// clock).
		case knownNB.After(issued) && knownNB.Before(issued.Add(lifeRate*3*time.Second)):
		default:
			t.Fatalf("%s: issued at %s, signed with %s (active from %s), not %s (active since %s)", what, issued, kid, knownNB, want, wantNB)
		}
		kids[kid] = true
		live = append(live, v)
		raw[v] = tok.AccessToken
		return v
	}
	// Tokens not yet expired by the clock are active at both replicas:
	// the oldest one still live (signed with the oldest key) and the
	// newest.
	checkLive := func() {
		t.Helper()
		now := clk.Now()
		live = slices.DeleteFunc(live, func(v *rsverify.Token) bool { return !v.ExpiresAt.After(now.Add(15 * time.Second)) })
		if len(live) == 0 {
			return
		}
		for _, v := range []*rsverify.Token{live[0], live[len(live)-1]} {
			for name, hc := range backOfficeVia {
				if !introspect(t, hc, raw[v]) {
					t.Fatalf("a token expiring %s is inactive at %s", v.ExpiresAt, name)
				}
			}
		}
	}

	// Enrollment and the first sign-in.
	const user = "life"
	if err := app.Enroll(ctx, issueCode(t, backOfficeVia["a"], user), "Pixel", "android"); err != nil {
		t.Fatalf("enroll: %v", err)
	}
	if err := app.SetPasscode(ctx, "314159", ""); err != nil {
		t.Fatalf("set the passcode: %v", err)
	}
	// The audit trail holds the phone's address, which only the PROXY
	// header carried past the balancer.
	if ips := trailIPs(t, backOfficeVia["b"], user); ips["device.enrolled"] != phoneIP || ips["device.passcode_set"] != phoneIP {
		t.Fatalf("the audit trail's client IPs %v, want the phone's %s", ips, phoneIP)
	}
	tok, err := app.SignIn(ctx, "314159")
	if err != nil {
		t.Fatalf("passcode sign-in: %v", err)
	}
	check("passcode sign-in", tok, "urn:strongroom:acr:passcode")
	if err := app.EnrollBiometric(ctx, tok, nil); err != nil {
		t.Fatalf("biometric key: %v", err)
	}
	bio, err := app.SignInBiometric(ctx, nil)
	if err != nil {
		t.Fatalf("biometric sign-in: %v", err)
	}
	check("biometric sign-in", bio, "urn:strongroom:acr:biometric")

	// Daily life while the operator rotates: refreshes, sign-ins of both
	// kinds, payments, the pin set refreshed every 2 minutes of the clock,
	// until the app has seen two certificate rotations and three signing
	// keys.
	payment := []authzdetails.Payment{{Type: "payment", Amount: "249.90", Currency: "EUR",
		Creditor: authzdetails.Creditor{Name: "Acme Energy", IBAN: "DE89370400440532013000"}, Reference: "INV-2026-1127"}}
	lastPins := clk.Now()
	deadline := time.Now().Add(5 * time.Minute)
	rounds := 0
	for ; pins.servedCount() < 3 || len(kids) < 3; rounds++ {
		if time.Now().After(deadline) {
			t.Fatalf("after %d rounds: %d certificates served, %d signing keys used", rounds, pins.servedCount(), len(kids))
		}
		switch rounds % 8 {
		case 2:
			if tok, err = app.SignIn(ctx, "314159"); err != nil {
				t.Fatalf("round %d, passcode sign-in: %v", rounds, err)
			}
			check("passcode sign-in", tok, "urn:strongroom:acr:passcode")
		case 4:
			if bio, err = app.SignInBiometric(ctx, nil); err != nil {
				t.Fatalf("round %d, biometric sign-in: %v", rounds, err)
			}
			check("biometric sign-in", bio, "urn:strongroom:acr:biometric")
		case 6:
			confirmed, err := app.SignInBiometric(ctx, payment)
			if err != nil {
				t.Fatalf("round %d, payment confirmation: %v", rounds, err)
			}
			if confirmed.RefreshToken != "" {
				t.Fatal("a payment confirmation came with a refresh token")
			}
			v := check("payment confirmation", confirmed, "urn:strongroom:acr:biometric")
			got, err := v.Payments()
			if err != nil || len(got) != 1 || got[0] != payment[0] {
				t.Fatalf("the payment in the token: %+v, %v", got, err)
			}
		default:
			// Both sessions go on, refreshed on whichever replica the
			// balancer picks.
			if tok, err = app.Refresh(ctx, tok.RefreshToken); err != nil {
				t.Fatalf("round %d, refresh of the passcode session: %v", rounds, err)
			}
			check("refresh", tok, "urn:strongroom:acr:passcode")
			if bio, err = app.Refresh(ctx, bio.RefreshToken); err != nil {
				t.Fatalf("round %d, refresh of the biometric session: %v", rounds, err)
			}
			check("refresh", bio, "urn:strongroom:acr:biometric")
		}
		checkLive()
		if clk.Since(lastPins) >= 2*time.Minute {
			refreshPins()
			lastPins = clk.Now()
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("%d rounds; certificates served (pin: connections): %v; signing keys: %d; connections per replica: %v",
		rounds, pins.servedSnapshot(), len(kids), lb.connections())

	// Too many wrong passcodes lock the device: the answers say how many
	// attempts remain, then to wait (30 s of the clock, doubling), then
	// device_locked; every session of the device ends.
	for failures := 0; failures < 5; {
		_, err := app.SignIn(ctx, "000000")
		var e *mobileclient.Error
		switch code := mobileclient.Code(err); {
		case code == "passcode_incorrect":
			failures++
		case code == "passcode_throttled" && errors.As(err, &e):
			time.Sleep(clk.Wall(e.RetryAfter) + 50*time.Millisecond)
		case code == "device_locked" && failures == 4:
			failures++
		default:
			t.Fatalf("wrong passcode after %d failures: %v", failures, err)
		}
	}
	if _, err := app.SignIn(ctx, "314159"); mobileclient.Code(err) != "device_locked" {
		t.Fatalf("the right passcode on a locked device: %v", err)
	}
	if _, err := app.SignInBiometric(ctx, nil); mobileclient.Code(err) != "device_locked" {
		t.Fatalf("a biometric sign-in on a locked device: %v", err)
	}
	for _, refresh := range []string{tok.RefreshToken, bio.RefreshToken} {
		if _, err := app.Refresh(ctx, refresh); mobileclient.Code(err) != "invalid_grant" {
			t.Fatalf("a refresh after the lock: %v", err)
		}
	}
	for name, hc := range backOfficeVia {
		if introspect(t, hc, tok.AccessToken) || introspect(t, hc, bio.AccessToken) {
			t.Fatalf("a token of the locked device is still active at %s", name)
		}
	}

	// The user calls the bank: a reset code and a new passcode unlock it.
	if err := app.SetPasscode(ctx, "271828", issueCodeFor(t, backOfficeVia["b"], user, "reset")); err != nil {
		t.Fatalf("reset: %v", err)
	}
	if _, err := app.SignIn(ctx, "314159"); mobileclient.Code(err) != "passcode_incorrect" {
		t.Fatalf("the old passcode after the reset: %v", err)
	}
	if tok, err = app.SignIn(ctx, "271828"); err != nil {
		t.Fatalf("the new passcode: %v", err)
	}
	signedIn := check("passcode sign-in after the reset", tok, "urn:strongroom:acr:passcode")
	if tok, err = app.Refresh(ctx, tok.RefreshToken); err != nil {
		t.Fatalf("refresh after the reset: %v", err)
	}
	check("refresh after the reset", tok, "urn:strongroom:acr:passcode")

	// Sign-out ends the session at both replicas.
	if err := app.SignOut(ctx, tok, signedIn.SessionID); err != nil {
		t.Fatalf("sign-out: %v", err)
	}
	if _, err := app.Refresh(ctx, tok.RefreshToken); mobileclient.Code(err) != "invalid_grant" {
		t.Fatalf("a refresh after sign-out: %v", err)
	}
	for name, hc := range backOfficeVia {
		if introspect(t, hc, tok.AccessToken) {
			t.Fatalf("a signed-out token is active at %s", name)
		}
	}

	// Both replicas served the app, every connection was pinned, and the
	// operator's status agrees with what the app saw.
	for i, n := range lb.connections() {
		if n < 20 {
			t.Fatalf("replica %d served only %d connections: %v", i, n, lb.connections())
		}
	}
	refreshPins()
	var now v1alpha1.PinnedCertificate
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(pc), &now); err != nil {
		t.Fatal(err)
	}
	// A key serves only after its pin was published for publishAhead, so
	// the pin set the app just fetched holds the one serving now.
	if !pins.holds(now.Status.CurrentPin) {
		t.Fatalf("the operator's current pin %s is not in the pin set the app holds", now.Status.CurrentPin)
	}
}

// heldPins is the app's pin set: the pins it accepts, from the last
// verified pinset.json, and the pins it was served.
type heldPins struct {
	mu     sync.Mutex
	set    *pinset.Set
	served map[string]int
}

func (h *heldPins) hold(s *pinset.Set) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.set = s
}

func (h *heldPins) version() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.set.Version
}

// verify is the app's pinning check, on every new connection (after the
// CA chain was verified at the system's clock).
func (h *heldPins) verify(cs tls.ConnectionState) error {
	pin := pinset.CertPin(cs.PeerCertificates[0])
	h.mu.Lock()
	defer h.mu.Unlock()
	if !slices.ContainsFunc(h.set.Pins, func(p pinset.Pin) bool { return p.SHA256 == pin }) {
		return fmt.Errorf("pin %s is not in the app's pin set (version %d)", pin, h.set.Version)
	}
	h.served[pin]++
	return nil
}

func (h *heldPins) servedCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.served)
}

func (h *heldPins) servedSnapshot() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]int{}
	for k, v := range h.served {
		out[k] = v
	}
	return out
}

func (h *heldPins) holds(pin string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.ContainsFunc(h.set.Pins, func(p pinset.Pin) bool { return p.SHA256 == pin })
}

// lifeFiles writes the clients file (the back office; the mobile app with
// the passcode, biometric and refresh grants, for its own /v1 and the
// bank's API) and a
// pepper.
func lifeFiles(t *testing.T) (clientsFile, peppersDir string) {
	t.Helper()
	dir := t.TempDir()
	clientsFile = writeClients(t, dir, []string{mobileclient.GrantPasscode, mobileclient.GrantBiometric, "refresh_token"},
		[]string{"https://auth.bank.test/v1", "https://api.bank.test"})
	peppersDir = filepath.Join(dir, "peppers")
	if err := os.Mkdir(peppersDir, 0o700); err != nil {
		t.Fatal(err)
	}
	pepper := make([]byte, 32)
	if _, err := rand.Read(pepper); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(peppersDir, "p1"), pepper, 0o600); err != nil {
		t.Fatal(err)
	}
	return clientsFile, peppersDir
}
