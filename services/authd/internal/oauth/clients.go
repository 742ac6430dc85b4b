package oauth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"

	josev3 "github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"
	"go.yaml.in/yaml/v3"
)

// Grant types (CONTRACT.md, Token endpoint).
const (
	GrantPasscode          = "urn:strongroom:params:oauth:grant-type:passcode"
	GrantBiometric         = "urn:strongroom:params:oauth:grant-type:biometric-signature"
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
)

// Token endpoint authentication methods.
const (
	AuthNone              = "none"
	AuthClientSecretBasic = "client_secret_basic"
	AuthPrivateKeyJWT     = "private_key_jwt"
)

// ScopeAdmin is the scope of back-office clients.
const ScopeAdmin = "strongroom:admin"

// ClientConfig is one client in the clients file. Secrets are never in the
// file: SecretSHA256 is the unpadded base64url SHA-256 of a generated,
// high-entropy secret (≥ 256 bits), which is what makes a fast hash safe
// here (fosite's default bcrypt-12 costs ~300 ms of CPU per request).
type ClientConfig struct {
	ID           string `yaml:"client_id"`
	AuthMethod   string `yaml:"token_endpoint_auth_method"`
	SecretSHA256 string `yaml:"client_secret_sha256,omitempty"`
	// RotatedSecretSHA256 keeps a previous secret valid while it rotates.
	RotatedSecretSHA256 []string `yaml:"rotated_client_secret_sha256,omitempty"`
	// JWKS holds the client's public keys for private_key_jwt.
	JWKS       map[string]any `yaml:"jwks,omitempty"`
	SigningAlg string         `yaml:"token_endpoint_auth_signing_alg,omitempty"`
	GrantTypes []string       `yaml:"grant_types"`
	Scopes     []string       `yaml:"scopes"`
	// Resources are the audiences (RFC 8707) this client's tokens may
	// carry; a token gets all of them unless the request names some.
	Resources []string `yaml:"resources"`
}

// ClientsFile is the YAML document of --clients-file.
type ClientsFile struct {
	Clients []ClientConfig `yaml:"clients"`
}

// Client is a configured client.
type Client struct {
	*fosite.DefaultOpenIDConnectClient
}

// IsPublic reports whether the client authenticates with no secret.
func (c *Client) IsPublic() bool { return c.TokenEndpointAuthMethod == AuthNone }

// LoadClients reads and validates a clients file.
func LoadClients(path string) (*Clients, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("clients file: %w", err)
	}
	var f ClientsFile
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("clients file %s: %w", path, err)
	}
	return NewClients(f.Clients)
}

// Clients is the client registry; it implements fosite.ClientManager's
// lookup half.
type Clients struct {
	byID map[string]*Client
}

var knownGrants = []string{GrantPasscode, GrantBiometric, GrantRefreshToken, GrantClientCredentials}

// NewClients validates client configurations and builds the registry.
func NewClients(cfgs []ClientConfig) (*Clients, error) {
	cs := &Clients{byID: map[string]*Client{}}
	for _, c := range cfgs {
		if err := validateClient(c); err != nil {
			return nil, fmt.Errorf("client %q: %w", c.ID, err)
		}
		if _, dup := cs.byID[c.ID]; dup {
			return nil, fmt.Errorf("client %q: listed twice", c.ID)
		}
		dc := &fosite.DefaultClient{
			ID: c.ID, GrantTypes: c.GrantTypes, Scopes: c.Scopes, Audience: c.Resources,
			Public: c.AuthMethod == AuthNone, ResponseTypes: []string{},
		}
		if c.SecretSHA256 != "" {
			h, _ := base64.RawURLEncoding.DecodeString(c.SecretSHA256)
			dc.Secret = h
			for _, r := range c.RotatedSecretSHA256 {
				rh, _ := base64.RawURLEncoding.DecodeString(r)
				dc.RotatedSecrets = append(dc.RotatedSecrets, rh)
			}
		}
		oc := &fosite.DefaultOpenIDConnectClient{DefaultClient: dc, TokenEndpointAuthMethod: c.AuthMethod}
		if c.AuthMethod == AuthPrivateKeyJWT {
			raw, _ := json.Marshal(c.JWKS)
			var set josev3.JSONWebKeySet
			if err := json.Unmarshal(raw, &set); err != nil {
				return nil, fmt.Errorf("client %q: jwks: %w", c.ID, err)
			}
			oc.JSONWebKeys = &set
			oc.TokenEndpointAuthSigningAlgorithm = c.SigningAlg
		}
		cs.byID[c.ID] = &Client{DefaultOpenIDConnectClient: oc}
	}
	return cs, nil
}

func validateClient(c ClientConfig) error {
	if c.ID == "" || len(c.ID) > 128 {
		return errors.New("client_id must be 1..128 characters")
	}
	for _, g := range c.GrantTypes {
		if !slices.Contains(knownGrants, g) {
			return fmt.Errorf("unknown grant type %q", g)
		}
	}
	if len(c.GrantTypes) == 0 {
		return errors.New("grant_types is empty")
	}
	for _, r := range c.Resources {
		u, err := url.Parse(r)
		if err != nil || !u.IsAbs() || u.Fragment != "" {
			return fmt.Errorf("resource %q: want an absolute URI without fragment (RFC 8707 §2)", r)
		}
	}
	if len(c.Resources) == 0 {
		return errors.New("resources is empty: tokens need an audience")
	}
	switch c.AuthMethod {
	case AuthNone:
		if c.SecretSHA256 != "" || c.JWKS != nil {
			return errors.New("a public client has no secret and no keys")
		}
		if slices.Contains(c.GrantTypes, GrantClientCredentials) {
			return errors.New("a public client cannot use client_credentials")
		}
	case AuthClientSecretBasic:
		for _, h := range append([]string{c.SecretSHA256}, c.RotatedSecretSHA256...) {
			if b, err := base64.RawURLEncoding.DecodeString(h); err != nil || len(b) != sha256.Size {
				return errors.New("client_secret_sha256 must be the unpadded base64url SHA-256 of the secret")
			}
		}
	case AuthPrivateKeyJWT:
		if c.JWKS == nil {
			return errors.New("private_key_jwt needs jwks")
		}
		if c.SigningAlg != "ES256" && c.SigningAlg != "PS256" && c.SigningAlg != "RS256" {
			return errors.New("token_endpoint_auth_signing_alg must be ES256, PS256 or RS256")
		}
	default:
		return fmt.Errorf("token_endpoint_auth_method %q: want none, client_secret_basic or private_key_jwt", c.AuthMethod)
	}
	return nil
}

// Get returns a client by id.
func (cs *Clients) Get(id string) (*Client, bool) {
	c, ok := cs.byID[id]
	return c, ok
}

// HashSecret returns what client_secret_sha256 holds for a secret.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// SecretHasher is fosite's client-secret hasher for generated secrets:
// SHA-256, compared in constant time. Brute force is hopeless against
// 256-bit random secrets, so a slow hash would only cost CPU.
type SecretHasher struct{}

// Compare implements fosite.Hasher.
func (SecretHasher) Compare(_ context.Context, hash, data []byte) error {
	sum := sha256.Sum256(data)
	if len(hash) != sha256.Size || subtle.ConstantTimeCompare(hash, sum[:]) != 1 {
		return errors.New("client secret mismatch")
	}
	return nil
}

// Hash implements fosite.Hasher.
func (SecretHasher) Hash(_ context.Context, data []byte) ([]byte, error) {
	sum := sha256.Sum256(data)
	return sum[:], nil
}
