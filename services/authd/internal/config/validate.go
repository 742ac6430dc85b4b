package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// validate checks the settings against each other, normalises the listen
// addresses and fills in the defaults that depend on other settings.
func (c *Config) validate() error {
	var errs []error
	listen, err := checkListen("--listen (STRONGROOM_LISTEN)", c.Listen, c.Dev)
	if err != nil {
		errs = append(errs, err)
	}
	admin, aerr := checkListen("--admin-listen (STRONGROOM_ADMIN_LISTEN)", c.AdminListen, c.Dev)
	if aerr != nil {
		errs = append(errs, aerr)
	}
	if err == nil && aerr == nil {
		c.Listen, c.AdminListen = listen, admin
		if listen == admin && !strings.HasSuffix(listen, ":0") {
			errs = append(errs, fmt.Errorf("--listen and --admin-listen are both %q: the internal listener needs its own address", listen))
		}
	}

	if c.Dev {
		if c.TLSCertFile != "" || c.TLSKeyFile != "" {
			errs = append(errs, errors.New("--tls-cert-file and --tls-key-file cannot be used with --dev: dev mode generates its own certificate"))
		}
		if c.Issuer == "" && err == nil && !strings.HasSuffix(c.Listen, ":0") {
			c.Issuer = "https://" + c.Listen
		}
		if c.AdminURL == "" && aerr == nil && !strings.HasSuffix(c.AdminListen, ":0") {
			c.AdminURL = "https://" + c.AdminListen
		}
	} else {
		if c.DatabaseURL == "" {
			errs = append(errs, errors.New("--database-url (or DATABASE_URL) is required outside dev mode"))
		}
		if c.TLSCertFile == "" || c.TLSKeyFile == "" {
			errs = append(errs, errors.New("--tls-cert-file and --tls-key-file (STRONGROOM_TLS_CERT_FILE, STRONGROOM_TLS_KEY_FILE) are required outside dev mode"))
		}
		if c.Issuer == "" {
			errs = append(errs, errors.New("--issuer (STRONGROOM_ISSUER) is required outside dev mode"))
		}
		if c.AdminURL == "" {
			errs = append(errs, errors.New("--admin-url (STRONGROOM_ADMIN_URL) is required outside dev mode"))
		}
		if c.ClientsFile == "" {
			errs = append(errs, errors.New("--clients-file (STRONGROOM_CLIENTS_FILE) is required outside dev mode"))
		}
		if c.SigningKeysDir == "" {
			errs = append(errs, errors.New("--signing-keys-dir (STRONGROOM_SIGNING_KEYS_DIR) is required outside dev mode"))
		}
		if c.SealingKeysDir == "" {
			errs = append(errs, errors.New("--sealing-keys-dir (STRONGROOM_SEALING_KEYS_DIR) is required outside dev mode"))
		}
		if c.HMACKeysDir == "" {
			errs = append(errs, errors.New("--hmac-keys-dir (STRONGROOM_HMAC_KEYS_DIR) is required outside dev mode"))
		}
		if c.PeppersDir == "" {
			errs = append(errs, errors.New("--peppers-dir (STRONGROOM_PEPPERS_DIR) is required outside dev mode"))
		}
		if c.DevAdminSecret != "" {
			errs = append(errs, errors.New("STRONGROOM_DEV_ADMIN_SECRET is set but --dev is not: refusing to run a production server with a dev secret in its environment"))
		}
	}
	if c.Issuer != "" {
		if err := checkIssuer(c.Issuer); err != nil {
			errs = append(errs, fmt.Errorf("--issuer (STRONGROOM_ISSUER) %q: %w", c.Issuer, err))
		}
	}
	if c.AdminURL != "" {
		if err := checkIssuer(c.AdminURL); err != nil {
			errs = append(errs, fmt.Errorf("--admin-url (STRONGROOM_ADMIN_URL) %q: %w", c.AdminURL, err))
		}
	}
	if c.DatabaseURL != "" {
		if err := checkDSN(c.DatabaseURL); err != nil {
			errs = append(errs, fmt.Errorf("--database-url (DATABASE_URL): %w", err))
		}
	} else if c.MigrateOnStart {
		errs = append(errs, errors.New("--migrate-on-start needs a database (--database-url or DATABASE_URL)"))
	}
	return errors.Join(errs...)
}

// checkListen validates a host:port listen address and returns it
// normalised. In dev mode only loopback is allowed (CONTRACT.md, Dev mode):
// an empty host or "localhost" becomes 127.0.0.1, any other name, any
// non-loopback IP and any zoned IP is refused.
func checkListen(name, addr string, dev bool) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("%s %q: want host:port, e.g. 127.0.0.1:8443", name, addr)
	}
	if !validPort(port) {
		return "", fmt.Errorf("%s %q: port must be a number from 0 to 65535", name, addr)
	}
	if !dev {
		if host == "" {
			return addr, nil
		}
		if ip, err := netip.ParseAddr(host); err == nil {
			return net.JoinHostPort(ip.String(), port), nil
		}
		if !validHostname(host) {
			return "", fmt.Errorf("%s %q: host must be an IP address or a DNS name", name, addr)
		}
		return addr, nil
	}

	refuse := fmt.Errorf("%s %q: dev mode refuses non-loopback addresses: listen on 127.0.0.1 or [::1]", name, addr)
	switch {
	case host == "" || strings.EqualFold(host, "localhost"):
		return net.JoinHostPort("127.0.0.1", port), nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Zone() != "" || !ip.Unmap().IsLoopback() {
		return "", refuse
	}
	return net.JoinHostPort(ip.Unmap().String(), port), nil
}

func validPort(p string) bool {
	if p == "" || len(p) > 5 {
		return false
	}
	for _, r := range p {
		if r < '0' || r > '9' {
			return false
		}
	}
	n, err := strconv.Atoi(p)
	return err == nil && n <= 65535
}

// validHostname accepts DNS names (RFC 1123 labels); anything else would
// fail later in a less clear way, or not at all.
func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// checkIssuer enforces RFC 8414 §2: "a case-sensitive URL that uses the
// https scheme and has no query or fragment components". A trailing slash
// is refused too: iss is compared byte for byte, and "https://a/" versus
// "https://a" is the classic mismatch.
func checkIssuer(iss string) error {
	u, err := url.Parse(iss)
	switch {
	case err != nil:
		return errors.New("not a URL")
	case u.Scheme != "https":
		return errors.New("must be an https URL")
	case u.Opaque != "" || u.Hostname() == "":
		return errors.New("must name a host")
	case u.User != nil:
		return errors.New("must not contain user information")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.ContainsAny(iss, "?#"):
		return errors.New("must not have a query or fragment")
	case strings.HasSuffix(iss, "/"):
		return errors.New("must not end with a slash")
	}
	return nil
}

// checkDSN catches the mistakes that are obvious without connecting. Its
// errors never contain the string, which may hold a password.
func checkDSN(dsn string) error {
	if strings.Contains(dsn, "://") {
		u, err := url.Parse(dsn)
		if err != nil {
			return errors.New("not a valid URL")
		}
		if u.Scheme != "postgres" && u.Scheme != "postgresql" {
			return errors.New("URL scheme must be postgres or postgresql")
		}
		return nil
	}
	if !strings.Contains(dsn, "=") {
		return errors.New("want a postgres:// URL or key=value pairs")
	}
	return nil
}
