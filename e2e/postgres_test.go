package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"strongroom.dev/api/keyset"
)

// freshDatabase creates an empty database on the server of DATABASE_URL
// (default: the local PostgreSQL) and drops it when the test ends.
func freshDatabase(t testing.TB) string {
	t.Helper()
	admin := os.Getenv("DATABASE_URL")
	if admin == "" {
		admin = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatalf("PostgreSQL is not reachable (start it, or set DATABASE_URL): %v", err)
	}
	defer conn.Close(ctx)
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "strongroom_e2e_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), admin)
		if err == nil {
			_, _ = c.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			c.Close(context.Background())
		}
	})
	u, _ := url.Parse(admin)
	u.Path = "/" + name
	return u.String()
}

// serverCertificate writes a self-signed certificate for 127.0.0.1 and
// returns the files and the certificate's SPKI pin.
func serverCertificate(t testing.TB) (certFile, keyFile, pin string) {
	t.Helper()
	certPEM, keyPEM, pin := newCertificatePEM(t)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, pin
}

// newCertificatePEM makes a self-signed certificate for authd's names, as
// PEM, and its pin (base64 SHA-256 of the SubjectPublicKeyInfo).
func newCertificatePEM(t testing.TB) (certPEM, keyPEM []byte, pin string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "authd e2e"},
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"auth.bank.test", "authd-internal.bank.test"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		base64.StdEncoding.EncodeToString(sum[:])
}

// backOfficeSecret is the back-office client's secret in productionFilesAll.
const backOfficeSecret = "a-generated-256-bit-secret-for-the-back-office-0123456789"

