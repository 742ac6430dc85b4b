package e2e

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pires/go-proxyproto"
)

// balancer is a TCP load balancer like a cloud's in TCP mode (or an
// Ingress with TLS passthrough): each new connection goes to the next
// backend in turn, bytes pass unchanged, so TLS ends at authd and the app
// sees the pinned certificate itself. With proxyProtocol it opens each
// backend connection with a PROXY protocol v2 header naming the client,
// as an AWS NLB with proxy protocol v2 does.
type balancer struct {
	ln            net.Listener
	backends      []string
	proxyProtocol bool
	next          atomic.Uint64
	served        []atomic.Int64 // connections per backend

	mu     sync.Mutex
	open   map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// startBalancer listens on a loopback port; it stops with the test.
func startBalancer(t *testing.T, proxyProtocol bool, backends ...string) *balancer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &balancer{ln: ln, backends: backends, proxyProtocol: proxyProtocol,
		served: make([]atomic.Int64, len(backends)), open: map[net.Conn]struct{}{}}
	b.wg.Add(1)
	go b.accept()
	t.Cleanup(b.stop)
	return b
}

func (b *balancer) addr() string { return b.ln.Addr().String() }

// connections returns how many connections each backend was given.
func (b *balancer) connections() []int64 {
	out := make([]int64, len(b.served))
	for i := range b.served {
		out[i] = b.served[i].Load()
	}
	return out
}

func (b *balancer) accept() {
	defer b.wg.Done()
	for {
		in, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.wg.Add(1)
		go b.serve(in)
	}
}

// serve pipes one connection to a backend: the next in turn, or the one
// after it when that one refuses (a replica restarting), as health-checked
// balancers do.
func (b *balancer) serve(in net.Conn) {
	defer b.wg.Done()
	start := b.next.Add(1) - 1
	var out net.Conn
	for i := range uint64(len(b.backends)) {
		n := (start + i) % uint64(len(b.backends))
		c, err := net.Dial("tcp", b.backends[n])
		if err == nil && b.proxyProtocol {
			if _, err = proxyproto.HeaderProxyFromAddrs(2, in.RemoteAddr(), c.RemoteAddr()).WriteTo(c); err != nil {
				c.Close()
			}
		}
		if err == nil {
			out = c
			b.served[n].Add(1)
			break
		}
	}
	if out == nil || !b.track(in, out) {
		in.Close()
		if out != nil {
			out.Close()
		}
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// Half-close so the other side sees the end of the stream.
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(out, in)
	go pipe(in, out)
	<-done
	<-done
	b.untrack(in, out)
	in.Close()
	out.Close()
}

func (b *balancer) track(cs ...net.Conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	for _, c := range cs {
		b.open[c] = struct{}{}
	}
	return true
}

func (b *balancer) untrack(cs ...net.Conn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range cs {
		delete(b.open, c)
	}
}

func (b *balancer) stop() {
	b.ln.Close()
	b.mu.Lock()
	b.closed = true
	for c := range b.open {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}
