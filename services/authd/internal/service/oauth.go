package service

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ory/fosite"
	"golang.org/x/time/rate"

	"strongroom.dev/api/events"
	"strongroom.dev/services/authd/internal/adapters/pgstore"
	"strongroom.dev/services/authd/internal/app"
	"strongroom.dev/services/authd/internal/config"
	"strongroom.dev/services/authd/internal/domain/activation"
	"strongroom.dev/services/authd/internal/domain/device"
	"strongroom.dev/services/authd/internal/domain/session"
	"strongroom.dev/services/authd/internal/eventstore"
	"strongroom.dev/services/authd/internal/hmackey"
	"strongroom.dev/services/authd/internal/keys"
	"strongroom.dev/services/authd/internal/mounted"
	"strongroom.dev/services/authd/internal/oauth"
	"strongroom.dev/services/authd/internal/passcode"
	"strongroom.dev/services/authd/internal/ports/admin"
	"strongroom.dev/services/authd/internal/ports/selfservice"
	"strongroom.dev/services/authd/internal/ratelimit"
	"strongroom.dev/services/authd/internal/sealing"
)

// oneTimeStore is the replica-wide memory of one-time values.
type oneTimeStore interface {
	oauth.ReplayStore
	Sweep(ctx context.Context) (int64, error)
}

// Dev-mode clients (CONTRACT.md, Dev mode).
const (
	DevMobileClient = "mobile-app"
	DevAdminClient  = "back-office"
)

// servedGrants are the grant types the token endpoint serves.
var servedGrants = []string{oauth.GrantClientCredentials, oauth.GrantPasscode, oauth.GrantBiometric, oauth.GrantRefreshToken}

// setupOAuth wires the OAuth2 server: signing keys, clients, fosite over
// the event-sourced storage, DPoP nonces and replay memory, the back office.
func (a *App) setupOAuth(ctx context.Context, cfg config.Config) error {
	now := cfg.Clock()
	src, err := signingKeys(cfg, a.log)
	if err != nil {
		return err
	}
	clients, err := loadClients(cfg)
	if err != nil {
		return err
	}
	nonceKey := make([]byte, 32)
	if a.pool != nil {
		// Every replica must accept every replica's nonces.
		if nonceKey, err = pgstore.ServerSecret(ctx, a.pool, "dpop_nonce"); err != nil {
			return err
		}
	} else if _, err := rand.Read(nonceKey); err != nil {
		return err
	}
	nonces, err := oauth.NewNonces(nonceKey, now)
	if err != nil {
		return err
	}
	storage := &oauth.Storage{Clients: clients, Events: a.Store, Models: a.ReadModels, Replay: a.onetime, Now: now}
	signer := &oauth.Signer{Keys: src}
	provider, fconf, helper, err := oauth.NewProvider(oauth.ProviderConfig{Issuer: cfg.Issuer, AccessTokenLifetime: cfg.AccessTokenLifetime}, storage, signer)
	if err != nil {
		return err
	}
	devices, err := a.setupDevices(ctx, cfg)
	if err != nil {
		return err
	}
	deviceGrant := oauth.DeviceGrant{
		Helper: helper, Scopes: fosite.ExactScopeStrategy,
		AccessLifetime: cfg.AccessTokenLifetime, SessionLifetime: SessionLifetime, Now: now,
		RefreshTokens: devices.RefreshTokens, RefreshLifetime: devices.RefreshLifetime,
	}
	fconf.TokenEndpointHandlers.Append(&oauth.PasscodeGrant{SignIn: devices.PasscodeSignIn, DeviceGrant: deviceGrant})
	fconf.TokenEndpointHandlers.Append(&oauth.BiometricGrant{SignIn: devices.BiometricSignIn, Issuer: cfg.Issuer, DeviceGrant: deviceGrant})
	fconf.TokenEndpointHandlers.Append(&oauth.RefreshGrant{
		Refresh: devices.Refresh, Helper: helper, AccessLifetime: cfg.AccessTokenLifetime, Now: now,
	})
	var pinsets *mounted.Value[mounted.PinSet]
	if cfg.PinSetDir != "" {
		if pinsets, err = mounted.PinSets(cfg.PinSetDir, mounted.Options{Log: a.log, Now: now}); err != nil {
			return fmt.Errorf("pin set: %w", err)
		}
	}
	a.OAuth = &oauth.Server{
		Provider: provider, Storage: storage, Signer: signer, Keys: src,
		Proofs:  &oauth.ProofChecker{Nonces: nonces, Replay: a.onetime, Now: now},
		Devices: oauth.StreamDeviceKeys{Events: a.Store, Registry: events.Default},
		Issuer:  cfg.Issuer, AdminURL: cfg.AdminURL, GrantTypes: servedGrants, Log: a.log, Now: now,
		Sealing: devices.Sealing, RevokeRefresh: devices.RevokeRefreshToken, PinSets: pinsets,
		Metrics: a.Metrics,
	}
	storage.DeviceSignedIn = devices.DeviceSignedIn
	a.Devices = devices
	a.Admin = &admin.API{OAuth: a.OAuth, App: devices, Events: a.Store, Log: a.log}
	a.SelfService = &selfservice.API{OAuth: a.OAuth, App: devices, Models: a.ReadModels, Log: a.log, Now: now,
		Codes: codeLimiter(cfg), Challenges: challengeLimiter(cfg)}
	return nil
}