// productionFilesAll writes what a deployment mounts: the three KeySet
// Secrets as the operator writes them (token-signing, payload-sealing with
// one X-Wing key, hmac-secret: each a keys.json), a clients file and a
// peppers directory.
func productionFilesAll(t testing.TB) (keysDir, clientsFile, sealingDir, hmacDir, peppersDir string) {
	t.Helper()
	dir := t.TempDir()
	keysDir, sealingDir, hmacDir, peppersDir = filepath.Join(dir, "keys"), filepath.Join(dir, "sealing"), filepath.Join(dir, "hmac"), filepath.Join(dir, "peppers")
	for _, d := range []string{keysDir, sealingDir, hmacDir, peppersDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UTC()
	writeKeySet(t, keysDir, keyset.PurposeTokenSigning, keyset.ES256, now.Add(-time.Hour), now.Add(24*time.Hour))
	writeKeySet(t, sealingDir, keyset.PurposePayloadSealing, keyset.XWing, now.Add(-time.Hour), now.Add(24*time.Hour))
	writeKeySet(t, hmacDir, keyset.PurposeHMACSecret, keyset.HS256, now.Add(-time.Hour), now.Add(48*time.Hour))
	clientsFile = writeClients(t, dir, []string{"urn:strongroom:params:oauth:grant-type:passcode", "refresh_token"},
		[]string{"https://auth.bank.test/v1"})
	pepper := make([]byte, 32)
	_, _ = rand.Read(pepper)
	if err := os.WriteFile(filepath.Join(peppersDir, "p1"), pepper, 0o600); err != nil {
		t.Fatal(err)
	}
	return keysDir, clientsFile, sealingDir, hmacDir, peppersDir
}

// writeClients writes a clients file into dir: the back office (secret
// backOfficeSecret) and the public mobile-app with grants for resources.
func writeClients(t testing.TB, dir string, grants, resources []string) string {
	t.Helper()
	quoted := func(vs []string) string {
		b, _ := json.Marshal(vs) // a JSON array is a YAML flow sequence
		return string(b)
	}
	sum := sha256.Sum256([]byte(backOfficeSecret))
	clients := `clients:
  - client_id: back-office
    token_endpoint_auth_method: client_secret_basic
    client_secret_sha256: ` + base64.RawURLEncoding.EncodeToString(sum[:]) + `
    grant_types: [client_credentials]
    scopes: ["strongroom:admin"]
    resources: ["https://auth.bank.test/admin"]
  - client_id: mobile-app
    token_endpoint_auth_method: none
    grant_types: ` + quoted(grants) + `
    resources: ` + quoted(resources) + `
`
	path := filepath.Join(dir, "clients.yaml")
	if err := os.WriteFile(path, []byte(clients), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeKeySet writes a KeySet's keys.json with one key of algorithm, as
// the operator would (protected lifetimes are the operator's defaults).
func writeKeySet(t testing.TB, dir, purpose, algorithm string, notBefore, notAfter time.Time) {
	t.Helper()
	priv, kid, err := keyset.Generate(algorithm)
	if err != nil {
		t.Fatal(err)
	}
	protected := map[string]time.Duration{keyset.PurposeTokenSigning: time.Hour, keyset.PurposePayloadSealing: 10 * time.Minute,
		keyset.PurposeHMACSecret: 24 * time.Hour}[purpose]
	b, err := (&keyset.File{Purpose: purpose, PublishAhead: keyset.Duration(24 * time.Hour), ProtectedLifetime: keyset.Duration(protected),
		Keys: []keyset.Key{{KID: kid, Algorithm: algorithm, NotBefore: notBefore, NotAfter: notAfter, PrivateKey: priv}}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, keyset.FileName), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// process is a running authd serve.
type process struct {
	cmd           *exec.Cmd
	logs          *logLines
	exited        chan error
	public, admin string
}

// startAuthd starts authd serve and waits until it has started.
func startAuthd(t testing.TB, env []string, args ...string) *process {
	t.Helper()
	return startAuthdBinary(t, authdBin, env, args...)
}

// startAuthdBinary starts bin (an authd build) like startAuthd.
func startAuthdBinary(t testing.TB, bin string, env []string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	stdout, stdoutW := io.Pipe()
	cmd.Stdout, cmd.Stderr = stdoutW, &syncBuffer{}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, exited: make(chan error, 1), logs: readLogs(t, stdout)}
	go func() {
		err := cmd.Wait()
		stdoutW.Close()
		p.exited <- err
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})
	addr := func(listener string) string {
		m := p.logs.wait(t, listener+" listening", func(m map[string]any) bool {
			return m["msg"] == "listening" && m["listener"] == listener
		})
		return m["addr"].(string)
	}
	p.public, p.admin = addr("public"), addr("admin")
	p.logs.wait(t, "started", func(m map[string]any) bool { return m["msg"] == "authd started" })
	return p
}

// productionServe writes every file a deployment mounts and returns the
// arguments of `authd serve` in production mode on 127.0.0.1 (issuer
// https://auth.bank.test) and the certificate's pin.
func productionServe(t testing.TB) (args []string, pin string) {
	t.Helper()
	certFile, keyFile, pin := serverCertificate(t)
	keysDir, clientsFile, sealingDir, hmacDir, peppersDir := productionFilesAll(t)
	return []string{"serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
		"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--issuer", "https://auth.bank.test",
		"--admin-url", "https://authd-internal.bank.test", "--clients-file", clientsFile, "--signing-keys-dir", keysDir,
		"--sealing-keys-dir", sealingDir, "--hmac-keys-dir", hmacDir, "--peppers-dir", peppersDir}, pin
}

// authd runs one short authd command to completion.
func authd(t testing.TB, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(authdBin, args...)
	cmd.Env = env
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errOut.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, out.String(), errOut.String()
}

// TestProductionModeOnPostgreSQL runs the binary the way a deployment
// does: migrate as a separate step, serve with TLS files, and the
// projection tools against the live database.
func TestProductionModeOnPostgreSQL(t *testing.T) {
	dsn := freshDatabase(t)
	env := cleanEnv("DATABASE_URL=" + dsn)
	serveArgs, pin := productionServe(t)

	// Serving an unmigrated database is refused with the command to run.
	code, out, _ := authd(t, env, serveArgs...)
	if code != 1 || !strings.Contains(out, "authd migrate") {
		t.Fatalf("serve before migrate: exit %d\n%s", code, out)
	}
	if code, out, errOut := authd(t, env, "migrate"); code != 0 || !strings.Contains(out, `"msg":"migrated"`) {
		t.Fatalf("migrate: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := authd(t, env, "migrate"); code != 0 || !strings.Contains(out, `"count":0`) {
		t.Fatalf("second migrate: exit %d\n%s%s", code, out, errOut)
	}

	proc := startAuthd(t, env, serveArgs...)
	logs, exited, cmd := proc.logs, proc.exited, proc.cmd
	adminLine := map[string]any{"addr": proc.admin}
	client := pinnedClient(pin)
	defer client.CloseIdleConnections()

	// Ready only with the database and the outbox subscribers healthy.
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := client.Get("https://" + adminLine["addr"].(string) + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		var r struct {
			Status string
			Checks map[string]string
		}
		err = json.NewDecoder(resp.Body).Decode(&r)
		resp.Body.Close()
		if err == nil && resp.StatusCode == 200 {
			if r.Checks["database"] != "ok" || r.Checks["outbox"] != "ok" {
				t.Fatalf("ready without both checks: %+v", r)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never ready: %d %+v", resp.StatusCode, r)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The tools work against the live database while authd serves.
	code, out, errOut := authd(t, env, "projections", "status")
	var st struct {
		Projections []struct {
			Name       string `json:"name"`
			Generation int    `json:"generation"`
		} `json:"projections"`
	}
	generation := func(name string) int {
		for _, p := range st.Projections {
			if p.Name == name {
				return p.Generation
			}
		}
		return 0
	}
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || generation("devices") != 1 || generation("sessions") != 1 {
		t.Fatalf("projections status: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := authd(t, env, "projections", "rebuild", "devices"); code != 0 || !strings.Contains(out, `"msg":"rebuilt"`) {
		t.Fatalf("rebuild: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, _ := authd(t, env, "projections", "rebuild", "no_such_model"); code != 1 || !strings.Contains(out, "unknown projection") {
		t.Fatalf("rebuild of an unknown read model: exit %d\n%s", code, out)
	}
	code, out, _ = authd(t, env, "projections", "status")
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || generation("devices") != 2 {
		t.Fatalf("status after rebuild: exit %d\n%s", code, out)
	}
	if strings.Contains(logs.text(), dsn) {
		t.Error("the database URL is in authd's logs")
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("authd exited with %v after SIGTERM\n%s", err, logs.text())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("authd did not stop within 30s of SIGTERM")
	}
}
