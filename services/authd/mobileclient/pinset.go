package mobileclient

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"io"
	"net/http"

	"strongroom.dev/api/pinset"
)

// PinSet fetches /.well-known/pinset.json and verifies it the way an app
// must before trusting its pins: signed by one of the manifest keys the
// app ships (by kid), not expired, and not older than the version the app
// already holds (held; 0 for none). Because it is signed, it may be fetched
// over a connection that is not pinned; on any error the app keeps the pins
// it has (at worst the ones compiled into it).
func (c *Client) PinSet(ctx context.Context, manifest map[string]*ecdsa.PublicKey, held int64) (*pinset.Set, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Issuer+"/.well-known/pinset.json", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("pin set: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10+1))
	if err != nil {
		return nil, fmt.Errorf("pin set: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New("pin set: " + resp.Status)
	}
	return pinset.Verify(string(body), manifest, held, c.now())
}