// SessionLifetime is a session's absolute lifetime (CONTRACT.md: 12 h).
const SessionLifetime = 12 * time.Hour

// refreshLifetime is a session's idle lifetime, its refresh tokens' (at
// most 30 minutes, configurable lower).
func refreshLifetime(cfg config.Config) time.Duration {
	if cfg.RefreshTokenLifetime > 0 {
		return cfg.RefreshTokenLifetime
	}
	return 30 * time.Minute
}

// setupDevices wires the device use cases: activation codes (HMAC key
// shared through the database), sealing keys, Argon2id with peppers.
func (a *App) setupDevices(ctx context.Context, cfg config.Config) (*app.Service, error) {
	codeKeys, refreshKeys, err := a.hmacKeys(ctx, cfg)
	if err != nil {
		return nil, err
	}
	codes, err := activation.NewCodes(codeKeys)
	if err != nil {
		return nil, err
	}
	refreshTokens, err := session.NewTokens(refreshKeys)
	if err != nil {
		return nil, err
	}
	ring, err := sealingKeys(cfg, a.log)
	if err != nil {
		return nil, err
	}
	peppers, err := loadPeppers(cfg)
	if err != nil {
		return nil, err
	}
	hasher, err := passcode.NewHasher(passcode.Options{Params: passcode.DefaultParams, Peppers: peppers})
	if err != nil {
		return nil, err
	}
	policy := device.DefaultPolicy
	if cfg.PasscodeBackoff > 0 {
		policy.BaseWait = cfg.PasscodeBackoff
	}
	maxDevices := cfg.MaxDevices
	if maxDevices == 0 {
		maxDevices = 5
	}
	secrets, ok := a.Store.(app.SecretStore)
	if !ok {
		return nil, fmt.Errorf("event store %T cannot store credentials", a.Store)
	}
	a.Hasher = hasher
	return &app.Service{
		Events: a.Store, Secrets: secrets, Registry: events.Default, Models: a.ReadModels, Codes: codes,
		Hasher: hasher, Sealing: ring, Policy: policy, Passcode: passcode.Policy{Digits: 6},
		MaxDevices: maxDevices, ActivationTTL: activationTTL(cfg), Now: cfg.Clock(),
		RefreshTokens: refreshTokens, RefreshLifetime: refreshLifetime(cfg),
		ChallengeLifetime: cfg.ChallengeLifetime, StepUpMaxAge: cfg.StepUpMaxAge, Metrics: a.Metrics,
	}, nil
}

// activationTTL is how long an activation or reset code lives (CONTRACT.md:
// 24 h by default); the HMAC keys that find codes must be kept at least
// this long after they stop making new ones.
func activationTTL(cfg config.Config) time.Duration {
	if cfg.ActivationCodeLifetime > 0 {
		return cfg.ActivationCodeLifetime
	}
	return 24 * time.Hour
}

// sealedLifetime is the longest a sealed value is in use: it is bound to
// one DPoP proof, whose iat is accepted 60 s either way.
const sealedLifetime = 2 * time.Minute

