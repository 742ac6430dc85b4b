// Package config is authd's configuration: one Config loaded from command
// line flags and the environment, validated before anything starts, so that
// a bad value stops the process with a clear message instead of half-serving.
//
// A flag wins over its environment variable, which wins over the default.
// An environment variable set to the empty string counts as unset. Every
// setting is listed once, in settings.go; README.md is generated from that
// list (go test ./internal/config -update).
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"
)

// Config is everything authd serve needs to start. Field names are stable:
// the Helm chart's values and the service wiring refer to them.
type Config struct {
	// Listen is the public listener's address (discovery, JWKS, /oauth2, /v1).
	Listen string
	// AdminListen is the internal listener's address (/admin/v1,
	// /oauth2/introspect, /metrics, /healthz, /readyz). It must never be
	// exposed through the public Ingress.
	AdminListen string
	// ProxyProtocolFrom is the comma-separated IPs and CIDRs of the load
	// balancers in front of the public listener, canonical ("" for none).
	// When set, the public listener takes connections only from them and
	// only with a PROXY protocol header, whose source address is the
	// client's IP (rate limits, audit trail). A string, not a slice, so
	// that Config stays comparable; ProxyProtocolSenders splits it.
	ProxyProtocolFrom string
	// Dev runs the self-contained developer mode of CONTRACT.md: loopback
	// only, generated TLS certificate, events in memory unless DatabaseURL.
	Dev bool
	// DatabaseURL is the PostgreSQL connection string (URL or key=value
	// form). Empty is only allowed in dev mode and means "events in memory".
	DatabaseURL string
	// TLSCertFile and TLSKeyFile are the PEM certificate chain and key both
	// listeners serve. Required outside dev mode, refused in dev mode (which
	// generates its own certificate).
	TLSCertFile string
	TLSKeyFile  string
	// PinSetDir is the mounted pin-set ConfigMap; empty serves none.
	PinSetDir string
	// Issuer is the OAuth2 issuer identifier (RFC 8414 §2): an https URL
	// without query or fragment. In dev mode it defaults to the public
	// listener's address; Load leaves it empty when that address has port 0,
	// and serve fills it in from the bound address.
	Issuer string
	// LogLevel is the minimum level of the JSON logs.
	LogLevel slog.Level
	// MigrateOnStart applies pending database migrations before serving.
	MigrateOnStart bool
	// ShutdownTimeout bounds the graceful drain after SIGTERM; it should be
	// shorter than the pod's terminationGracePeriodSeconds.
	ShutdownTimeout time.Duration
	// AdminURL is where clients reach the internal listener; discovery
	// names its introspection endpoint. Dev mode derives it.
	AdminURL string
	// ClientsFile is the YAML file of OAuth2 clients. Dev mode registers
	// mobile-app and back-office instead.
	ClientsFile string
	// SigningKeysDir is the mounted token-signing KeySet; the key active
	// by the clock signs. Dev mode generates a key.
	SigningKeysDir string
	// AccessTokenLifetime is how long access tokens live;
	// RefreshTokenLifetime how long a session lives without a refresh.
	AccessTokenLifetime  time.Duration
	RefreshTokenLifetime time.Duration
	// SealingKeysDir is the mounted payload-sealing KeySet (HPKE keys);
	// dev mode generates one.
	SealingKeysDir string
	// HMACKeysDir is the mounted hmac-secret KeySet (refresh tokens,
	// activation codes). Dev mode keeps its keys in the database, or
	// generates them without one.
	HMACKeysDir string
	// PeppersDir holds the passcode peppers; CurrentPepper names the one
	// new verifiers use. Dev mode generates one.
	PeppersDir    string
	CurrentPepper string
	// PasscodeBackoff is the wait after the 3rd consecutive failure.
	PasscodeBackoff time.Duration
	// ActivationCodeLifetime is how long an activation or reset code is
	// good for.
	ActivationCodeLifetime time.Duration
	// ChallengeLifetime is how long a biometric challenge may be answered.
	ChallengeLifetime time.Duration
	// ChallengesPerMinute limits the challenges one device key may ask for.
	ChallengesPerMinute int
	// StepUpMaxAge is how recent a passcode sign-in must be for its token
	// to enroll a biometric key.
	StepUpMaxAge time.Duration
	// MaxDevices is the most devices a user may have.
	MaxDevices int
	// CodeAttemptsPerIP and CodeAttemptsTotal limit activation-code
	// attempts per minute, per client address and in all.
	CodeAttemptsPerIP, CodeAttemptsTotal int
	// DevAdminSecret is the client secret of the dev back-office client. It
	// is read only from the environment, never from a flag, because flags are
	// visible to every user through ps. When empty, dev mode generates one.
	DevAdminSecret string
	// DevStateDir is where dev mode writes its generated back-office secret
	// (a 0600 file). Empty means "a new temporary directory".
	DevStateDir string

	// TimeSource is authd's clock; nil means the wall clock. It is not a
	// setting: only a build for end-to-end tests sets it (api/fastclock),
	// so that rotations meant to take months happen within a test. (An
	// interface, not a func, keeps Config comparable.)
	TimeSource interface{ Now() time.Time }
}

