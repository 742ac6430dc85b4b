package httpserver

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/pires/go-proxyproto"
)

// proxyListener admits connections only from the PROXY protocol senders
// (the load balancers) and requires each to open with a header (v1 or
// v2), whose source address then is the connection's RemoteAddr. The
// header is parsed by go-proxyproto; this type only decides who may send
// one. It does not use proxyproto.Listener, whose Accept returns (and so
// stops http.Server) when closing a refused connection fails.
type proxyListener struct {
	net.Listener
	senders []netip.Prefix
	log     *slog.Logger
}

// parseSenders parses IPs and CIDRs; an IP is its own /32 or /128.
func parseSenders(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("PROXY protocol sender %q is not an IP or CIDR", s)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// Accept returns the next connection from a sender, wrapped so that its
// first read takes the header (within readHeaderTimeout) and fails, ending
// the connection, when there is none or it is malformed. Connections from
// anyone else are closed at once.
func (l *proxyListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.sender(c.RemoteAddr()) {
			return proxyproto.NewConn(c,
				proxyproto.WithPolicy(proxyproto.REQUIRE),
				proxyproto.SetReadHeaderTimeout(readHeaderTimeout)), nil
		}
		// Debug, like net/http's handshake errors: scanners would flood
		// the log, but a misconfigured sender list is found with it.
		l.log.Debug("connection dropped: not a PROXY protocol sender", "peer", c.RemoteAddr().String())
		_ = c.Close()
	}
}

func (l *proxyListener) sender(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip := tcp.AddrPort().Addr()
	for _, p := range l.senders {
		// An IPv4 sender matches both its plain and its IPv4-mapped form
		// (a dual-stack socket reports the latter).
		if p.Contains(ip) || p.Contains(ip.Unmap()) {
			return true
		}
	}
	return false
}
