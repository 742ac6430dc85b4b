package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// setting is one row of the configuration table: how it is named on the
// command line and in the environment, its default, and how a raw string
// becomes a field of Config. The same rows generate README.md.
type setting struct {
	Name    string // Config field
	Flag    string // without dashes; "" for environment-only settings
	Env     string
	Default string // raw default fed to apply
	// DefaultDoc is the default as documented, when Default alone would
	// not say it (dev-mode defaults, computed defaults).
	DefaultDoc string
	Meaning    string
	isBool     bool
	// secret settings never have their value echoed in an error.
	secret bool
	apply  func(c *Config, raw string) error
}

var settings = []setting{
	{
		Name: "Listen", Flag: "listen", Env: "STRONGROOM_LISTEN", Default: ":8443",
		DefaultDoc: "`:8443`; dev: `127.0.0.1:8443`",
		Meaning:    "public listener address (host:port); in dev mode only loopback, an empty host means 127.0.0.1",
		apply:      func(c *Config, raw string) error { c.Listen = raw; return nil },
	},
	{
		Name: "AdminListen", Flag: "admin-listen", Env: "STRONGROOM_ADMIN_LISTEN", Default: ":8444",
		DefaultDoc: "`:8444`; dev: `127.0.0.1:8444`",
		Meaning:    "internal listener address (admin API, introspection, metrics, health); never expose it publicly",
		apply:      func(c *Config, raw string) error { c.AdminListen = raw; return nil },
	},
	{
		Name: "ProxyProtocolFrom", Flag: "proxy-protocol-from", Env: "STRONGROOM_PROXY_PROTOCOL_FROM",
		DefaultDoc: "none: a client's IP is the TCP peer's",
		Meaning: "comma-separated IPs or CIDRs of the load balancers in front of the public listener (behind TLS passthrough the TCP peer is the balancer). " +
			"When set, the public listener takes connections only from them, each opening with a PROXY protocol v1 or v2 header whose source is the client's IP " +
			"(per-IP limits, audit trail); anything else is dropped",
		apply: func(c *Config, raw string) (err error) { c.ProxyProtocolFrom, err = parseSenders(raw); return err },
	},
	{
		Name: "Dev", Flag: "dev", Env: "STRONGROOM_DEV", Default: "false", isBool: true,
		Meaning: "developer mode: loopback only, generated TLS certificate and back-office secret, events in memory unless a database is set",
		apply:   func(c *Config, raw string) (err error) { c.Dev, err = parseBool(raw); return err },
	},
	{
		Name: "DatabaseURL", Flag: "database-url", Env: "DATABASE_URL", secret: true,
		DefaultDoc: "none; required outside dev mode (dev: events in memory)",
		Meaning:    "PostgreSQL connection string (URL or key=value form)",
		apply:      func(c *Config, raw string) error { c.DatabaseURL = raw; return nil },
	},
	{
		Name: "TLSCertFile", Flag: "tls-cert-file", Env: "STRONGROOM_TLS_CERT_FILE",
		DefaultDoc: "none; required outside dev mode, refused in dev mode",
		Meaning:    "PEM certificate chain served by both listeners",
		apply:      func(c *Config, raw string) error { c.TLSCertFile = raw; return nil },
	},
	{
		Name: "TLSKeyFile", Flag: "tls-key-file", Env: "STRONGROOM_TLS_KEY_FILE",
		DefaultDoc: "none; required outside dev mode, refused in dev mode",
		Meaning:    "PEM private key of the certificate",
		apply:      func(c *Config, raw string) error { c.TLSKeyFile = raw; return nil },
	},
	{
		Name: "PinSetDir", Flag: "pinset-dir", Env: "STRONGROOM_PINSET_DIR",
		DefaultDoc: "none (no pin set is served)",
		Meaning:    "directory of the operator's pin-set ConfigMap (`pinset.json`, `android.xml`), served at /.well-known/pinset.json and /.well-known/pinset/android.xml and reloaded when it changes",
		apply:      func(c *Config, raw string) error { c.PinSetDir = raw; return nil },
	},
	{
		Name: "Issuer", Flag: "issuer", Env: "STRONGROOM_ISSUER",
		DefaultDoc: "none; required outside dev mode (dev: `https://` + public address, e.g. `https://127.0.0.1:8443`)",
		Meaning:    "OAuth2 issuer identifier: https URL without query, fragment or trailing slash (RFC 8414 §2)",
		apply:      func(c *Config, raw string) error { c.Issuer = raw; return nil },
	},
	{
		Name: "LogLevel", Flag: "log-level", Env: "STRONGROOM_LOG_LEVEL", Default: "info",
		DefaultDoc: "`info`",
		Meaning:    "minimum log level: debug, info, warn or error",
		apply: func(c *Config, raw string) error {
			if err := c.LogLevel.UnmarshalText([]byte(raw)); err != nil {
				return errors.New("want debug, info, warn or error")
			}
			return nil
		},
	},
	{
		Name: "MigrateOnStart", Flag: "migrate-on-start", Env: "STRONGROOM_MIGRATE_ON_START", Default: "false", isBool: true,
		Meaning: "apply pending database migrations before serving",
		apply:   func(c *Config, raw string) (err error) { c.MigrateOnStart, err = parseBool(raw); return err },
	},
	{
		Name: "ShutdownTimeout", Flag: "shutdown-timeout", Env: "STRONGROOM_SHUTDOWN_TIMEOUT", Default: "20s",
		DefaultDoc: "`20s`",
		Meaning:    "how long a graceful shutdown may drain in-flight requests (a Go duration, at most 10m)",
		apply: func(c *Config, raw string) error {
			d, err := time.ParseDuration(raw)
			if err != nil {
				return errors.New("want a duration such as 20s")
			}
			if d <= 0 || d > maxShutdownTimeout {
				return fmt.Errorf("want a duration above 0 and at most %s", maxShutdownTimeout)
			}
			c.ShutdownTimeout = d
			return nil
		},
	},
	{
		Name: "AdminURL", Flag: "admin-url", Env: "STRONGROOM_ADMIN_URL",
		DefaultDoc: "none; required outside dev mode (dev: `https://` + internal address)",
		Meaning:    "URL at which back-office clients and resource servers reach the internal listener (introspection_endpoint in discovery)",
		apply:      func(c *Config, raw string) error { c.AdminURL = raw; return nil },
	},
	{
		Name: "ClientsFile", Flag: "clients-file", Env: "STRONGROOM_CLIENTS_FILE",
		DefaultDoc: "none; required outside dev mode (dev: `mobile-app` and `back-office`)",
		Meaning:    "YAML file of OAuth2 clients (secrets only as SHA-256 hashes; see README)",
		apply:      func(c *Config, raw string) error { c.ClientsFile = raw; return nil },
	},
	{
		Name: "SigningKeysDir", Flag: "signing-keys-dir", Env: "STRONGROOM_SIGNING_KEYS_DIR",
		DefaultDoc: "none; required outside dev mode (dev: a key generated at start)",
		Meaning:    "mounted token-signing KeySet Secret (its `keys.json`, written by the operator); the key whose `not_before` is the latest passed signs, all not retired are in the JWKS",
		apply:      func(c *Config, raw string) error { c.SigningKeysDir = raw; return nil },
	},
	{
		Name: "AccessTokenLifetime", Flag: "access-token-lifetime", Env: "STRONGROOM_ACCESS_TOKEN_LIFETIME", Default: "5m",
		DefaultDoc: "`5m`",
		Meaning:    "lifetime of access tokens (a Go duration, 30s to 1h)",
		apply: func(c *Config, raw string) error {
			d, err := time.ParseDuration(raw)
			if err != nil || d < 30*time.Second || d > time.Hour {
				return errors.New("want a duration from 30s to 1h")
			}
			c.AccessTokenLifetime = d
			return nil
		},
	},
	{
		Name: "RefreshTokenLifetime", Flag: "refresh-token-lifetime", Env: "STRONGROOM_REFRESH_TOKEN_LIFETIME", Default: "30m",
		DefaultDoc: "`30m`",
		Meaning:    "idle lifetime of a session: a refresh token is good this long unless rotated (1m to 30m)",
		apply: func(c *Config, raw string) error {
			d, err := time.ParseDuration(raw)
			if err != nil || d < time.Minute || d > 30*time.Minute {
				return errors.New("want a duration from 1m to 30m")
			}
			c.RefreshTokenLifetime = d
			return nil
		},
	},
	{
		Name: "SealingKeysDir", Flag: "sealing-keys-dir", Env: "STRONGROOM_SEALING_KEYS_DIR",
		DefaultDoc: "none; required outside dev mode (dev: an X-Wing key generated at start)",
		Meaning:    "mounted payload-sealing KeySet Secret (`keys.json`): HPKE keys, X-Wing by default, X25519 allowed for old clients; listed from their `not_before`",
		apply:      func(c *Config, raw string) error { c.SealingKeysDir = raw; return nil },
	},
	{
		Name: "HMACKeysDir", Flag: "hmac-keys-dir", Env: "STRONGROOM_HMAC_KEYS_DIR",
		DefaultDoc: "none; required outside dev mode (dev: kept in the database, or generated)",
		Meaning:    "mounted hmac-secret KeySet Secret (`keys.json`): the keys of refresh tokens and activation codes; every key not retired still checks them",
		apply:      func(c *Config, raw string) error { c.HMACKeysDir = raw; return nil },
	},
	{
		Name: "PeppersDir", Flag: "peppers-dir", Env: "STRONGROOM_PEPPERS_DIR",
		DefaultDoc: "none; required outside dev mode (dev: generated at start)",
		Meaning:    "directory of passcode peppers: one file per pepper, named by its pepper_id, holding ≥ 32 random bytes",
		apply:      func(c *Config, raw string) error { c.PeppersDir = raw; return nil },
	},
	{
		Name: "CurrentPepper", Flag: "current-pepper", Env: "STRONGROOM_CURRENT_PEPPER",
		DefaultDoc: "the only pepper, when there is one",
		Meaning:    "pepper_id of the pepper new passcode verifiers are made with",
		apply:      func(c *Config, raw string) error { c.CurrentPepper = raw; return nil },
	},
	{
		Name: "PasscodeBackoff", Flag: "passcode-backoff", Env: "STRONGROOM_PASSCODE_BACKOFF", Default: "30s",
		DefaultDoc: "`30s`",
		Meaning:    "wait after the 3rd consecutive wrong passcode; it doubles with each further failure",
		apply: func(c *Config, raw string) error {
			d, err := time.ParseDuration(raw)
			if err != nil || d < time.Millisecond || d > time.Hour {
				return errors.New("want a duration from 1ms to 1h")
			}
			c.PasscodeBackoff = d
			return nil
		},
	},
	{
		Name: "ActivationCodeLifetime", Flag: "activation-code-lifetime", Env: "STRONGROOM_ACTIVATION_CODE_LIFETIME", Default: "24h",
		DefaultDoc: "`24h`",
		Meaning:    "how long an activation or reset code is good for (a Go duration, 1m to 24h); the hmac-secret KeySet must keep its keys at least this long",
		apply: func(c *Config, raw string) error {
			d, err := time.ParseDuration(raw)
			if err != nil || d < time.Minute || d > 24*time.Hour {
				return errors.New("want a duration from 1m to 24h")
			}
			c.ActivationCodeLifetime = d
			return nil
		},
	},
	{
		Name: "ChallengeLifetime", Flag: "challenge-lifetime", Env: "STRONGROOM_CHALLENGE_LIFETIME", Default: "60s",
		DefaultDoc: "`60s`",
		Meaning:    "how long a biometric challenge may be answered (a Go duration, 1s to 5m)",
		apply: func(c *Config, raw string) error {
			d, err := time.ParseDuration(raw)
			if err != nil || d < time.Second || d > 5*time.Minute {
				return errors.New("want a duration from 1s to 5m")
			}
			c.ChallengeLifetime = d
			return nil
		},
	},
	{
		Name: "ChallengesPerMinute", Flag: "challenges-per-minute", Env: "STRONGROOM_CHALLENGES_PER_MINUTE", Default: "30",
		DefaultDoc: "`30`",
		Meaning:    "biometric challenges one device key may ask for per minute, in bursts of up to a third of it (per replica)",
		apply: func(c *Config, raw string) error {
			n, err := strconv.Atoi(raw)
			if err != nil || n < 1 || n > 1_000_000 {
				return errors.New("want 1 to 1000000")
			}
			c.ChallengesPerMinute = n
			return nil
		},
	},
	{
		Name: "StepUpMaxAge", Flag: "step-up-max-age", Env: "STRONGROOM_STEP_UP_MAX_AGE", Default: "5m",
		DefaultDoc: "`5m`",
		Meaning:    "how recent (auth_time) the passcode sign-in of a token must be to enroll a biometric key (1s to 5m)",
		apply: func(c *Config, raw string) error {
			d, err := time.ParseDuration(raw)
			if err != nil || d < time.Second || d > 5*time.Minute {
				return errors.New("want a duration from 1s to 5m")
			}
			c.StepUpMaxAge = d
			return nil
		},
	},
	{
		Name: "MaxDevices", Flag: "max-devices", Env: "STRONGROOM_MAX_DEVICES", Default: "5",
		DefaultDoc: "`5`",
		Meaning:    "most devices one user may have enrolled",
		apply: func(c *Config, raw string) error {
			n, err := strconv.Atoi(raw)
			if err != nil || n < 1 || n > 50 {
				return errors.New("want 1 to 50")
			}
			c.MaxDevices = n
			return nil
		},
	},
	{
		Name: "CodeAttemptsPerIP", Flag: "code-attempts-per-ip", Env: "STRONGROOM_CODE_ATTEMPTS_PER_IP", Default: "20",
		DefaultDoc: "`20`",
		Meaning:    "activation-code attempts per client IP per minute (per replica)",
		apply: func(c *Config, raw string) error {
			n, err := strconv.Atoi(raw)
			if err != nil || n < 1 || n > 100000 {
				return errors.New("want 1 to 100000")
			}
			c.CodeAttemptsPerIP = n
			return nil
		},
	},
	{
		Name: "CodeAttemptsTotal", Flag: "code-attempts-total", Env: "STRONGROOM_CODE_ATTEMPTS_TOTAL", Default: "1200",
		DefaultDoc: "`1200`",
		Meaning:    "activation-code attempts per minute from all clients together (per replica)",
		apply: func(c *Config, raw string) error {
			n, err := strconv.Atoi(raw)
			if err != nil || n < 1 || n > 10000000 {
				return errors.New("want 1 to 10000000")
			}
			c.CodeAttemptsTotal = n
			return nil
		},
	},
	{
		Name: "DevAdminSecret", Env: "STRONGROOM_DEV_ADMIN_SECRET", secret: true,
		DefaultDoc: "generated, written to a 0600 file in DevStateDir",
		Meaning:    "dev mode only: client secret of the `back-office` client (environment only: flags show in ps)",
		apply: func(c *Config, raw string) error {
			if raw == "" {
				return nil
			}
			if len(raw) < minSecretLen || len(raw) > maxSecretLen {
				return fmt.Errorf("want %d to %d characters", minSecretLen, maxSecretLen)
			}
			for _, r := range raw {
				if r <= ' ' || r > '~' {
					return errors.New("want printable ASCII without spaces")
				}
			}
			c.DevAdminSecret = raw
			return nil
		},
	},
	{
		Name: "DevStateDir", Flag: "dev-state-dir", Env: "STRONGROOM_DEV_STATE_DIR",
		DefaultDoc: "`$XDG_CONFIG_HOME/strongroom` or `~/.config/strongroom` (os.UserConfigDir), else a new temporary directory",
		Meaning:    "dev mode only: directory of the generated back-office secret file",
		apply:      func(c *Config, raw string) error { c.DevStateDir = raw; return nil },
	},
}

