package dpop

import (
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// normalizeHTU turns an http(s) URL into the form used to compare htu with
// the request URL: RFC 9449 §4.3 check 9 asks for syntax-based and
// scheme-based normalization (RFC 3986 §6.2.2, §6.2.3):
//
//   - scheme and host lower-cased;
//   - the scheme's default port (:80, :443) and an empty port removed;
//   - percent-encoding with upper-case hex, unreserved characters decoded;
//   - dot segments removed, an empty path made "/".
//
// With stripQuery (the server's own URL) a query and fragment are dropped;
// without it (the client's htu claim) they make the URL invalid, as the
// contract says htu has neither. Errors are fixed strings: the URL is never
// echoed.
func normalizeHTU(raw string, stripQuery bool) (string, error) {
	if raw == "" {
		return "", errors.New("empty")
	}
	if !stripQuery && strings.ContainsAny(raw, "?#") {
		return "", errors.New("has a query or fragment")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", errors.New("does not parse")
	}
	scheme := strings.ToLower(u.Scheme)
	var defaultPort string
	switch scheme {
	case "https":
		defaultPort = "443"
	case "http":
		defaultPort = "80"
	default:
		return "", errors.New("scheme is not http or https")
	}
	if u.Opaque != "" || u.Host == "" {
		return "", errors.New("not an absolute URL with a host")
	}
	if u.User != nil {
		// RFC 9110 §4.2.4: userinfo is deprecated in http(s) URIs.
		return "", errors.New("has userinfo")
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return "", errors.New("empty host")
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]" // IPv6 literal, Hostname stripped the brackets
	}
	port := u.Port()
	if port != "" {
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			return "", errors.New("invalid port")
		}
		port = strconv.FormatUint(n, 10) // RFC 3986 §6.2.2: "0443" is "443"
	}
	if port != "" && port != defaultPort {
		host = net.JoinHostPort(strings.Trim(host, "[]"), port)
	}
	path, err := normalizePercent(u.EscapedPath())
	if err != nil {
		return "", err
	}
	path = removeDotSegments(path)
	if path == "" {
		path = "/"
	}
	return scheme + "://" + host + path, nil
}

// normalizePercent upper-cases the hex digits of percent-encoded octets and
// decodes those that encode unreserved characters (RFC 3986 §2.3, §6.2.2.1-2),
// so "%7e", "%7E" and "~" compare equal.
func normalizePercent(s string) (string, error) {
	if !strings.Contains(s, "%") {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			return "", errors.New("bad percent-encoding")
		}
		c := unhex(s[i+1])<<4 | unhex(s[i+2])
		if isUnreserved(c) {
			b.WriteByte(c)
		} else {
			const hex = "0123456789ABCDEF"
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
		i += 2
	}
	return b.String(), nil
}

// removeDotSegments is RFC 3986 §5.2.4.
func removeDotSegments(in string) string {
	if !strings.Contains(in, ".") {
		return in
	}
	var out []string // output segments, each with its leading "/"
	for in != "" {
		switch {
		case strings.HasPrefix(in, "../"):
			in = in[3:]
		case strings.HasPrefix(in, "./"):
			in = in[2:]
		case strings.HasPrefix(in, "/./"):
			in = in[2:]
		case in == "/.":
			in = "/"
		case strings.HasPrefix(in, "/../"):
			in = in[3:]
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		case in == "/..":
			in = "/"
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		case in == "." || in == "..":
			in = ""
		default:
			start := 0
			if in[0] == '/' {
				start = 1
			}
			end := strings.IndexByte(in[start:], '/')
			if end < 0 {
				end = len(in)
			} else {
				end += start
			}
			out = append(out, in[:end])
			in = in[end:]
		}
	}
	return strings.Join(out, "")
}

func isHex(c byte) bool {
	return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F')
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

func isUnreserved(c byte) bool {
	return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') ||
		c == '-' || c == '.' || c == '_' || c == '~'
}
