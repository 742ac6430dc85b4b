package rsverify

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	// maxDocumentSize bounds metadata and JWKS responses: the issuer is
	// trusted, the network and whatever sits between may not be.
	maxDocumentSize = 1 << 20
	// maxMaxAge caps Cache-Control max-age so a misconfigured issuer cannot
	// pin stale keys for days.
	maxMaxAge = 24 * time.Hour
)

// discoverJWKS reads jwks_uri from the issuer's authorization server
// metadata (RFC 8414 §3). The well-known path is inserted between host and
// path as RFC 8414 §3.1 says; for an issuer with a path, the form that
// appends it to the issuer (common in OpenID Connect deployments) is tried
// next. For an issuer without a path both are the same URL.
func discoverJWKS(ctx context.Context, client *http.Client, issuer string) (string, error) {
	u, err := url.Parse(issuer)
	if err != nil {
		return "", fmt.Errorf("rsverify: issuer: %w", err)
	}
	const wellKnown = "/.well-known/oauth-authorization-server"
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	candidates := []string{u.Scheme + "://" + u.Host + wellKnown + path}
	if path != "" {
		candidates = append(candidates, strings.TrimSuffix(issuer, "/")+wellKnown)
	}
	var lastErr error
	for _, c := range candidates {
		body, _, err := fetch(ctx, client, c)
		if err != nil {
			lastErr = err
			continue
		}
		var md struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		if err := json.Unmarshal(body, &md); err != nil {
			return "", fmt.Errorf("rsverify: metadata %s: %w", c, err)
		}
		// RFC 8414 §3.3: the metadata must name the very issuer it was
		// fetched for, or a compromised or misrouted document could point
		// to someone else's keys.
		if md.Issuer != issuer {
			return "", fmt.Errorf("rsverify: metadata %s names issuer %q, want %q", c, md.Issuer, issuer)
		}
		if md.JWKSURI == "" {
			return "", fmt.Errorf("rsverify: metadata %s has no jwks_uri", c)
		}
		return md.JWKSURI, nil
	}
	return "", fmt.Errorf("rsverify: discovery: %w", lastErr)
}