// Clock is the TimeSource's Now, or time.Now.
func (c Config) Clock() func() time.Time {
	if c.TimeSource != nil {
		return c.TimeSource.Now
	}
	return time.Now
}

// ProxyProtocolSenders is ProxyProtocolFrom as a list of CIDRs (nil for
// none).
func (c Config) ProxyProtocolSenders() []string {
	if c.ProxyProtocolFrom == "" {
		return nil
	}
	return strings.Split(c.ProxyProtocolFrom, ",")
}

// Load parses args (the arguments after the subcommand, without the program
// name) and the environment read through getenv, applies defaults, and
// validates the result. With -h or --help it returns an error matching
// flag.ErrHelp. Error messages never contain the value of a secret setting.
func Load(args []string, getenv func(string) string) (Config, error) {
	c, rest, err := parse("authd serve", settings, args, getenv)
	if err != nil {
		return Config{}, err
	}
	if len(rest) > 0 {
		return Config{}, fmt.Errorf("unexpected argument %q", rest[0])
	}
	if c.DevStateDir == "" {
		c.DevStateDir = defaultStateDir(getenv)
	}
	if err := c.validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Maintenance is the configuration of the subcommands that only touch the
// database (migrate, projections).
type Maintenance struct {
	DatabaseURL string
	LogLevel    slog.Level
}

// LoadMaintenance loads the --database-url and --log-level settings of the
// maintenance subcommands, with the same flag and environment names as
// Load. Flags and positional arguments may be interleaved
// ("rebuild NAME --database-url ..."); the positional ones are returned.
func LoadMaintenance(name string, args []string, getenv func(string) string) (Maintenance, []string, error) {
	var rows []setting
	for _, s := range settings {
		if s.Name == "DatabaseURL" || s.Name == "LogLevel" {
			rows = append(rows, s)
		}
	}
	c, rest, err := parse(name, rows, args, getenv)
	if err != nil {
		return Maintenance{}, nil, err
	}
	if c.DatabaseURL == "" {
		return Maintenance{}, nil, errors.New("--database-url (or DATABASE_URL) is required")
	}
	if err := checkDSN(c.DatabaseURL); err != nil {
		return Maintenance{}, nil, fmt.Errorf("--database-url: %w", err)
	}
	return Maintenance{DatabaseURL: c.DatabaseURL, LogLevel: c.LogLevel}, rest, nil
}

// parse applies rows from flags, then environment, then defaults, and
// returns the positional arguments found among the flags.
func parse(name string, rows []setting, args []string, getenv func(string) string) (Config, []string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	values := make(map[string]*rawValue, len(rows))
	for _, s := range rows {
		if s.Flag == "" {
			continue
		}
		v := &rawValue{isBool: s.isBool}
		values[s.Flag] = v
		fs.Var(v, s.Flag, s.Meaning)
	}
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return Config{}, nil, flagError(err)
		}
		if fs.NArg() == 0 {
			break
		}
		if i := len(args) - fs.NArg(); i > 0 && args[i-1] == "--" {
			positional = append(positional, fs.Args()...)
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}

	var c Config
	var errs []error
	for _, s := range rows {
		raw, source := s.Default, "default"
		if v := values[s.Flag]; v != nil && v.set {
			raw, source = v.s, "--"+s.Flag
		} else if s.Env != "" && getenv(s.Env) != "" {
			raw, source = getenv(s.Env), s.Env
		}
		if err := checkText(raw); err != nil {
			errs = append(errs, s.errorf(source, raw, err))
			continue
		}
		if err := s.apply(&c, raw); err != nil {
			errs = append(errs, s.errorf(source, raw, err))
		}
	}
	if len(errs) > 0 {
		return Config{}, nil, errors.Join(errs...)
	}
	return c, positional, nil
}