const (
	maxShutdownTimeout = 10 * time.Minute
	// maxValueLen bounds every raw value; no legitimate setting is longer.
	maxValueLen  = 4096
	minSecretLen = 16
	maxSecretLen = 256
)

// maxSenders bounds the PROXY protocol senders: a handful of load
// balancer subnets, never a list of clients.
const maxSenders = 64

// parseSenders checks a comma-separated list of IPs and CIDRs and returns
// it canonical (CIDRs masked, IPs as /32 or /128). A prefix of length 0
// would let any peer choose its client IP and is refused, as are zones and
// CIDRs with host bits set (10.0.0.1/8 is most likely a typo).
func parseSenders(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", nil
	}
	parts := strings.Split(raw, ",")
	if len(parts) > maxSenders {
		return "", fmt.Errorf("more than %d entries", maxSenders)
	}
	out := make([]string, 0, len(parts))
	for _, p := range parts {
		p = strings.TrimSpace(p)
		var pfx netip.Prefix
		if strings.Contains(p, "/") {
			var err error
			if pfx, err = netip.ParsePrefix(p); err != nil {
				return "", fmt.Errorf("%q is not an IP or CIDR", p)
			}
			if pfx.Masked() != pfx {
				return "", fmt.Errorf("%q has host bits set (did you mean %s?)", p, pfx.Masked())
			}
		} else {
			a, err := netip.ParseAddr(p)
			if err != nil || a.Zone() != "" {
				return "", fmt.Errorf("%q is not an IP or CIDR", p)
			}
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
		if pfx.Bits() == 0 {
			return "", fmt.Errorf("%q would let any client choose its IP", p)
		}
		out = append(out, pfx.String())
	}
	return strings.Join(out, ","), nil
}

