package e2e

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"strongroom.dev/api/pinset"
	"strongroom.dev/api/v1alpha1"
)

// TestPinnedClientsAcrossRotations is the whole pinning chain on the real
// clock: the operator binary against a real kube-apiserver rotates a
// PinnedCertificate (CA-issued, 45 s certificates, pins published 15 s
// ahead); a kubelet-style sync mounts its Secret and ConfigMap into authd,
// which hot-reloads them; apps fetch the signed pin set from authd now and
// then. Through two rotations, every pin set an app fetched within
// publishAhead lets it connect, with Go's TLS checking the SPKI pin and
// with `curl --pinnedpubkey`; a wrong pin is refused by both. authd is
// never restarted.
func TestPinnedClientsAcrossRotations(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is needed (Debian's curl package):", err)
	}
	kc := startKube(t)
	ctx, k8s, root, env := t.Context(), kc.client, kc.root, kc.env
	caPEM, manifest := pinningSecrets(t, k8s)
	publishAhead := 15 * time.Second
	pc := &v1alpha1.PinnedCertificate{
		ObjectMeta: metav1.ObjectMeta{Namespace: "bank", Name: "authd"},
		Spec: v1alpha1.PinnedCertificateSpec{
			SecretName: "authd-tls", DNSNames: []string{"auth.bank.test"},
			Issuer:       v1alpha1.IssuerSpec{CA: &v1alpha1.CAIssuer{SecretName: "bank-ca"}},
			Validity:     metav1.Duration{Duration: 45 * time.Second},
			RenewBefore:  metav1.Duration{Duration: 20 * time.Second},
			PublishAhead: metav1.Duration{Duration: publishAhead},
			BackupKeys:   2,
			PinSet:       v1alpha1.PinSetSpec{ConfigMapName: "authd-pinset", ManifestKeys: []v1alpha1.ManifestKeyRef{{SecretName: "manifest-a"}}},
		},
	}
	if err := k8s.Create(ctx, pc); err != nil {
		t.Fatal(err)
	}
	startOperator(t, root, env)

	// The kubelet: the Secret and the ConfigMap, mounted as files.
	tlsFiles := func() map[string][]byte {
		var s corev1.Secret
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: "bank", Name: "authd-tls"}, &s); err != nil {
			return nil
		}
		return map[string][]byte{"tls.crt": s.Data["tls.crt"], "tls.key": s.Data["tls.key"]}
	}
	pinFiles := func() map[string][]byte {
		var c corev1.ConfigMap
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: "bank", Name: "authd-pinset"}, &c); err != nil {
			return nil
		}
		return map[string][]byte{"pinset.json": []byte(c.Data["pinset.json"]), "android.xml": []byte(c.Data["android.xml"])}
	}
	var first, firstPins map[string][]byte
	waitUntil(t, 60*time.Second, "the operator's first certificate and pin set", func() bool {
		first, firstPins = tlsFiles(), pinFiles()
		return first != nil && firstPins != nil
	})
	tlsMount, pinMount := newKubeletMount(t, first), newKubeletMount(t, firstPins)
	syncDone := make(chan struct{})
	syncCtx, stopSync := context.WithCancel(ctx)
	go func() {
		defer close(syncDone)
		for syncCtx.Err() == nil {
			if f := tlsFiles(); f != nil && !sameFiles(f, tlsMount.last) {
				tlsMount.update(f)
			}
			if f := pinFiles(); f != nil && !sameFiles(f, pinMount.last) {
				pinMount.update(f)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { stopSync(); <-syncDone })

	p := startMountedAuthd(t, tlsMount, pinMount)
	_, port, _ := net.SplitHostPort(p.public)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)

	// connect opens a new TLS connection pinning pins, with Go and with
	// curl, and says what failed.
	connect := func(pins []string) error {
		hc := caPinningClient(p.public, roots, pins)
		resp, err := hc.Get("https://auth.bank.test/.well-known/openid-configuration")
		if err != nil {
			return fmt.Errorf("go: %w", err)
		}
		resp.Body.Close()
		var pinned []string
		for _, pin := range pins {
			pinned = append(pinned, "sha256//"+pin)
		}
		out, err := exec.CommandContext(ctx, curl, "--silent", "--show-error", "--fail", "--output", "/dev/null",
			"--cacert", caFile, "--resolve", "auth.bank.test:"+port+":127.0.0.1",
			"--pinnedpubkey", strings.Join(pinned, ";"),
			"https://auth.bank.test:"+port+"/.well-known/pinset.json").CombinedOutput()
		if err != nil {
			return fmt.Errorf("curl: %v: %s", err, out)
		}
		return nil
	}
	// Pinning is really checked: a wrong pin fails with both.
	if err := connect([]string{"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}); err == nil ||
		!strings.Contains(err.Error(), "go:") {
		t.Fatalf("a wrong pin connected with Go: %v", err)
	}
	wrongCurl := exec.CommandContext(ctx, curl, "--silent", "--fail", "--output", "/dev/null", "--cacert", caFile,
		"--resolve", "auth.bank.test:"+port+":127.0.0.1", "--pinnedpubkey", "sha256//47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
		"https://auth.bank.test:"+port+"/")
	if err := wrongCurl.Run(); err == nil {
		t.Fatal("curl connected with a wrong pin")
	}

	// The apps: fetch the pin set now and then (TLS with the CA only: the
	// pin set is signed), and connect with every set fetched within
	// publishAhead. The kubelet's and authd's reloads take up to about
	// a second each, more on a loaded machine; lag keeps that out of the
	// check (in production it is minutes against publishAhead's days).
	const lag = 5 * time.Second
	type held struct {
		set     *pinset.Set
		fetched time.Time
	}
	var sets []held
	fetcher := caPinningClient(p.public, roots, nil)
	served := map[string]bool{}
	var order []string
	deadline := time.Now().Add(3 * time.Minute)
	for len(order) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d certificates served in 3 minutes (%v)", len(order), order)
		}
		now := time.Now()
		resp, err := fetcher.Get("https://auth.bank.test/.well-known/pinset.json")
		if err != nil {
			t.Fatalf("fetch the pin set: %v", err)
		}
		var version int64
		if n := len(sets); n > 0 {
			version = sets[n-1].set.Version
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		s, err := pinset.Verify(string(body), manifest, version, now)
		if err != nil {
			t.Fatalf("the served pin set does not verify as an app holding version %d: %v", version, err)
		}
		if s.Version > version {
			sets = append(sets, held{set: s, fetched: now})
		}
		for _, h := range sets {
			if now.Sub(h.fetched) > publishAhead-lag {
				continue
			}
			var pins []string
			for _, pin := range h.set.Pins {
				pins = append(pins, pin.SHA256)
			}
			if err := connect(pins); err != nil {
				t.Fatalf("an app holding pin set version %d (fetched %s ago) cannot connect: %v",
					h.set.Version, now.Sub(h.fetched).Round(time.Millisecond), err)
			}
		}
		if pin := servedPinCA(t, p.public, roots); !served[pin] {
			served[pin] = true
			order = append(order, pin)
			t.Logf("%s: serving %s (pin set version %d)", now.Format(time.TimeOnly), pin, s.Version)
		}
		select {
		case err := <-p.exited:
			t.Fatalf("authd exited: %v", err)
		default:
		}
		time.Sleep(300 * time.Millisecond)
	}
	if len(sets) < 3 {
		t.Fatalf("only %d pin set versions seen", len(sets))
	}
}

// pinningSecrets creates the CA Secret and the manifest-key Secret in
// namespace bank; it returns the CA certificate and the manifest's public
// key by kid, as an app ships it.
func pinningSecrets(t *testing.T, k8s client.Client) ([]byte, map[string]*ecdsa.PublicKey) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bank test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	manifestKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8 := func(k *ecdsa.PrivateKey) []byte {
		b, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: b})
	}
	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "bank", Name: "bank-ca"}, Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{"tls.crt": caPEM, "tls.key": pkcs8(caKey)}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "bank", Name: "manifest-a"}, Data: map[string][]byte{"key.pem": pkcs8(manifestKey)}},
	} {
		if err := k8s.Create(t.Context(), s); err != nil {
			t.Fatal(err)
		}
	}
	// The kid is the key's RFC 7638 thumbprint (operator, manifest.go).
	sum, err := (&jose.JSONWebKey{Key: &manifestKey.PublicKey}).Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return caPEM, map[string]*ecdsa.PublicKey{base64.RawURLEncoding.EncodeToString(sum): &manifestKey.PublicKey}
}