// hmacKeys returns the HMAC key rings of activation codes and refresh
// tokens: one mounted hmac-secret KeySet for both (their HMAC inputs are
// labelled apart), or in dev mode two secrets kept in the database (so
// replicas on one database agree), or generated without a database.
func (a *App) hmacKeys(ctx context.Context, cfg config.Config) (codes, refresh *hmackey.Ring, err error) {
	if cfg.HMACKeysDir != "" {
		r, err := hmackey.Mount(cfg.HMACKeysDir, max(activationTTL(cfg), refreshLifetime(cfg)), mounted.Options{Log: a.log, Now: cfg.Clock()})
		return r, r, err
	}
	if !cfg.Dev {
		return nil, nil, fmt.Errorf("hmac keys: --hmac-keys-dir is required outside dev mode")
	}
	ring := func(name string) (*hmackey.Ring, error) {
		key := make([]byte, 32)
		if a.pool != nil {
			var err error
			if key, err = pgstore.ServerSecret(ctx, a.pool, name); err != nil {
				return nil, err
			}
		} else if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		return hmackey.Static(name, key)
	}
	if codes, err = ring("activation_hmac"); err != nil {
		return nil, nil, err
	}
	if refresh, err = ring("refresh_hmac"); err != nil {
		return nil, nil, err
	}
	return codes, refresh, nil
}

func sealingKeys(cfg config.Config, log *slog.Logger) (*sealing.Ring, error) {
	if cfg.SealingKeysDir != "" {
		return sealing.Mount(cfg.SealingKeysDir, sealedLifetime, mounted.Options{Log: log, Now: cfg.Clock()})
	}
	if !cfg.Dev {
		return nil, fmt.Errorf("sealing keys: --sealing-keys-dir is required outside dev mode")
	}
	k, err := sealing.Generate(sealing.KEMXWing, cfg.Clock()().Add(30*24*time.Hour))
	if err != nil {
		return nil, err
	}
	return sealing.NewRing(k)
}

// loadPeppers reads one pepper per file of PeppersDir; the file name is
// its pepper_id. The current one comes first.
func loadPeppers(cfg config.Config) ([]passcode.Pepper, error) {
	if cfg.PeppersDir == "" {
		if !cfg.Dev {
			return nil, fmt.Errorf("peppers: --peppers-dir is required outside dev mode")
		}
		k := make([]byte, 32)
		if _, err := rand.Read(k); err != nil {
			return nil, err
		}
		return []passcode.Pepper{{ID: "dev", Key: k}}, nil
	}
	entries, err := os.ReadDir(cfg.PeppersDir)
	if err != nil {
		return nil, fmt.Errorf("peppers: %w", err)
	}
	var files []os.DirEntry
	for _, e := range entries {
		// Kubernetes secret volumes also hold ..data links and dot files.
		if !e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			files = append(files, e)
		}
	}
	var current, others []passcode.Pepper
	for _, e := range files {
		key, err := os.ReadFile(filepath.Join(cfg.PeppersDir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("pepper %s: %w", e.Name(), err)
		}
		p := passcode.Pepper{ID: e.Name(), Key: key}
		if e.Name() == cfg.CurrentPepper || (cfg.CurrentPepper == "" && len(files) == 1) {
			current = append(current, p)
		} else {
			others = append(others, p)
		}
	}
	if len(current) != 1 {
		return nil, fmt.Errorf("peppers: current pepper %q not found in %s", cfg.CurrentPepper, cfg.PeppersDir)
	}
	return append(current, others...), nil
}

func signingKeys(cfg config.Config, log *slog.Logger) (keys.Source, error) {
	if cfg.SigningKeysDir != "" {
		return keys.Mount(cfg.SigningKeysDir, cfg.AccessTokenLifetime, mounted.Options{Log: log, Now: cfg.Clock()})
	}
	if !cfg.Dev {
		return nil, fmt.Errorf("signing keys: --signing-keys-dir is required outside dev mode")
	}
	k, err := keys.Generate()
	if err != nil {
		return nil, err
	}
	return keys.NewStatic(k)
}

