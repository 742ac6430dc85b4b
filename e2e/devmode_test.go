package e2e

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"strongroom.dev/api/pinset"
)

// authdBin is the binary built once by TestMain from this checkout.
var authdBin string

func TestMain(m *testing.M) {
	code, err := buildAndRun(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func buildAndRun(m *testing.M) (int, error) {
	root, err := repoRoot()
	if err != nil {
		return 0, err
	}
	dir, err := os.MkdirTemp("", "strongroom-e2e-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	authdBin = filepath.Join(dir, "authd")
	// From the repository root, so go.work joins the modules.
	build := exec.Command("go", "build", "-o", authdBin, "strongroom.dev/services/authd/cmd/authd")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("build authd: %v\n%s", err, out)
	}
	return m.Run(), nil
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.work above the working directory")
		}
		dir = parent
	}
}

// cleanEnv is the test's environment without authd settings, so a
// developer's DATABASE_URL or STRONGROOM_* cannot change what is tested.
func cleanEnv(extra ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "STRONGROOM_") || strings.HasPrefix(kv, "DATABASE_URL=") {
			continue
		}
		out = append(out, kv)
	}
	return append(out, extra...)
}

// syncBuffer is a Buffer the process's output copier and the test can
// use at the same time.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// logLines reads authd's JSON log lines as they come.
type logLines struct {
	mu    sync.Mutex
	lines []map[string]any
	raw   bytes.Buffer
	added chan struct{}
}

func readLogs(t testing.TB, r io.Reader) *logLines {
	l := &logLines{added: make(chan struct{}, 1)}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			l.mu.Lock()
			l.raw.Write(sc.Bytes())
			l.raw.WriteByte('\n')
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				m = map[string]any{"not_json": sc.Text()}
			}
			l.lines = append(l.lines, m)
			l.mu.Unlock()
			select {
			case l.added <- struct{}{}:
			default:
			}
		}
	}()
	return l
}

func (l *logLines) wait(t testing.TB, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		l.mu.Lock()
		for _, m := range l.lines {
			if match(m) {
				l.mu.Unlock()
				return m
			}
		}
		l.mu.Unlock()
		select {
		case <-l.added:
		case <-deadline:
			t.Fatalf("no %s log line; output so far:\n%s", what, l.text())
		}
	}
}

func (l *logLines) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.raw.String()
}

func (l *logLines) notJSON() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, m := range l.lines {
		if s, ok := m["not_json"].(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// pinnedClient trusts exactly the certificate whose SPKI pin is pin: it
// does not skip verification but replaces the CA check with the pin, then
// checks the certificate's names and validity against itself.
func pinnedClient(pin string) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			ForceAttemptHTTP2: true,
			TLSClientConfig: &tls.Config{
				MinVersion:         tls.VersionTLS12,
				InsecureSkipVerify: true, // replaced by VerifyConnection
				VerifyConnection: func(cs tls.ConnectionState) error {
					if len(cs.PeerCertificates) == 0 {
						return errors.New("no peer certificate")
					}
					leaf := cs.PeerCertificates[0]
					sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
					if got := base64.StdEncoding.EncodeToString(sum[:]); got != pin {
						return fmt.Errorf("peer pin %s, want %s", got, pin)
					}
					roots := x509.NewCertPool()
					roots.AddCert(leaf)
					_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "127.0.0.1"})
					return err
				},
			},
		},
	}
}

var traceparentRE = regexp.MustCompile(`^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$`)

