package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite README.md from the settings table")

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

// prod is a complete production environment; cases add to or override it.
var prod = []string{
	"DATABASE_URL", "postgres://authd:hunter2@db:5432/authd?sslmode=verify-full",
	"STRONGROOM_TLS_CERT_FILE", "/tls/tls.crt",
	"STRONGROOM_TLS_KEY_FILE", "/tls/tls.key",
	"STRONGROOM_ISSUER", "https://auth.bank.example",
	"STRONGROOM_ADMIN_URL", "https://authd-internal.strongroom.svc:8444",
	"STRONGROOM_CLIENTS_FILE", "/config/clients.yaml",
	"STRONGROOM_SIGNING_KEYS_DIR", "/keys/token-signing",
	"STRONGROOM_SEALING_KEYS_DIR", "/keys/sealing",
	"STRONGROOM_HMAC_KEYS_DIR", "/keys/hmac",
	"STRONGROOM_PEPPERS_DIR", "/keys/peppers",
	"HOME", "/home/authd",
}

func with(base []string, kv ...string) []string {
	return append(append([]string{}, base...), kv...)
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  []string
		want func(t *testing.T, c Config)
	}{
		{
			name: "dev defaults",
			args: []string{"--dev"},
			env:  []string{"HOME", "/home/dev"},
			want: func(t *testing.T, c Config) {
				want := Config{
					Listen: "127.0.0.1:8443", AdminListen: "127.0.0.1:8444", Dev: true,
					Issuer: "https://127.0.0.1:8443", AdminURL: "https://127.0.0.1:8444", LogLevel: slog.LevelInfo,
					ShutdownTimeout: 20 * time.Second, AccessTokenLifetime: 5 * time.Minute, RefreshTokenLifetime: 30 * time.Minute,
					PasscodeBackoff: 30 * time.Second, ActivationCodeLifetime: 24 * time.Hour, ChallengeLifetime: time.Minute, ChallengesPerMinute: 30, StepUpMaxAge: 5 * time.Minute, MaxDevices: 5, CodeAttemptsPerIP: 20, CodeAttemptsTotal: 1200,
					DevStateDir: "/home/dev/.config/strongroom",
				}
				if c != want {
					t.Errorf("got %+v\nwant %+v", c, want)
				}
			},
		},
		{
			name: "production from environment",
			env:  prod,
			want: func(t *testing.T, c Config) {
				if c.Dev || c.Listen != ":8443" || c.AdminListen != ":8444" || c.Issuer != "https://auth.bank.example" ||
					c.TLSCertFile != "/tls/tls.crt" || c.TLSKeyFile != "/tls/tls.key" ||
					c.DatabaseURL != "postgres://authd:hunter2@db:5432/authd?sslmode=verify-full" {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name: "flag wins over environment",
			args: []string{"--listen", "10.0.0.1:9001", "-log-level=debug", "--shutdown-timeout=5s", "--migrate-on-start"},
			env:  with(prod, "STRONGROOM_LISTEN", "10.0.0.1:9000", "STRONGROOM_LOG_LEVEL", "error", "STRONGROOM_SHUTDOWN_TIMEOUT", "1m", "STRONGROOM_MIGRATE_ON_START", "false"),
			want: func(t *testing.T, c Config) {
				if c.Listen != "10.0.0.1:9001" || c.LogLevel != slog.LevelDebug || c.ShutdownTimeout != 5*time.Second || !c.MigrateOnStart {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name: "boolean flag set to false wins over environment true",
			args: []string{"--dev=false"},
			env:  with(prod, "STRONGROOM_DEV", "true"),
			want: func(t *testing.T, c Config) {
				if c.Dev {
					t.Error("Dev = true, want the flag's false")
				}
			},
		},
		{
			name: "environment used when no flag; empty environment is unset",
			env:  with(prod, "STRONGROOM_ADMIN_LISTEN", "10.1.2.3:7000", "STRONGROOM_LISTEN", "", "STRONGROOM_LOG_LEVEL", "WARN"),
			want: func(t *testing.T, c Config) {
				if c.AdminListen != "10.1.2.3:7000" || c.Listen != ":8443" || c.LogLevel != slog.LevelWarn {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name: "dev with port 0 leaves the issuer to serve",
			args: []string{"--dev", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"},
			want: func(t *testing.T, c Config) {
				if c.Issuer != "" || c.Listen != "127.0.0.1:0" || c.AdminListen != "127.0.0.1:0" {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name: "dev loopback spellings are normalised",
			args: []string{"--dev", "--listen", "localhost:8443", "--admin-listen", "[::ffff:127.0.0.2]:8444"},
			want: func(t *testing.T, c Config) {
				if c.Listen != "127.0.0.1:8443" || c.AdminListen != "127.0.0.2:8444" {
					t.Errorf("got %q %q", c.Listen, c.AdminListen)
				}
			},
		},
		{
			name: "dev IPv6 loopback",
			args: []string{"--dev", "--listen", "[::1]:8443", "--admin-listen", "[::1]:8444"},
			want: func(t *testing.T, c Config) {
				if c.Listen != "[::1]:8443" || c.Issuer != "https://[::1]:8443" {
					t.Errorf("got %q %q", c.Listen, c.Issuer)
				}
			},
		},
		{
			name: "dev with database and secret from environment",
			args: []string{"--dev", "--migrate-on-start"},
			env:  []string{"DATABASE_URL", "host=localhost user=postgres", "STRONGROOM_DEV_ADMIN_SECRET", "correct-horse-battery-staple"},
			want: func(t *testing.T, c Config) {
				if c.DatabaseURL != "host=localhost user=postgres" || c.DevAdminSecret != "correct-horse-battery-staple" || !c.MigrateOnStart {
					t.Errorf("got %+v", c)
				}
			},
		},
		{
			name: "state dir from XDG_CONFIG_HOME",
			args: []string{"--dev"},
			env:  []string{"XDG_CONFIG_HOME", "/xdg", "HOME", "/home/dev"},
			want: func(t *testing.T, c Config) {
				if c.DevStateDir != "/xdg/strongroom" {
					t.Errorf("DevStateDir = %q", c.DevStateDir)
				}
			},
		},
		{
			name: "relative XDG_CONFIG_HOME is ignored, as os.UserConfigDir does",
			args: []string{"--dev"},
			env:  []string{"XDG_CONFIG_HOME", "rel", "HOME", "/home/dev"},
			want: func(t *testing.T, c Config) {
				if c.DevStateDir != "/home/dev/.config/strongroom" {
					t.Errorf("DevStateDir = %q", c.DevStateDir)
				}
			},
		},
		{
			name: "no home: state dir left to a temporary directory",
			args: []string{"--dev"},
			want: func(t *testing.T, c Config) {
				if c.DevStateDir != "" {
					t.Errorf("DevStateDir = %q", c.DevStateDir)
				}
			},
		},
		{
			name: "explicit state dir",
			args: []string{"--dev", "--dev-state-dir", "/tmp/x"},
			env:  []string{"HOME", "/home/dev"},
			want: func(t *testing.T, c Config) {
				if c.DevStateDir != "/tmp/x" {
					t.Errorf("DevStateDir = %q", c.DevStateDir)
				}
			},
		},
		{
			name: "PROXY protocol senders, canonical",
			args: []string{"--proxy-protocol-from", " 10.0.0.0/8, 192.168.1.7 ,2001:db8::/32,::ffff:10.1.2.3"},
			env:  prod,
			want: func(t *testing.T, c Config) {
				const want = "10.0.0.0/8,192.168.1.7/32,2001:db8::/32,::ffff:10.1.2.3/128"
				if c.ProxyProtocolFrom != want || strings.Join(c.ProxyProtocolSenders(), ",") != want {
					t.Errorf("ProxyProtocolFrom = %q, senders %q", c.ProxyProtocolFrom, c.ProxyProtocolSenders())
				}
			},
		},
		{
			name: "no PROXY protocol senders by default",
			env:  prod,
			want: func(t *testing.T, c Config) {
				if c.ProxyProtocolFrom != "" || c.ProxyProtocolSenders() != nil {
					t.Errorf("ProxyProtocolFrom = %q", c.ProxyProtocolFrom)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.args, env(tt.env...))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			tt.want(t, c)
		})
	}
}

func TestLoadRefuses(t *testing.T) {
	const secret = "s3cr3t-value-that-must-not-leak"
	tests := []struct {
		name string
		args []string
		env  []string
		// want are substrings of the error; never are substrings it must not hold.
		want  []string
		never []string
	}{
		{name: "dev on all interfaces", args: []string{"--dev", "--listen", "0.0.0.0:0"}, want: []string{"--listen", "dev mode refuses non-loopback", "0.0.0.0:0"}},
		{name: "dev on IPv6 any", args: []string{"--dev", "--admin-listen", "[::]:8444"}, want: []string{"--admin-listen", "non-loopback"}},
		{name: "dev on private IP", args: []string{"--dev", "--listen", "10.0.0.1:8443"}, want: []string{"non-loopback"}},
		{name: "dev on a host name", args: []string{"--dev", "--listen", "example.com:8443"}, want: []string{"non-loopback"}},
		{name: "dev on a zoned link-local IP", args: []string{"--dev", "--listen", "[fe80::1%eth0]:8443"}, want: []string{"non-loopback"}},
		{name: "dev on a zoned loopback", args: []string{"--dev", "--listen", "[::1%lo]:8443"}, want: []string{"non-loopback"}},
		{name: "dev on a short IPv4 form", args: []string{"--dev", "--listen", "127.1:8443"}, want: []string{"non-loopback"}},
		{name: "dev listen from environment", args: []string{"--dev"}, env: []string{"STRONGROOM_LISTEN", ":::8443"}, want: []string{"want host:port"}},
		{name: "missing port", args: []string{"--dev", "--listen", "127.0.0.1"}, want: []string{"want host:port"}},
		{name: "port out of range", args: []string{"--dev", "--listen", "127.0.0.1:99999"}, want: []string{"port must be a number"}},
		{name: "signed port", args: []string{"--dev", "--listen", "127.0.0.1:+80"}, want: []string{"port must be a number"}},
		{name: "negative port", args: []string{"--dev", "--listen", "127.0.0.1:-1"}, want: []string{"port must be a number"}},
		{name: "named port", args: []string{"--dev", "--listen", "127.0.0.1:https"}, want: []string{"port must be a number"}},
		{name: "bad host name outside dev", args: []string{"--listen", "bad_host!:8443"}, env: prod, want: []string{"IP address or a DNS name"}},
		{name: "newline in a value", args: []string{"--dev", "--listen", "127.0.0.1:8443\n{\"msg\":\"forged\"}"}, want: []string{"control characters"}},
		{name: "NUL in a value", args: []string{"--dev", "--dev-state-dir", "/tmp/a\x00b"}, want: []string{"control characters"}},
		{name: "invalid UTF-8", args: []string{"--dev", "--issuer", "https://\xff"}, want: []string{"not valid UTF-8"}},
		{name: "huge value", args: []string{"--dev", "--listen", strings.Repeat("1", 5000)}, want: []string{"longer than 4096 bytes"}, never: []string{strings.Repeat("1", 200)}},
		{name: "same address twice", args: []string{"--dev", "--listen", "127.0.0.1:9000", "--admin-listen", "localhost:9000"}, want: []string{"needs its own address"}},
		{name: "PROXY protocol from everyone", args: []string{"--proxy-protocol-from", "10.0.0.0/8,0.0.0.0/0"}, env: prod, want: []string{"--proxy-protocol-from", "any client choose its IP"}},
		{name: "PROXY protocol from every IPv6 peer", args: []string{"--proxy-protocol-from", "::/0"}, env: prod, want: []string{"any client choose its IP"}},
		{name: "PROXY protocol sender with host bits", args: []string{"--proxy-protocol-from", "10.0.0.1/8"}, env: prod, want: []string{"host bits", "10.0.0.0/8"}},
		{name: "PROXY protocol sender not an IP", args: []string{"--proxy-protocol-from", "lb.internal"}, env: prod, want: []string{"not an IP or CIDR"}},
		{name: "PROXY protocol sender with a zone", args: []string{"--proxy-protocol-from", "fe80::1%eth0"}, env: prod, want: []string{"not an IP or CIDR"}},
		{name: "PROXY protocol empty entry", args: []string{"--proxy-protocol-from", "10.0.0.0/8,,10.1.0.0/16"}, env: prod, want: []string{"not an IP or CIDR"}},
		{name: "PROXY protocol prefix too long", args: []string{"--proxy-protocol-from", "10.0.0.0/33"}, env: prod, want: []string{"not an IP or CIDR"}},
		{name: "PROXY protocol too many senders", args: []string{"--proxy-protocol-from", strings.Repeat("10.0.0.1,", 64) + "10.0.0.2"}, env: prod, want: []string{"more than 64"}},
		{name: "production without anything", want: []string{"--database-url", "--tls-cert-file", "--issuer"}},
		{name: "production without TLS key", env: with(prod, "STRONGROOM_TLS_KEY_FILE", ""), want: []string{"--tls-key-file"}},
		{name: "production without clients", env: with(prod, "STRONGROOM_CLIENTS_FILE", ""), want: []string{"--clients-file"}},
		{name: "production without signing keys", env: with(prod, "STRONGROOM_SIGNING_KEYS_DIR", ""), want: []string{"--signing-keys-dir"}},
		{name: "production without HMAC keys", env: with(prod, "STRONGROOM_HMAC_KEYS_DIR", ""), want: []string{"--hmac-keys-dir"}},
		{name: "production without admin URL", env: with(prod, "STRONGROOM_ADMIN_URL", ""), want: []string{"--admin-url"}},
		{name: "plain http admin URL", env: with(prod, "STRONGROOM_ADMIN_URL", "http://internal:8444"), want: []string{"STRONGROOM_ADMIN_URL", "https"}},
		{name: "access token lifetime too long", args: []string{"--access-token-lifetime", "2h"}, env: prod, want: []string{"30s to 1h"}},
		{name: "access token lifetime too short", args: []string{"--access-token-lifetime", "1s"}, env: prod, want: []string{"30s to 1h"}},
		{name: "activation code lifetime too long", args: []string{"--activation-code-lifetime", "48h"}, env: prod, want: []string{"1m to 24h"}},
		{name: "dev with TLS files", args: []string{"--dev", "--tls-cert-file", "a.crt", "--tls-key-file", "a.key"}, want: []string{"cannot be used with --dev"}},
		{name: "plain http issuer", env: with(prod, "STRONGROOM_ISSUER", "http://auth.bank.example"), want: []string{"STRONGROOM_ISSUER", "https"}},
		{name: "issuer with query", args: []string{"--issuer", "https://a.example?x=1"}, env: prod, want: []string{"query or fragment"}},
		{name: "issuer with empty query", args: []string{"--issuer", "https://a.example?"}, env: prod, want: []string{"query or fragment"}},
		{name: "issuer with fragment", args: []string{"--issuer", "https://a.example#f"}, env: prod, want: []string{"query or fragment"}},
		{name: "issuer with trailing slash", args: []string{"--issuer", "https://a.example/"}, env: prod, want: []string{"slash"}},
		{name: "issuer with user info", args: []string{"--issuer", "https://u:p@a.example"}, env: prod, want: []string{"user information"}},
		{name: "issuer without host", args: []string{"--issuer", "https:///path"}, env: prod, want: []string{"must name a host"}},
		{name: "database URL of another scheme", env: with(prod, "DATABASE_URL", "mysql://root:"+secret+"@db/x"), want: []string{"postgres"}, never: []string{secret}},
		{name: "database URL unparsable", env: with(prod, "DATABASE_URL", "postgres://u:"+secret+"@[bad/x"), want: []string{"not a valid URL"}, never: []string{secret}},
		{name: "database URL with control character", args: []string{"--database-url", "postgres://u:" + secret + "@db/x\r"}, env: prod, want: []string{"--database-url", "control characters"}, never: []string{secret}},
		{name: "database string that is neither form", env: with(prod, "DATABASE_URL", secret), want: []string{"key=value"}, never: []string{secret}},
		{name: "dev secret too short", args: []string{"--dev"}, env: []string{"STRONGROOM_DEV_ADMIN_SECRET", "short"}, want: []string{"STRONGROOM_DEV_ADMIN_SECRET", "16 to 256"}, never: []string{"short\""}},
		{name: "dev secret with spaces", args: []string{"--dev"}, env: []string{"STRONGROOM_DEV_ADMIN_SECRET", secret + " x"}, want: []string{"printable ASCII"}, never: []string{secret}},
		{name: "dev secret with non-ASCII", args: []string{"--dev"}, env: []string{"STRONGROOM_DEV_ADMIN_SECRET", secret + "é"}, want: []string{"printable ASCII"}, never: []string{secret}},
		{name: "dev secret outside dev", env: with(prod, "STRONGROOM_DEV_ADMIN_SECRET", secret), want: []string{"--dev is not"}, never: []string{secret}},
		{name: "dev secret as a flag", args: []string{"--dev", "--dev-admin-secret", secret}, want: []string{"STRONGROOM_DEV_ADMIN_SECRET"}, never: []string{secret}},
		{name: "dev secret as a flag with =", args: []string{"--dev", "--dev-admin-secret=" + secret}, want: []string{"STRONGROOM_DEV_ADMIN_SECRET"}, never: []string{secret}},
		{name: "unknown flag", args: []string{"--dev", "--nope"}, want: []string{"-nope"}},
		{name: "positional argument", args: []string{"--dev", "extra"}, want: []string{`unexpected argument "extra"`}},
		{name: "bad boolean in environment", env: []string{"STRONGROOM_DEV", "yes"}, want: []string{"STRONGROOM_DEV", "want true or false"}},
		{name: "bad boolean flag", args: []string{"--dev=maybe"}, want: []string{"--dev", "want true or false"}},
		{name: "zero shutdown timeout", args: []string{"--dev", "--shutdown-timeout", "0s"}, want: []string{"above 0"}},
		{name: "negative shutdown timeout", args: []string{"--dev", "--shutdown-timeout=-1s"}, want: []string{"above 0"}},
		{name: "shutdown timeout without unit", args: []string{"--dev", "--shutdown-timeout", "20"}, want: []string{"duration"}},
		{name: "shutdown timeout overflow", args: []string{"--dev", "--shutdown-timeout", "1e400h"}, want: []string{"duration"}},
		{name: "shutdown timeout too long", args: []string{"--dev"}, env: []string{"STRONGROOM_SHUTDOWN_TIMEOUT", "11m"}, want: []string{"at most 10m"}},
		{name: "unknown log level", args: []string{"--dev", "--log-level", "verbose"}, want: []string{"--log-level", "debug, info, warn or error"}},
		{name: "migrate without database", args: []string{"--dev", "--migrate-on-start"}, want: []string{"needs a database"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(tt.args, env(tt.env...))
			if err == nil {
				t.Fatalf("Load succeeded with %+v, want an error", c)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			for _, n := range tt.never {
				if strings.Contains(err.Error(), n) {
					t.Errorf("error %q leaks %q", err, n)
				}
			}
			if c != (Config{}) {
				t.Errorf("Load returned a partial config %+v with its error", c)
			}
		})
	}
}

func TestLoadHelp(t *testing.T) {
	for _, arg := range []string{"-h", "--help"} {
		t.Run(arg, func(t *testing.T) {
			_, err := Load([]string{arg}, env())
			if !errors.Is(err, flag.ErrHelp) {
				t.Fatalf("Load(%s) = %v, want flag.ErrHelp", arg, err)
			}
		})
	}
}

func TestUsageNeverShowsEnvironment(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://u:hunter2@db/x")
	var b bytes.Buffer
	Usage(&b)
	for _, s := range settings {
		if s.Flag != "" && !strings.Contains(b.String(), "--"+s.Flag) {
			t.Errorf("usage misses --%s", s.Flag)
		}
	}
	if strings.Contains(b.String(), "hunter2") {
		t.Errorf("usage shows the environment:\n%s", b.String())
	}
}

func TestConfigRedactsSecrets(t *testing.T) {
	c := Config{
		Dev: true, DevAdminSecret: "dev-secret-0123456789",
		DatabaseURL: "postgres://authd:hunter2@db:5432/authd?password=hunter3&sslmode=require",
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "config", c)
	outputs := map[string]string{
		"%v":  fmt.Sprintf("%v", c),
		"%+v": fmt.Sprintf("%+v", c),
		"%#v": fmt.Sprintf("%#v", c),
		//lint:ignore S1025 the %s verb itself is what this case tests
		"%s":   fmt.Sprintf("%s", c),
		"slog": logged.String(),
	}
	for name, out := range outputs {
		t.Run(name, func(t *testing.T) {
			for _, secret := range []string{"hunter2", "hunter3", "dev-secret-0123456789"} {
				if strings.Contains(out, secret) {
					t.Errorf("output leaks %q: %s", secret, out)
				}
			}
			if !strings.Contains(out, "db:5432") {
				t.Errorf("output lost the database host: %s", out)
			}
		})
	}
}

func TestRedactDSN(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"postgres://authd:pw@db:5432/authd?sslmode=require", "postgres://authd@db:5432/authd"},
		{"postgresql://db/authd?password=pw", "postgresql://db/authd"},
		{"host=db user=authd password=pw", "REDACTED"},
		{"postgres://u:pw@[bad", "REDACTED"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := RedactDSN(tt.in); got != tt.want {
				t.Errorf("RedactDSN(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestLoadMaintenance(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     []string
		wantURL string
		wantPos []string
		wantErr string
	}{
		{name: "environment", env: []string{"DATABASE_URL", "postgres://db/a"}, wantURL: "postgres://db/a"},
		{name: "positional before flags", args: []string{"sessions", "--database-url", "postgres://db/b"}, env: []string{"DATABASE_URL", "postgres://db/a"}, wantURL: "postgres://db/b", wantPos: []string{"sessions"}},
		{name: "positional after flags", args: []string{"--log-level=debug", "sessions", "x"}, env: []string{"DATABASE_URL", "postgres://db/a"}, wantURL: "postgres://db/a", wantPos: []string{"sessions", "x"}},
		{name: "double dash ends flags", args: []string{"--database-url=postgres://db/c", "--", "--not-a-flag"}, wantURL: "postgres://db/c", wantPos: []string{"--not-a-flag"}},
		{name: "no database", args: []string{"sessions"}, wantErr: "--database-url (or DATABASE_URL) is required"},
		{name: "bad database", args: []string{"--database-url", "mysql://root:pw@x/y"}, wantErr: "postgres"},
		{name: "serve-only flag", args: []string{"--dev"}, env: []string{"DATABASE_URL", "postgres://db/a"}, wantErr: "-dev"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, pos, err := LoadMaintenance("authd migrate", tt.args, env(tt.env...))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "pw@") {
					t.Errorf("error leaks the DSN: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadMaintenance: %v", err)
			}
			if m.DatabaseURL != tt.wantURL || strings.Join(pos, " ") != strings.Join(tt.wantPos, " ") {
				t.Errorf("got %q %q, want %q %q", m.DatabaseURL, pos, tt.wantURL, tt.wantPos)
			}
		})
	}
}

// TestREADME keeps README.md equal to the settings table; run with -update
// after changing a setting.
func TestREADME(t *testing.T) {
	want := readme()
	if *update {
		if err := os.WriteFile("README.md", []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatalf("read README.md (run go test -update): %v", err)
	}
	if string(got) != want {
		t.Errorf("README.md is stale: run go test ./internal/config -update")
	}
}