func parseBool(raw string) (bool, error) {
	b, err := strconv.ParseBool(raw)
	if err != nil {
		return false, errors.New("want true or false")
	}
	return b, nil
}

// checkText refuses values no setting can legitimately hold: invalid UTF-8,
// control characters (a newline could forge a log line) and huge strings.
func checkText(raw string) error {
	if len(raw) > maxValueLen {
		return fmt.Errorf("longer than %d bytes", maxValueLen)
	}
	if !utf8.ValidString(raw) {
		return errors.New("not valid UTF-8")
	}
	if strings.ContainsFunc(raw, unicode.IsControl) {
		return errors.New("contains control characters")
	}
	return nil
}

// errorf names the setting and where its value came from; the value itself
// is quoted only for non-secret settings.
func (s setting) errorf(source, raw string, err error) error {
	if s.secret || len(raw) > 100 {
		return fmt.Errorf("%s: invalid value: %w", source, err)
	}
	return fmt.Errorf("%s: invalid value %q: %w", source, raw, err)
}

// rawValue is a flag.Value that only records what was given; parsing is
// left to the setting so flags and environment go through the same code.
type rawValue struct {
	s      string
	set    bool
	isBool bool
}

func (v *rawValue) String() string {
	if v == nil {
		return ""
	}
	return v.s
}

func (v *rawValue) Set(s string) error { v.s, v.set = s, true; return nil }

func (v *rawValue) IsBoolFlag() bool { return v.isBool }

// defaultStateDir is os.UserConfigDir()/strongroom, computed from getenv on
// Unix so tests do not depend on the real environment. It returns "" when
// there is no usable home: dev mode then uses a new temporary directory.
func defaultStateDir(getenv func(string) string) string {
	switch runtime.GOOS {
	case "windows", "darwin", "ios", "plan9":
		dir, err := os.UserConfigDir()
		if err != nil {
			return ""
		}
		return filepath.Join(dir, "strongroom")
	}
	dir := getenv("XDG_CONFIG_HOME")
	if !filepath.IsAbs(dir) {
		home := getenv("HOME")
		if !filepath.IsAbs(home) {
			return ""
		}
		dir = filepath.Join(home, ".config")
	}
	if checkText(dir) != nil {
		return ""
	}
	return filepath.Join(dir, "strongroom")
}