// fetch GETs a JSON document and returns its body and response headers.
func fetch(ctx context.Context, client *http.Client, u string) ([]byte, http.Header, error) {
	ctx, cancel := context.WithTimeout(ctx, DefaultHTTPTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", u, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDocumentSize))
		return nil, nil, fmt.Errorf("GET %s: status %s", u, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDocumentSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if len(body) > maxDocumentSize {
		return nil, nil, fmt.Errorf("GET %s: response larger than %d bytes", u, maxDocumentSize)
	}
	return body, resp.Header, nil
}

// keySet is the cached JWKS: the token-signing keys by kid.
//
// Reads take mu only briefly; fetches are serialized by fetchMu, so that a
// burst of requests with an unknown kid makes one fetch, not one per
// request, and verifications with known keys never wait for the network.
type keySet struct {
	client     *http.Client
	url        string
	minRefresh time.Duration
	now        func() time.Time

	fetchMu sync.Mutex

	mu          sync.RWMutex
	keys        map[string]*ecdsa.PublicKey
	expires     time.Time // the response's max-age runs out
	lastAttempt time.Time // last fetch, successful or not
}

// load fetches the JWKS; used by New, where a failure is an error.
func (s *keySet) load(ctx context.Context) error {
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	now := s.now()
	keys, maxAge, err := s.fetchKeys(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastAttempt = now
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		return fmt.Errorf("rsverify: JWKS %s has no usable ES256 key", s.url)
	}
	s.keys, s.expires = keys, now.Add(maxAge)
	return nil
}

// key returns the key named kid, refetching the JWKS when the cache has
// expired or kid is unknown (key rotation: the issuer publishes new keys
// ahead of use, but a resource server may have fetched just before).
func (s *keySet) key(ctx context.Context, kid string) (*ecdsa.PublicKey, error) {
	s.mu.RLock()
	k, fresh := s.keys[kid], s.now().Before(s.expires)
	s.mu.RUnlock()
	if k != nil && fresh {
		return k, nil
	}
	s.refresh(ctx, kid)
	s.mu.RLock()
	k = s.keys[kid]
	s.mu.RUnlock()
	if k == nil {
		return nil, invalidToken("kid not in the issuer's JWKS")
	}
	return k, nil
}

// refresh fetches the JWKS unless another goroutine just did, or the last
// attempt is more recent than minRefresh. On failure the previous keys stay
// in use: an unreachable issuer must not take the API down while its keys
// are still the right ones (tokens live minutes; keys rotate in days).
func (s *keySet) refresh(ctx context.Context, kid string) {
	s.fetchMu.Lock()
	defer s.fetchMu.Unlock()
	now := s.now()
	s.mu.RLock()
	_, known := s.keys[kid]
	fresh := now.Before(s.expires)
	last := s.lastAttempt
	s.mu.RUnlock()
	if known && fresh {
		return // fetched while this goroutine waited for fetchMu
	}
	if now.Sub(last) < s.minRefresh {
		return
	}
	// The fetch is shared by every waiting request: do not let the one
	// that triggered it cancel it for all.
	keys, maxAge, err := s.fetchKeys(context.WithoutCancel(ctx))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastAttempt = now
	if err == nil {
		s.keys, s.expires = keys, now.Add(maxAge)
	}
}

// fetchKeys fetches and parses the JWKS; maxAge is from Cache-Control, at
// least minRefresh.
func (s *keySet) fetchKeys(ctx context.Context) (map[string]*ecdsa.PublicKey, time.Duration, error) {
	body, header, err := fetch(ctx, s.client, s.url)
	if err != nil {
		return nil, 0, fmt.Errorf("rsverify: JWKS: %w", err)
	}
	keys, err := parseJWKS(body)
	if err != nil {
		return nil, 0, fmt.Errorf("rsverify: JWKS %s: %w", s.url, err)
	}
	return keys, max(maxAge(header), s.minRefresh), nil
}

// parseJWKS keeps the keys that can verify an ES256 access token: EC P-256
// public keys with a kid, use "sig" or none, alg "ES256" or none (RFC 7517
// §4.2-4.5). Other keys are skipped (RFC 7517 §5: ignore what is not
// understood); a kid that appears twice keeps its first key.
func parseJWKS(body []byte) (map[string]*ecdsa.PublicKey, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, errors.New("not a JWK Set")
	}
	out := make(map[string]*ecdsa.PublicKey)
	for _, raw := range set.Keys {
		var k struct {
			Kty, Crv, X, Y, Kid, Use, Alg string
			D                             json.RawMessage `json:"d"`
		}
		if json.Unmarshal(raw, &k) != nil || k.Kty != "EC" || k.Crv != "P-256" || k.Kid == "" ||
			(k.Use != "" && k.Use != "sig") || (k.Alg != "" && k.Alg != "ES256") || k.D != nil {
			continue
		}
		if _, dup := out[k.Kid]; dup {
			continue
		}
		x, errX := base64.RawURLEncoding.DecodeString(k.X)
		y, errY := base64.RawURLEncoding.DecodeString(k.Y)
		if errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
			continue
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			continue
		}
		out[k.Kid] = pub
	}
	return out, nil
}

// maxAge reads Cache-Control max-age (RFC 9111 §5.2.2.1). no-store and
// no-cache mean "fetch again as soon as allowed"; absent means DefaultMaxAge.
func maxAge(h http.Header) time.Duration {
	for _, v := range h.Values("Cache-Control") {
		for _, d := range strings.Split(v, ",") {
			d = strings.ToLower(strings.TrimSpace(d))
			if d == "no-store" || d == "no-cache" {
				return 0
			}
			if n, ok := strings.CutPrefix(d, "max-age="); ok {
				secs, err := strconv.ParseInt(strings.Trim(n, `"`), 10, 64)
				if err != nil || secs < 0 {
					return 0
				}
				return time.Duration(min(secs, int64(maxMaxAge/time.Second))) * time.Second
			}
		}
	}
	return DefaultMaxAge
}
