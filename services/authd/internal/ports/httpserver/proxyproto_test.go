package httpserver

import (
	"bufio"
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"strongroom.dev/services/authd/internal/eventstore"
)

// proxied opens a TCP connection to addr, writes header (raw bytes, may be
// nil), then asks for GET /ip over TLS and returns the answer's body; err
// is any failure on the way (the server dropping the connection).
func proxied(t *testing.T, h *harness, addr string, header []byte) (string, error) {
	t.Helper()
	raw, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
	if header != nil {
		if _, err := raw.Write(header); err != nil {
			return "", err
		}
	}
	conn := tls.Client(raw, &tls.Config{RootCAs: h.pool, ServerName: "127.0.0.1"})
	if err := conn.Handshake(); err != nil {
		return "", err
	}
	req, _ := http.NewRequest(http.MethodGet, "https://"+addr+"/ip", nil)
	if err := req.Write(conn); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var b strings.Builder
	_, err = bufio.NewReader(resp.Body).WriteTo(&b)
	return b.String(), err
}

// headerBytes is a PROXY protocol header of the given version from src to
// dst.
func headerBytes(t *testing.T, version byte, src, dst string) []byte {
	t.Helper()
	s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
	h := proxyproto.HeaderProxyFromAddrs(version, net.TCPAddrFromAddrPort(s), net.TCPAddrFromAddrPort(d))
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func echoIP(s *Server) {
	s.Public().HandleFunc("GET /ip", func(w http.ResponseWriter, r *http.Request) {
		if p := eventstore.PersonalFrom(r.Context()); p != nil {
			_, _ = w.Write([]byte(p.IP))
		}
	})
}

// TestProxyProtocol: behind TLS passthrough, a trusted balancer's PROXY
// header (v1 or v2) gives the client's IP; a trusted peer without a
// header, an untrusted peer with or without one, and a malformed header
// are all dropped; the internal listener is untouched.
func TestProxyProtocol(t *testing.T) {
	trusting := newHarness(t, Options{ProxyProtocolFrom: []string{"127.0.0.0/8", "::1/128"}}, echoIP)
	addr := trusting.srv.PublicAddr().String()

	for _, c := range []struct {
		name   string
		header []byte
		want   string
	}{
		{"v2, IPv4 client", headerBytes(t, 2, "203.0.113.7:50123", addr), "203.0.113.7"},
		{"v1, IPv4 client", headerBytes(t, 1, "198.51.100.23:40000", addr), "198.51.100.23"},
		{"v2, IPv6 client", headerBytes(t, 2, "[2001:db8::42]:443", "[::1]:8443"), "2001:db8::42"},
		{"v2, IPv4-mapped client", headerBytes(t, 2, "[::ffff:192.0.2.9]:1", "[::1]:8443"), "192.0.2.9"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := proxied(t, trusting, addr, c.header)
			if err != nil || got != c.want {
				t.Fatalf("client IP %q, %v; want %q", got, err, c.want)
			}
		})
	}

	for _, c := range []struct {
		name   string
		header []byte
	}{
		{"trusted peer without a header", nil},
		{"v1 header with a bad address", []byte("PROXY TCP4 999.0.0.1 127.0.0.1 1 2\r\n")},
		{"v1 header without its end", []byte("PROXY TCP4 203.0.113.7 127.0.0.1 1 2 ")},
		{"v1 header, unknown protocol word", []byte("PROXY SCTP 203.0.113.7 127.0.0.1 1 2\r\n")},
		{"v2 signature, then garbage", append([]byte("\r\n\r\n\x00\r\nQUIT\n"), 0x21, 0x11, 0xff, 0xff)},
		{"HTTP where the header belongs", []byte("GET /ip HTTP/1.1\r\nHost: x\r\n\r\n")},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got, err := proxied(t, trusting, addr, c.header); err == nil {
				t.Fatalf("served (client IP %q)", got)
			}
		})
	}

	// The internal listener (probes, admin API) takes plain TLS.
	if resp, _ := trusting.do(t, http.MethodGet, trusting.adminURL("/healthz"), nil, nil); resp.StatusCode != http.StatusOK {
		t.Errorf("internal listener: %d", resp.StatusCode)
	}

	// Loopback is not among the senders: with or without a header, a
	// connection from it is dropped, so no client can claim an IP.
	strict := newHarness(t, Options{ProxyProtocolFrom: []string{"10.0.0.0/8"}}, echoIP)
	saddr := strict.srv.PublicAddr().String()
	if got, err := proxied(t, strict, saddr, headerBytes(t, 2, "203.0.113.7:1", saddr)); err == nil {
		t.Errorf("an untrusted peer's header was served: %q", got)
	}
	if got, err := proxied(t, strict, saddr, nil); err == nil {
		t.Errorf("an untrusted peer without a header was served: %q", got)
	}
	if !strings.Contains(strict.logs.String(), "not a PROXY protocol sender") {
		t.Error("the drop is not in the debug log")
	}
	// And the listener keeps listening after the drops.
	if got, err := proxied(t, trusting, addr, headerBytes(t, 2, "203.0.113.8:1", addr)); err != nil || got != "203.0.113.8" {
		t.Errorf("after the refusals: %q, %v", got, err)
	}

	// Without senders, a header is not understood: TLS fails on it.
	plain := newHarness(t, Options{}, echoIP)
	paddr := plain.srv.PublicAddr().String()
	if got, err := proxied(t, plain, paddr, headerBytes(t, 2, "203.0.113.7:1", paddr)); err == nil {
		t.Errorf("a header was honoured without senders: %q", got)
	}
	if got, err := proxied(t, plain, paddr, nil); err != nil || got != "127.0.0.1" {
		t.Errorf("without senders the client IP is the peer's: %q, %v", got, err)
	}
}

// TestProxyProtocolSendersChecked: New refuses senders it cannot parse.
func TestProxyProtocolSendersChecked(t *testing.T) {
	for _, senders := range [][]string{{"not-an-ip"}, {"10.0.0.0/33"}, {""}} {
		if _, err := New(Options{TLS: &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return nil, nil }},
			ProxyProtocolFrom: senders}); err == nil {
			t.Errorf("senders %q accepted", senders)
		}
	}
}