func loadClients(cfg config.Config) (*oauth.Clients, error) {
	if cfg.ClientsFile != "" {
		return oauth.LoadClients(cfg.ClientsFile)
	}
	if !cfg.Dev {
		return nil, fmt.Errorf("clients: --clients-file is required outside dev mode")
	}
	if cfg.DevAdminSecret == "" {
		return nil, fmt.Errorf("clients: dev mode has no back-office secret")
	}
	return oauth.NewClients([]oauth.ClientConfig{
		{
			ID: DevMobileClient, AuthMethod: oauth.AuthNone,
			GrantTypes: []string{oauth.GrantPasscode, oauth.GrantBiometric, oauth.GrantRefreshToken},
			Resources:  []string{cfg.Issuer + "/v1"},
		},
		{
			ID: DevAdminClient, AuthMethod: oauth.AuthClientSecretBasic, SecretSHA256: oauth.HashSecret(cfg.DevAdminSecret),
			GrantTypes: []string{oauth.GrantClientCredentials}, Scopes: []string{oauth.ScopeAdmin},
			Resources: []string{cfg.Issuer + admin.Resource},
		},
	})
}

// sweepInterval is how often the housekeeping jobs run. None is needed
// for correctness (expiry is enforced on read); they bound tables' sizes
// and write down what has happened.
const sweepInterval = time.Minute

// outboxRetention is how long acknowledged outbox messages are kept, for
// inspection; the subscribers need none of them once acknowledged.
const outboxRetention = 10 * time.Minute

// every runs job once per sweepInterval until ctx is done; a failure is
// logged and the job runs again at the next tick.
func (a *App) every(name string, job func(ctx context.Context) error) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		t := time.NewTicker(sweepInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				if err := job(ctx); err != nil && ctx.Err() == nil {
					a.log.WarnContext(ctx, name, "err", err)
				}
			}
		}
	}
}

// pruneOutboxJob deletes acknowledged outbox messages, so the outbox does
// not grow by a row per event forever.
func (a *App) pruneOutboxJob(ctx context.Context) error {
	_, err := a.pruneOutbox(ctx, outboxRetention)
	return err
}

func (a *App) sweepOneTimeJob(ctx context.Context) error {
	_, err := a.onetime.Sweep(ctx)
	return err
}

// codeLimiter limits activation-code attempts per client address and in
// all, per minute (token buckets whose burst is a quarter of the minute).
func codeLimiter(cfg config.Config) *ratelimit.Limiter {
	perIP, total := cfg.CodeAttemptsPerIP, cfg.CodeAttemptsTotal
	if perIP == 0 {
		perIP = 20
	}
	if total == 0 {
		total = 1200
	}
	return ratelimit.New(rate.Limit(float64(perIP)/60), max(5, perIP/4), rate.Limit(float64(total)/60), max(5, total/4))
}

// challengeLimiter allows each device key 30 challenges a minute by
// default, in bursts of a third of that: far more than a person confirms,
// few enough that no device can fill the event log with them. The total is
// left to capacity.
func challengeLimiter(cfg config.Config) *ratelimit.Limiter {
	perMinute := cfg.ChallengesPerMinute
	if perMinute == 0 {
		perMinute = 30
	}
	return ratelimit.New(rate.Limit(float64(perMinute)/60), max(1, perMinute/3), rate.Inf, 0)
}

// sweepUnfinishedDevices revokes, once a minute, devices that did not set
// a passcode within the deadline (setting one late is refused anyway; this
// frees the user's device slot), and records sessions that have ended by
// their own timestamps as session.expired.
func (a *App) sweepUnfinishedDevices(ctx context.Context) error {
	ctx = eventstore.WithActor(ctx, eventstore.Actor{Kind: "system", ID: "authd"})
	var errs []error
	if n, err := a.Devices.RevokeUnfinished(ctx); err != nil {
		errs = append(errs, fmt.Errorf("revoke unfinished devices: %w", err))
	} else if n > 0 {
		a.log.InfoContext(ctx, "revoked devices without a passcode", "count", n)
	}
	if n, err := a.Devices.ExpireSessions(ctx); err != nil {
		errs = append(errs, fmt.Errorf("expire sessions: %w", err))
	} else if n > 0 {
		a.log.InfoContext(ctx, "recorded expired sessions", "count", n)
	}
	return errors.Join(errs...)
}
