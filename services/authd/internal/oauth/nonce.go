package oauth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"sync/atomic"
	"time"
)

// NonceWindow is how long one DPoP nonce epoch lasts; a nonce is accepted
// in its epoch and the next, so it lives 1–2 windows.
const NonceWindow = time.Minute

// Nonces issues and checks server DPoP nonces (RFC 9449 §8) without state:
// a nonce is an epoch number and its HMAC under a key every replica
// shares, so a nonce from one replica is good at all of them.
type Nonces struct {
	key []byte
	now func() time.Time

	// last is the most recent epoch's MAC: every token response issues
	// the current nonce and every grant checks one, mostly of the same
	// epoch, so it is computed once per epoch, not twice per request.
	last atomic.Pointer[epochMAC]
}

type epochMAC struct {
	epoch uint64
	mac   []byte // epoch ‖ MAC, the nonce's bytes; never modified
}

// NewNonces returns a nonce source with a shared key of at least 32 bytes.
func NewNonces(key []byte, now func() time.Time) (*Nonces, error) {
	if len(key) < 32 {
		return nil, errors.New("DPoP nonce key must be at least 32 bytes")
	}
	return &Nonces{key: key, now: now}, nil
}

func (n *Nonces) epoch(t time.Time) uint64 { return uint64(t.Unix()) / uint64(NonceWindow/time.Second) }

// mac returns the nonce bytes of epoch (not to be modified).
func (n *Nonces) mac(epoch uint64) []byte {
	if m := n.last.Load(); m != nil && m.epoch == epoch {
		return m.mac
	}
	out := n.computeMAC(epoch)
	if m := n.last.Load(); m == nil || m.epoch < epoch {
		n.last.Store(&epochMAC{epoch: epoch, mac: out})
	}
	return out
}

func (n *Nonces) computeMAC(epoch uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], epoch)
	m := hmac.New(sha256.New, n.key)
	m.Write([]byte("strongroom/dpop-nonce/v1"))
	m.Write(b[:])
	return append(b[:], m.Sum(nil)[:16]...)
}

// Issue returns the current nonce.
func (n *Nonces) Issue() string {
	return base64.RawURLEncoding.EncodeToString(n.mac(n.epoch(n.now())))
}

// ErrBadNonce is returned for a missing, malformed, forged or stale nonce.
var ErrBadNonce = errors.New("DPoP nonce missing or stale")

// Check accepts a nonce of the current or the previous epoch.
func (n *Nonces) Check(nonce string) error {
	raw, err := base64.RawURLEncoding.DecodeString(nonce)
	if err != nil || len(raw) != 24 {
		return ErrBadNonce
	}
	e := binary.BigEndian.Uint64(raw[:8])
	cur := n.epoch(n.now())
	if e != cur && e+1 != cur {
		return ErrBadNonce
	}
	if !hmac.Equal(raw, n.mac(e)) {
		return ErrBadNonce
	}
	return nil
}
