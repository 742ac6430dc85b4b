package service

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"strongroom.dev/api/events"
	"strongroom.dev/services/authd/internal/adapters/pgstore"
	"strongroom.dev/services/authd/internal/config"
	"strongroom.dev/services/authd/internal/keys"
	"strongroom.dev/services/authd/internal/oauth"
	"strongroom.dev/services/authd/internal/ports/admin"
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

// servedGrants are the grant types the token endpoint serves today; the
// device grants join as they land.
var servedGrants = []string{oauth.GrantClientCredentials}

// setupOAuth wires the OAuth2 server: signing keys, clients, fosite over
// the event-sourced storage, DPoP nonces and replay memory, the back office.
func (a *App) setupOAuth(ctx context.Context, cfg config.Config) error {
	src, err := signingKeys(cfg)
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
	nonces, err := oauth.NewNonces(nonceKey, time.Now)
	if err != nil {
		return err
	}
	storage := &oauth.Storage{Clients: clients, Events: a.Store, Models: a.ReadModels, Replay: a.onetime, Now: time.Now}
	signer := &oauth.Signer{Keys: src}
	provider, _, err := oauth.NewProvider(oauth.ProviderConfig{Issuer: cfg.Issuer, AccessTokenLifetime: cfg.AccessTokenLifetime}, storage, signer)
	if err != nil {
		return err
	}
	a.OAuth = &oauth.Server{
		Provider: provider, Storage: storage, Signer: signer, Keys: src,
		Proofs:  &oauth.ProofChecker{Nonces: nonces, Replay: a.onetime, Now: time.Now},
		Devices: oauth.StreamDeviceKeys{Events: a.Store, Registry: events.Default},
		Issuer:  cfg.Issuer, AdminURL: cfg.AdminURL, GrantTypes: servedGrants, Log: a.log, Now: time.Now,
	}
	a.Admin = &admin.API{OAuth: a.OAuth, Events: a.Store, Log: a.log}
	return nil
}

func signingKeys(cfg config.Config) (keys.Source, error) {
	if cfg.SigningKeysDir != "" {
		return keys.LoadDir(cfg.SigningKeysDir, cfg.ActiveSigningKey)
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

// sweepInterval is how often expired one-time values are deleted; expiry
// is enforced on read, so this only bounds the table's size.
const sweepInterval = time.Minute

func (a *App) sweepOneTime(ctx context.Context) error {
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if _, err := a.onetime.Sweep(ctx); err != nil && ctx.Err() == nil {
				a.log.WarnContext(ctx, "sweep one-time values", "err", err)
			}
		}
	}
}
