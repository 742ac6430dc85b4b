package devmode

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// AdminSecretFile is the name of the file, in the dev state directory, that
// holds the generated secret of the back-office client.
const AdminSecretFile = "back-office-client-secret"

// AdminSecret returns the dev back-office client's secret and the file it
// was written to. A secret given in the environment (fromEnv, from
// STRONGROOM_DEV_ADMIN_SECRET) is returned as is, with no file. Otherwise 32
// random bytes (unpadded base64url) are written to a new 0600 file in dir
// (a new temporary directory when dir is empty), replacing any earlier one.
//
// Callers log the path, never the secret: whoever may read the logs is not
// necessarily whoever may call the admin API.
func AdminSecret(fromEnv, dir string) (secret, path string, err error) {
	if fromEnv != "" {
		return fromEnv, "", nil
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", "", fmt.Errorf("generate dev admin secret: %w", err)
	}
	secret = base64.RawURLEncoding.EncodeToString(raw[:])

	if dir == "" {
		if dir, err = os.MkdirTemp("", "strongroom-dev-"); err != nil {
			return "", "", fmt.Errorf("create dev state directory: %w", err)
		}
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("create dev state directory: %w", err)
	}
	if err := checkPrivateDir(dir); err != nil {
		return "", "", err
	}
	path = filepath.Join(dir, AdminSecretFile)
	if err := writePrivate(path, secret); err != nil {
		return "", "", err
	}
	return secret, path, nil
}

// checkPrivateDir refuses a state directory that others could write to (or
// that another user owns): they could swap the secret file for their own.
func checkPrivateDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("dev state directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("dev state directory %s is not a directory", dir)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("dev state directory %s is writable by group or others (mode %v): use a private directory", dir, fi.Mode().Perm())
	}
	return checkOwner(dir, fi)
}

// writePrivate writes s to a 0600 file at path atomically: through a new
// temporary file renamed over path, so a pre-existing file or symlink at
// path is replaced, never written through, and a reader never sees half a
// secret.
func writePrivate(path, s string) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("write dev admin secret: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return fmt.Errorf("write dev admin secret: %w", err)
	}
	if _, err := f.WriteString(s); err != nil {
		return fmt.Errorf("write dev admin secret: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write dev admin secret: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write dev admin secret: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write dev admin secret: %w", err)
	}
	return nil
}

// errNotOwner is returned for a state directory owned by another user.
var errNotOwner = errors.New("dev state directory is owned by another user")
