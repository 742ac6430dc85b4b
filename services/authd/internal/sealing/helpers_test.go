package sealing

import (
	"crypto/hpke"
	"testing"
)

func mustKDF(t *testing.T, id uint16) hpke.KDF {
	t.Helper()
	k, err := hpke.NewKDF(id)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustAEAD(t *testing.T, id uint16) hpke.AEAD {
	t.Helper()
	a, err := hpke.NewAEAD(id)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func newRecipientForTest(enc []byte, k *Key, kdf hpke.KDF, aead hpke.AEAD, info []byte) (*hpke.Recipient, error) {
	return hpke.NewRecipient(enc, k.priv, kdf, aead, info)
}
