package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"strongroom.dev/services/authd/internal/devmode"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestCommandLine(t *testing.T) {
	stateDir := t.TempDir()
	tests := []struct {
		name       string
		args       []string
		env        []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{name: "no command", wantCode: 2, wantStderr: "Usage:"},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, wantStderr: `unknown command "frobnicate"`},
		{name: "help", args: []string{"help"}, wantCode: 0, wantStdout: "authd projections rebuild NAME"},
		{name: "version", args: []string{"version"}, wantCode: 0, wantStdout: "authd dev go"},
		{name: "serve help lists flags", args: []string{"serve", "-h"}, wantCode: 0, wantStdout: "--admin-listen"},
		{name: "serve on all interfaces in dev mode", args: []string{"serve", "--dev", "--listen", "0.0.0.0:0"}, wantCode: 2, wantStderr: "dev mode refuses non-loopback addresses"},
		{name: "serve without production settings", args: []string{"serve"}, wantCode: 2, wantStderr: "--tls-cert-file"},
		{name: "serve with missing certificate files", args: []string{"serve", "--tls-cert-file", "/nonexistent.crt", "--tls-key-file", "/nonexistent.key", "--issuer", "https://a.example", "--admin-url", "https://internal.a.example", "--clients-file", "/nonexistent.yaml", "--signing-keys-dir", "/nonexistent", "--sealing-keys-dir", "/nonexistent", "--hmac-keys-dir", "/nonexistent", "--peppers-dir", "/nonexistent", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}, env: []string{"DATABASE_URL", "postgres://127.0.0.1:1/x"}, wantCode: 1, wantStdout: "load TLS certificate /nonexistent.crt"},
		{name: "serve with unreachable database", args: []string{"serve", "--dev", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--database-url", "postgres://authd:hunter2@127.0.0.1:1/x?connect_timeout=2"}, env: []string{"STRONGROOM_DEV_STATE_DIR", stateDir}, wantCode: 1, wantStdout: "open application"},
		{name: "serve with a memory limit in the wrong unit", args: []string{"serve", "--dev", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"}, env: []string{"STRONGROOM_DEV_STATE_DIR", stateDir, "STRONGROOM_MEMORY_LIMIT", "512Mi"}, wantCode: 2, wantStderr: "STRONGROOM_MEMORY_LIMIT=\"512Mi\": want the container's memory limit in bytes"},
		{name: "migrate without database", args: []string{"migrate"}, wantCode: 2, wantStderr: "--database-url (or DATABASE_URL) is required"},
		{name: "migrate with extra argument", args: []string{"migrate", "now"}, env: []string{"DATABASE_URL", "postgres://127.0.0.1:1/x"}, wantCode: 2, wantStderr: `unexpected argument "now"`},
		{name: "migrate with unreachable database", args: []string{"migrate", "--database-url", "postgres://authd:hunter2@127.0.0.1:1/x?connect_timeout=2"}, wantCode: 1, wantStdout: `"msg":"migrate failed"`},
		{name: "projections without subcommand", args: []string{"projections"}, wantCode: 2, wantStderr: "want rebuild NAME or status"},
		{name: "projections unknown subcommand", args: []string{"projections", "drop"}, wantCode: 2, wantStderr: `unknown subcommand "drop"`},
		{name: "rebuild without name", args: []string{"projections", "rebuild"}, env: []string{"DATABASE_URL", "postgres://127.0.0.1:1/x"}, wantCode: 2, wantStderr: "exactly one projection NAME"},
		{name: "rebuild with hostile name", args: []string{"projections", "rebuild", "devices\n{\"msg\":\"x\"}"}, env: []string{"DATABASE_URL", "postgres://127.0.0.1:1/x"}, wantCode: 2, wantStderr: "exactly one projection NAME"},
		{name: "status with extra argument", args: []string{"projections", "status", "x"}, env: []string{"DATABASE_URL", "postgres://127.0.0.1:1/x"}, wantCode: 2, wantStderr: `unexpected argument "x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), tt.args, env(tt.env...), &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.wantCode, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout %q does not contain %q", stdout.String(), tt.wantStdout)
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tt.wantStderr)
			}
			if out := stdout.String() + stderr.String(); strings.Contains(out, "hunter2") {
				t.Errorf("output leaks the database password: %s", out)
			}
		})
	}
}

// lines collects JSON log lines written to a pipe, as the test reads them.
type lines struct {
	mu  sync.Mutex
	all []map[string]any
	raw bytes.Buffer
	new chan struct{}
}

func collect(t *testing.T, r io.Reader) *lines {
	l := &lines{new: make(chan struct{}, 1)}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Errorf("log line %q is not JSON: %v", sc.Text(), err)
				continue
			}
			l.mu.Lock()
			l.all = append(l.all, m)
			l.raw.Write(sc.Bytes())
			l.raw.WriteByte('\n')
			l.mu.Unlock()
			select {
			case l.new <- struct{}{}:
			default:
			}
		}
	}()
	return l
}

// find waits for a line that match accepts.
func (l *lines) find(t *testing.T, match func(map[string]any) bool) map[string]any {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		l.mu.Lock()
		for _, m := range l.all {
			if match(m) {
				l.mu.Unlock()
				return m
			}
		}
		l.mu.Unlock()
		select {
		case <-l.new:
		case <-deadline:
			t.Fatalf("no matching log line in:\n%s", l.text())
		}
	}
}

func (l *lines) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.raw.String()
}

func listening(name string) func(map[string]any) bool {
	return func(m map[string]any) bool { return m["msg"] == "listening" && m["listener"] == name }
}

func TestServeDevMode(t *testing.T) {
	tests := []struct {
		name       string
		env        []string
		wantSource string
		wantFile   bool
	}{
		{name: "generated secret", wantSource: "generated", wantFile: true},
		{name: "secret from the environment", env: []string{"STRONGROOM_DEV_ADMIN_SECRET", "env-secret-0123456789abcdef"}, wantSource: "STRONGROOM_DEV_ADMIN_SECRET"},
		{name: "memory limit from the container", env: []string{"STRONGROOM_MEMORY_LIMIT", "1073741824"}, wantSource: "generated", wantFile: true},
	}
	// serve sets the process's memory limit: this test's.
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stateDir := filepath.Join(t.TempDir(), "state")
			ctx, stop := context.WithCancel(context.Background())
			defer stop()
			pr, pw := io.Pipe()
			var stderr bytes.Buffer
			exit := make(chan int, 1)
			go func() {
				exit <- run(ctx, []string{"serve", "--dev", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--dev-state-dir", stateDir, "--log-level", "debug"},
					env(tt.env...), pw, &stderr)
				pw.Close()
			}()
			logs := collect(t, pr)

			public := logs.find(t, listening("public"))["addr"].(string)
			admin := logs.find(t, listening("admin"))["addr"].(string)
			dev := logs.find(t, func(m map[string]any) bool { return m["msg"] == "dev mode" })
			pin, _ := dev["pin"].(string)
			if dev["secret_source"] != tt.wantSource || dev["client_id"] != "back-office" {
				t.Errorf("dev line %v", dev)
			}

			client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
				InsecureSkipVerify: true, // the pin check below is the verification
				VerifyConnection: func(cs tls.ConnectionState) error {
					if devmode.Pin(cs.PeerCertificates[0]) != pin {
						return errors.New("certificate does not match the logged pin")
					}
					return nil
				},
			}}}
			defer client.CloseIdleConnections()
			// /readyz answers 200 from "authd started" on; "dev mode"
			// comes earlier, while the application still opens.
			started := logs.find(t, func(m map[string]any) bool { return m["msg"] == "authd started" })
			if slices.Contains(tt.env, "STRONGROOM_MEMORY_LIMIT") {
				set := logs.find(t, func(m map[string]any) bool { return m["msg"] == "Go memory limit set from the container's" })
				if set["limit_bytes"] != float64(966367641) || debug.SetMemoryLimit(-1) != 966367641 {
					t.Errorf("memory limit: logged %v, runtime %d; want 90%% of 1 GiB", set["limit_bytes"], debug.SetMemoryLimit(-1))
				}
			}
			for _, u := range []string{"https://" + admin + "/healthz", "https://" + admin + "/readyz"} {
				resp, err := client.Get(u)
				if err != nil {
					t.Fatalf("GET %s: %v", u, err)
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("GET %s: %d", u, resp.StatusCode)
				}
			}
			if started["issuer"] != "https://"+public {
				t.Errorf("issuer %v, want https://%s", started["issuer"], public)
			}

			var secret string
			path, _ := dev["path"].(string)
			if tt.wantFile {
				if path != filepath.Join(stateDir, devmode.AdminSecretFile) {
					t.Errorf("secret path %q", path)
				}
				fi, err := os.Stat(path)
				if err != nil || fi.Mode().Perm() != 0o600 {
					t.Fatalf("secret file %v %v, want mode 0600", fi, err)
				}
				b, _ := os.ReadFile(path)
				secret = string(b)
			} else {
				if path != "" {
					t.Errorf("secret path %q, want none", path)
				}
				secret = "env-secret-0123456789abcdef"
			}

			stop()
			select {
			case code := <-exit:
				if code != 0 {
					t.Errorf("exit %d, want 0\n%s\n%s", code, logs.text(), stderr.String())
				}
			case <-time.After(25 * time.Second):
				t.Fatal("serve did not stop")
			}
			logs.find(t, func(m map[string]any) bool { return m["msg"] == "stopped" })
			if len(secret) < 16 || strings.Contains(logs.text()+stderr.String(), secret) {
				t.Errorf("the secret %q is in the output (or empty)", secret)
			}
		})
	}
}