func TestDevMode(t *testing.T) {
	stateDir := filepath.Join(t.TempDir(), "state")
	cmd := exec.Command(authdBin, "serve", "--dev", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")
	cmd.Env = cleanEnv("STRONGROOM_DEV_STATE_DIR=" + stateDir)
	// An io.Pipe rather than StdoutPipe: Wait then waits until every line
	// has been copied, so none is lost at exit.
	stdout, stdoutW := io.Pipe()
	stderr := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = stdoutW, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	logs := readLogs(t, stdout)
	go func() {
		err := cmd.Wait()
		stdoutW.Close()
		exited <- err
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})

	addrOf := func(listener string) string {
		m := logs.wait(t, listener+" listening", func(m map[string]any) bool {
			return m["msg"] == "listening" && m["listener"] == listener
		})
		addr, _ := m["addr"].(string)
		if !strings.HasPrefix(addr, "127.0.0.1:") || strings.HasSuffix(addr, ":0") {
			t.Fatalf("%s listens on %q, want the bound 127.0.0.1 port", listener, addr)
		}
		return addr
	}
	public, admin := addrOf("public"), addrOf("admin")
	dev := logs.wait(t, "dev mode", func(m map[string]any) bool { _, ok := m["pin"]; return ok })
	pin, _ := dev["pin"].(string)
	secretPath, _ := dev["path"].(string)
	logs.wait(t, "started", func(m map[string]any) bool { return m["msg"] == "authd started" })
	client := pinnedClient(pin)
	defer client.CloseIdleConnections()

	get := func(t *testing.T, url string, header http.Header) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header = header
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}

	t.Run("pin set", func(t *testing.T) {
		// Dev mode plays the operator: a pin set of its own certificate,
		// signed by a manifest key it prints, which an app verifies.
		var jwk jose.JSONWebKey
		raw, _ := dev["pinset_manifest_jwk"].(string)
		if err := jwk.UnmarshalJSON([]byte(raw)); err != nil {
			t.Fatalf("manifest key in the log: %q: %v", raw, err)
		}
		key, ok := jwk.Key.(*ecdsa.PublicKey)
		if !ok || !jwk.IsPublic() {
			t.Fatalf("manifest key is %T", jwk.Key)
		}
		resp, body := get(t, "https://"+public+"/.well-known/pinset.json", nil)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/jose" {
			t.Fatalf("pin set: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		s, err := pinset.Verify(string(body), map[string]*ecdsa.PublicKey{jwk.KeyID: key}, 0, time.Now())
		if err != nil || len(s.Pins) != 1 || s.Pins[0].SHA256 != pin || s.Pins[0].Role != "current" {
			t.Fatalf("pin set %+v, %v", s, err)
		}
		if resp, body := get(t, "https://"+public+"/.well-known/pinset/android.xml", nil); resp.StatusCode != 200 || !strings.Contains(string(body), pin) {
			t.Fatalf("android pin set: %d %s", resp.StatusCode, body)
		}
	})

	t.Run("healthz", func(t *testing.T) {
		resp, body := get(t, "https://"+admin+"/healthz", nil)
		if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != `{"status":"ok"}` {
			t.Errorf("got %d %s", resp.StatusCode, body)
		}
	})

	t.Run("readyz", func(t *testing.T) {
		deadline := time.Now().Add(15 * time.Second)
		for {
			resp, body := get(t, "https://"+admin+"/readyz", nil)
			if resp.StatusCode == 200 {
				var r struct{ Status string }
				if err := json.Unmarshal(body, &r); err != nil || r.Status != "ok" {
					t.Errorf("body %s (%v)", body, err)
				}
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("readyz still %d: %s", resp.StatusCode, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	t.Run("traceparent is honoured", func(t *testing.T) {
		const trace = "4bf92f3577b34da6a3ce929d0e0e4736"
		for _, url := range []string{"https://" + admin + "/healthz", "https://" + public + "/nothing-here"} {
			resp, _ := get(t, url, http.Header{"Traceparent": {"00-" + trace + "-00f067aa0ba902b7-01"}})
			m := traceparentRE.FindStringSubmatch(resp.Header.Get("Traceparent"))
			if m == nil || m[1] != trace {
				t.Errorf("%s: response traceparent %q, want trace id %s", url, resp.Header.Get("Traceparent"), trace)
			}
			if m != nil && m[2] == "00f067aa0ba902b7" {
				t.Errorf("%s: response names the client's span, not the server's", url)
			}
		}
	})

	t.Run("unknown path is a problem", func(t *testing.T) {
		resp, body := get(t, "https://"+public+"/no/such/path", nil)
		var p struct {
			Status int
			Code   string
		}
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatalf("body %s: %v", body, err)
		}
		if resp.StatusCode != 404 || resp.Header.Get("Content-Type") != "application/problem+json" || p.Status != 404 || p.Code != "not_found" {
			t.Errorf("got %d %q %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	})

	t.Run("secret file is private and never logged", func(t *testing.T) {
		if secretPath != filepath.Join(stateDir, "back-office-client-secret") {
			t.Fatalf("secret path %q", secretPath)
		}
		fi, err := os.Stat(secretPath)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("secret file %v %v, want mode 0600", fi, err)
		}
		secret, err := os.ReadFile(secretPath)
		if err != nil || len(secret) < 32 {
			t.Fatalf("secret %q %v", secret, err)
		}
		if strings.Contains(logs.text()+stderr.String(), string(secret)) {
			t.Error("the secret is in authd's output")
		}
	})

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("authd exited with %v after SIGTERM, want 0\nstdout:\n%s\nstderr:\n%s", err, logs.text(), stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("authd did not exit within 30s of SIGTERM")
	}
	if bad := logs.notJSON(); len(bad) > 0 {
		t.Errorf("stdout lines that are not JSON: %q", bad)
	}
}

func TestDevModeRefusesPublicAddresses(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"public listener on all interfaces", []string{"--listen", "0.0.0.0:0"}},
		{"internal listener on all IPv6 interfaces", []string{"--listen", "127.0.0.1:0", "--admin-listen", "[::]:0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(authdBin, append([]string{"serve", "--dev"}, tt.args...)...)
			cmd.Env = cleanEnv("STRONGROOM_DEV_STATE_DIR=" + t.TempDir())
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			done := make(chan error, 1)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				var exit *exec.ExitError
				if !errors.As(err, &exit) || exit.ExitCode() != 2 {
					t.Errorf("exit %v, want status 2", err)
				}
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatal("authd started instead of refusing")
			}
			if !strings.Contains(stderr.String(), "dev mode refuses non-loopback addresses") {
				t.Errorf("stderr %q does not explain the refusal", stderr.String())
			}
			if strings.Contains(stdout.String(), "listening") {
				t.Errorf("authd listened before refusing: %s", stdout.String())
			}
		})
	}
}
