package testenv

import (
	"bytes"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy forwards TCP connections from a loopback port to a target and can cut them.
// It also counts round trips: turns of the conversation on the wire, and
// can make each of them longer (SetLatency), as a network between hosts does.
type Proxy struct {
	target string
	ln     net.Listener
	wg     sync.WaitGroup

	roundTrips atomic.Int64
	latency    atomic.Int64 // nanoseconds each chunk from the target is held

	mu     sync.Mutex
	down   bool
	closed bool
	links  map[*link]struct{}
	// flowing is closed while bytes may flow; SetStalled(true) replaces it
	// with an open chan that SetStalled(false) closes.
	flowing chan struct{}
}

// link is one forwarded connection: the client's side and the target's.
type link struct {
	client net.Conn
	done   chan struct{} // closed by cut
	// asked is set when the client sends bytes and cleared by the first
	// bytes the target sends back: one round trip.
	asked atomic.Bool

	mu       sync.Mutex
	upstream net.Conn // nil until dialled
	isCut    bool
}

// NewProxy starts a proxy to target (host:port) on a free loopback port; it
// stops, cutting every connection, when the test ends.
func NewProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("proxy listen: %v", err)
	}
	flowing := make(chan struct{})
	close(flowing)
	p := &Proxy{target: target, ln: ln, links: make(map[*link]struct{}), flowing: flowing}
	p.wg.Add(1)
	go p.accept()
	tb.Cleanup(p.close)
	return p
}

// Addr returns the host:port clients connect to.
func (p *Proxy) Addr() string {
	return p.ln.Addr().String()
}

// RewriteURL returns rawURL with its host:port replaced by Addr(), so a
// client given it goes through the proxy.
func (p *Proxy) RewriteURL(tb testing.TB, rawURL string) string {
	tb.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		tb.Fatalf("proxy: parse url: %v", err)
	}
	u.Host = p.Addr()
	return u.String()
}

// CutAll closes every open forwarded connection, both sides, as a network
// failure would; new connections are still forwarded.
func (p *Proxy) CutAll() {
	p.mu.Lock()
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	for _, l := range links {
		l.cut()
	}
}

// SetDown makes the target unreachable (down) or reachable again. Going
// down cuts every open connection; while down, new connections are
// accepted and closed at once, like a broker that is restarting.
func (p *Proxy) SetDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
	if down {
		p.CutAll()
	}
}

// SetStalled stops (stalled) or resumes forwarding on every connection,
// open or new. While stalled, connections stay open but no byte passes
// either way, like a network silently dropping packets: nothing fails
// until a timeout (or heartbeat) says so.
func (p *Proxy) SetStalled(stalled bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.flowing:
		if stalled {
			p.flowing = make(chan struct{})
		}
	default:
		if !stalled {
			close(p.flowing)
		}
	}
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // the listener is closed
		}
		l := &link{client: c, done: make(chan struct{})}
		p.mu.Lock()
		if p.down || p.closed {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		p.links[l] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go p.forward(l)
	}
}

func (p *Proxy) forward(l *link) {
	defer p.wg.Done()
	defer func() {
		l.cut()
		p.mu.Lock()
		delete(p.links, l)
		p.mu.Unlock()
	}()
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	if !l.attach(up) {
		_ = up.Close()
		return
	}
	done := make(chan struct{}, 2)
	go func() { p.pipe(l, up, l.client, l.ask, false); done <- struct{}{} }()
	go func() { p.pipe(l, l.client, up, p.answer(l), true); done <- struct{}{} }()
	// Either direction ending ends the link, so the other side sees the
	// failure too instead of a half-open connection.
	<-done
	l.cut()
	<-done
}

// RoundTrips returns how many round trips have crossed the proxy: times a
// client sent something and then heard back, however many messages either
// side packed into its turn. A pipelined batch is one; a prepare before an
// execute, or a ping before a query, is one more. Bytes the target sends
// unasked (a notice, a notification) are none.
func (p *Proxy) RoundTrips() int64 {
	return p.roundTrips.Load()
}

// CountRoundTrips returns how many round trips through p fn made. Only fn
// may use p meanwhile.
func (p *Proxy) CountRoundTrips(fn func()) int64 {
	before := p.RoundTrips()
	fn()
	return p.RoundTrips() - before
}

// ask notes that the client has the floor.
func (l *link) ask() { l.asked.Store(true) }

// answer returns what the target's first bytes after a client's turn do:
// count a round trip.
func (p *Proxy) answer(l *link) func() {
	return func() {
		if l.asked.CompareAndSwap(true, false) {
			p.roundTrips.Add(1)
		}
	}
}

// SetLatency holds every chunk the target sends until latency after the
// proxy read it, on every connection, open or new, so that each round trip
// through the proxy takes that much longer; what the client sends goes on
// at once. A real link's latency costs the hosts' CPUs nothing, and an
// emulated one runs on the cores of the system under test: so one proxy
// both counts and slows a link, rather than two in a row. The delay is
// exact to the microsecond (sleepUntil); what a round trip gains is that
// plus the proxy's own hop.
func (p *Proxy) SetLatency(latency time.Duration) {
	p.latency.Store(int64(latency))
}

// chunk is bytes read from the target and when they may go on.
type chunk struct {
	data []byte
	due  time.Time
}

// pipe copies src to dst, holding each chunk while the proxy is stalled;
// sent is called as each chunk is read, before it is passed on. With
// delayed (the target's direction), a chunk read while a latency is set
// goes through a delay line that passes it on when due; from then on every
// chunk of the link does, so that none overtakes another. The pipe ends
// once the line has passed on what it holds.
func (p *Proxy) pipe(l *link, dst, src net.Conn, sent func(), delayed bool) {
	buf := make([]byte, 32<<10)
	var (
		line     chan chunk
		lineDone chan struct{}
	)
	defer func() {
		if line != nil {
			close(line)
			<-lineDone
		}
	}()
	for {
		n, err := src.Read(buf)
		if n > 0 {
			read := time.Now()
			sent()
			p.mu.Lock()
			flowing := p.flowing
			p.mu.Unlock()
			select {
			case <-flowing:
			case <-l.done:
				return
			}
			latency := time.Duration(p.latency.Load())
			switch {
			case delayed && (latency > 0 || line != nil):
				if line == nil {
					line, lineDone = make(chan chunk, 256), make(chan struct{})
					go l.delayLine(dst, line, lineDone)
				}
				select {
				case line <- chunk{data: bytes.Clone(buf[:n]), due: read.Add(latency)}:
				case <-l.done:
					return
				}
			default:
				if _, err := dst.Write(buf[:n]); err != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// delayLine writes each chunk of line to dst when it is due, in order, and
// closes done when line is closed; a failed write cuts the link, and what
// is left in line is dropped.
func (l *link) delayLine(dst net.Conn, line <-chan chunk, done chan<- struct{}) {
	defer close(done)
	for c := range line {
		sleepUntil(c.due)
		if _, err := dst.Write(c.data); err != nil {
			l.cut()
			for range line {
			}
			return
		}
	}
}

// attach records the target's side of l, unless l was cut while it was
// being dialled.
func (l *link) attach(up net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.isCut {
		return false
	}
	l.upstream = up
	return true
}

// cut closes both sides of l.
func (l *link) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.isCut {
		return
	}
	l.isCut = true
	close(l.done)
	_ = l.client.Close()
	if l.upstream != nil {
		_ = l.upstream.Close()
	}
}

func (p *Proxy) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	_ = p.ln.Close()
	p.CutAll()
	p.wg.Wait()
}