// startOperator builds and runs the operator binary against env's API
// server, watching namespace bank, with leader election.
func startOperator(t *testing.T, root string, env *envtest.Environment) {
	t.Helper()
	runOperator(t, buildBinary(t, root, "strongroom.dev/operator/cmd/operator"), env)
}

// buildBinary builds pkg from the repository (so go.work joins the
// modules) into the test's temporary directory, with extra go build
// arguments (tags).
func buildBinary(t *testing.T, root, pkg string, extra ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
	build := exec.Command("go", append(append([]string{"build"}, extra...), "-o", bin, pkg)...)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// runOperator runs the operator binary bin against env's API server,
// watching namespace bank, with leader election and the test's
// environment plus environ.
func runOperator(t *testing.T, bin string, env *envtest.Environment, environ ...string) {
	t.Helper()
	path := mastersKubeconfig(t, env, "operator")
	logs := &syncBuffer{}
	cmd := exec.Command(bin, "--kubeconfig", path, "--namespace", "bank",
		"--metrics-bind-address", "0", "--health-probe-bind-address", "0")
	cmd.Env = append(os.Environ(), environ...)
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("operator logs:\n%s", logs.String())
		}
	})
}

// mastersKubeconfig writes a kubeconfig of a new system:masters user of
// env's API server and returns its path.
func mastersKubeconfig(t *testing.T, env *envtest.Environment, name string) string {
	t.Helper()
	user, err := env.ControlPlane.AddUser(envtest.User{Name: name, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// caPinningClient trusts roots and, when pins is not nil, also requires
// the server key's pin to be one of pins, on a new connection per request.
func caPinningClient(addr string, roots *x509.CertPool, pins []string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots,
			VerifyConnection: func(cs tls.ConnectionState) error {
				if pins == nil {
					return nil
				}
				if !slices.Contains(pins, pinset.CertPin(cs.PeerCertificates[0])) {
					return fmt.Errorf("pin %s is not in the pin set", pinset.CertPin(cs.PeerCertificates[0]))
				}
				return nil
			}},
	}}
}

func servedPinCA(t *testing.T, addr string, roots *x509.CertPool) string {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "auth.bank.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return pinset.CertPin(conn.ConnectionState().PeerCertificates[0])
}

func sameFiles(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if string(b[k]) != string(v) {
			return false
		}
	}
	return true
}

func waitUntil(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