// flagError rewrites flag package errors that would mislead: a secret must
// never be passed as a flag, so say where it goes instead.
func flagError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	if strings.Contains(err.Error(), "-dev-admin-secret") {
		return errors.New("there is no --dev-admin-secret flag: set STRONGROOM_DEV_ADMIN_SECRET instead (flags are visible in ps)")
	}
	return err
}

// Usage writes the flag list with the built-in defaults (never values from
// the environment, which may hold a DATABASE_URL password).
func Usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: authd serve [flags]")
	fmt.Fprintln(w)
	for _, s := range settings {
		flagName := "(no flag)"
		if s.Flag != "" {
			flagName = "--" + s.Flag
		}
		fmt.Fprintf(w, "  %-22s env %s\n", flagName, s.Env)
		fmt.Fprintf(w, "        %s", s.Meaning)
		if s.DefaultDoc != "" {
			fmt.Fprintf(w, " (default %s)", s.DefaultDoc)
		}
		fmt.Fprintln(w)
	}
}

// String describes c with secrets redacted, so that printing a Config by
// mistake (%v, %+v) leaks neither the database password nor the dev secret.
func (c Config) String() string {
	c.DatabaseURL = RedactDSN(c.DatabaseURL)
	if c.DevAdminSecret != "" {
		c.DevAdminSecret = "REDACTED"
	}
	type plain Config // no String method: avoids recursion
	return fmt.Sprintf("%+v", plain(c))
}

// GoString is String, for %#v.
func (c Config) GoString() string { return c.String() }

// LogValue makes slog log the redacted configuration.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("listen", c.Listen),
		slog.String("admin_listen", c.AdminListen),
		slog.Bool("dev", c.Dev),
		slog.String("database", RedactDSN(c.DatabaseURL)),
		slog.String("tls_cert_file", c.TLSCertFile),
		slog.String("tls_key_file", c.TLSKeyFile),
		slog.String("pinset_dir", c.PinSetDir),
		slog.String("issuer", c.Issuer),
		slog.String("log_level", c.LogLevel.String()),
		slog.Bool("migrate_on_start", c.MigrateOnStart),
		slog.String("shutdown_timeout", c.ShutdownTimeout.String()),
		slog.Bool("dev_admin_secret_set", c.DevAdminSecret != ""),
		slog.String("dev_state_dir", c.DevStateDir),
	)
}

// RedactDSN returns a form of a PostgreSQL connection string that is safe to
// log: scheme, user, host and database of a URL, without password or query
// (which may carry password=...). A key=value string is not parsed: it is
// replaced entirely, since any of its words could be the password.
func RedactDSN(dsn string) string {
	if dsn == "" {
		return ""
	}
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return "REDACTED"
	}
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	if u.User != nil {
		r.User = url.User(u.User.Username())
	}
	return r.String()
}
