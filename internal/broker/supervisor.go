// Package broker provides connection supervision and confirmed publishing to RabbitMQ.
//
// A Supervisor owns one AMQP connection and replaces it when it is lost,
// re-declaring the topology on every new connection. amqp091's own opt-in
// recovery (Config.Recovery) is deliberately not used: it keeps Channel
// objects alive across reconnects and restarts their delivery tags, so a tag
// from a dead channel could be acked on its successor. Here a lost
// connection takes its channels with it, and users open fresh ones.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ErrNotConnected means there is no live broker connection right now.
var ErrNotConnected = errors.New("broker: not connected")

// ErrBlocked means the broker blocks publishing on the connection (a memory
// or disk alarm: connection.blocked); nothing was, or will be, confirmed
// until it unblocks.
var ErrBlocked = errors.New("broker: publishing blocked by the broker (memory or disk alarm)")

// Config tells a Supervisor where and how to connect. Zero fields take the
// defaults in brackets.
type Config struct {
	// URL is one AMQP URL, or the URLs of a cluster's nodes separated by
	// commas (like spring.rabbitmq.addresses): see Nodes.
	URL            string
	ConnectionName string        // sent as the connection_name client property, shown in the management UI
	ConnectTimeout time.Duration // bounds the TCP dial and the AMQP handshake [5s]
	Heartbeat      time.Duration // [10s]
	Backoff        Backoff       // between failed connection attempts [500ms doubling to 30s]
	Logger         *slog.Logger  // [discard]
}

// Supervisor keeps one connection open, reconnecting with exponential backoff.
type Supervisor struct {
	cfg     Config
	declare func(ch *amqp.Channel) error
	log     *slog.Logger

	nodes []string
	// next is the node the next connection attempt starts with; only Run
	// touches it.
	next int

	mu   sync.Mutex
	conn *amqp.Connection
	// changed is closed and replaced whenever conn is set or cleared, so
	// waiters in Connection wake up without polling.
	changed chan struct{}
	// blocked is closed while the broker blocks publishing on conn,
	// unblocked while it does not: exactly one of them is closed.
	blocked, unblocked chan struct{}

	connects atomic.Int64
}

// NewSupervisor returns a supervisor for cfg. declare, if not nil, declares
// the topology the application needs; it runs on every new connection,
// because a broker that lost its state (or a new node) must get it back.
func NewSupervisor(cfg Config, declare func(ch *amqp.Channel) error) *Supervisor {
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 5 * time.Second
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 10 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	unblocked := make(chan struct{})
	close(unblocked)
	return &Supervisor{
		cfg:       cfg,
		nodes:     Nodes(cfg.URL),
		declare:   declare,
		log:       log.With("component", "broker", "broker", Redact(cfg.URL)),
		changed:   make(chan struct{}),
		blocked:   make(chan struct{}),
		unblocked: unblocked,
	}
}

// Run dials, calls declare on a fresh channel after every successful dial,
// publishes the connection to waiters, watches it, and on loss reconnects
// with Backoff (reset after a successful dial and declare). A declare error
// closes the connection and counts as a failed attempt. Run returns nil
// when ctx is cancelled, after closing the connection. Call it once.
func (s *Supervisor) Run(ctx context.Context) error {
	var delay time.Duration
	for ctx.Err() == nil {
		conn, node, err := s.connect()
		if err != nil {
			delay = s.cfg.Backoff.Next(delay)
			s.log.Warn("broker connection attempt failed", "err", err, "retry_in", delay)
		} else {
			delay = 0
			n := s.connects.Add(1)
			s.log.Info("connected to broker", "node", Redact(node), "reconnects", n-1)
			err := s.watch(ctx, conn)
			if ctx.Err() != nil {
				return nil
			}
			// Waiting even after a loss keeps a broker that accepts and
			// immediately drops connections from being hammered.
			delay = s.cfg.Backoff.Next(delay)
			s.log.Warn("broker connection lost", "err", err, "retry_in", delay)
		}
		if !sleep(ctx, delay) {
			return nil
		}
	}
	return nil
}

// connect dials the nodes in turn, from the one after the node of the last
// connection, and declares the topology on the first that answers; it
// returns only a connection that is fully ready for use. A node lost is
// thus not dialled first again, and a dead node costs one failed dial per
// attempt, not a backoff wait.
func (s *Supervisor) connect() (*amqp.Connection, string, error) {
	var errs []error
	for range s.nodes {
		node := s.nodes[s.next%len(s.nodes)]
		s.next++
		conn, err := s.connectTo(node)
		if err == nil {
			return conn, node, nil
		}
		errs = append(errs, err)
	}
	return nil, "", errors.Join(errs...)
}

// connectTo dials one node and declares the topology on it.
func (s *Supervisor) connectTo(node string) (*amqp.Connection, error) {
	conn, err := DialNode(s.cfg, node)
	if err != nil {
		return nil, err
	}
	if s.declare == nil {
		return conn, nil
	}
	if err := s.declareOn(conn); err != nil {
		s.closeConn(conn)
		return nil, fmt.Errorf("%s: %w", Redact(node), err)
	}
	return conn, nil
}

// DialNode opens a connection to node, one URL of cfg.URL, with cfg's
// name, timeout and heartbeat.
func DialNode(cfg Config, node string) (*amqp.Connection, error) {
	if _, err := ParseURL(node); err != nil {
		return nil, err
	}
	props := amqp.NewConnectionProperties()
	if cfg.ConnectionName != "" {
		props.SetClientConnectionName(cfg.ConnectionName)
	}
	conn, err := amqp.DialConfig(node, amqp.Config{
		Heartbeat:  cfg.Heartbeat,
		Dial:       amqp.DefaultDial(cfg.ConnectTimeout),
		Properties: props,
	})
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", Redact(node), err)
	}
	return conn, nil
}

// Dial opens a connection to the first node of cfg.URL that answers, for a
// one-off client such as paytradectl.
func Dial(cfg Config) (*amqp.Connection, error) {
	var errs []error
	for _, node := range Nodes(cfg.URL) {
		conn, err := DialNode(cfg, node)
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// Nodes splits an AMQP_URL into the URLs of the nodes it lists: one URL,
// or several separated by commas. A comma starts a new URL only before a
// scheme (amqp:// or amqps://), so a password may hold one unencoded.
func Nodes(raw string) []string {
	var nodes []string
	for part := range strings.SplitSeq(raw, ",") {
		trimmed := strings.TrimSpace(part)
		if len(nodes) > 0 && !strings.HasPrefix(trimmed, "amqp://") && !strings.HasPrefix(trimmed, "amqps://") {
			nodes[len(nodes)-1] += "," + part
			continue
		}
		nodes = append(nodes, trimmed)
	}
	return nodes
}

func (s *Supervisor) declareOn(conn *amqp.Connection) error {
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel to declare topology: %w", err)
	}
	if err := s.declare(ch); err != nil {
		_ = ch.Close()
		return fmt.Errorf("declare topology: %w", err)
	}
	// A failed declare already closed the channel on the broker's side; a
	// successful one leaves nothing on it worth keeping.
	if err := ch.Close(); err != nil {
		return fmt.Errorf("close topology channel: %w", err)
	}
	return nil
}

// watch publishes conn to waiters and returns when it is lost (with the
// reason) or ctx ends (after closing it).
func (s *Supervisor) watch(ctx context.Context, conn *amqp.Connection) error {
	// Registered before conn is published: NotifyClose on an already
	// closed connection returns a closed chan, so no loss goes unseen.
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	blocked := conn.NotifyBlocked(make(chan amqp.Blocking, 1))
	s.setConn(conn)
	defer s.setConn(nil)
	for {
		select {
		case <-ctx.Done():
			// Withdrawn first, so no publisher starts on a closing connection.
			s.setConn(nil)
			s.closeConn(conn)
			return ctx.Err()
		case b, ok := <-blocked:
			if !ok {
				blocked = nil
				continue
			}
			// Publishers wait while blocked rather than stall in TCP
			// writes and confirm timeouts.
			s.setBlocked(b.Active)
			if b.Active {
				s.log.Warn("broker blocked publishing on this connection; publishing paused", "reason", b.Reason)
			} else {
				s.log.Info("broker unblocked publishing on this connection; publishing resumed")
			}
		case amqpErr, ok := <-closed:
			if !ok || amqpErr == nil {
				return amqp.ErrClosed
			}
			return amqpErr
		}
	}
}

// Redeclare declares the topology again on the current connection: for a
// broker that lost part of it (an exchange deleted) while the connection
// stayed up. Without a connection there is nothing to do; the next
// connection declares it anyway.
func (s *Supervisor) Redeclare() error {
	conn := s.Current()
	if conn == nil || s.declare == nil {
		return nil
	}
	return s.declareOn(conn)
}

// closeConn closes conn without waiting on a broker that stopped answering.
func (s *Supervisor) closeConn(conn *amqp.Connection) {
	err := conn.CloseDeadline(time.Now().Add(s.cfg.ConnectTimeout))
	if err != nil && !errors.Is(err, amqp.ErrClosed) {
		s.log.Debug("close broker connection", "err", err)
	}
}

func (s *Supervisor) setConn(conn *amqp.Connection) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == conn {
		return
	}
	s.conn = conn
	close(s.changed)
	s.changed = make(chan struct{})
	// A new connection is not blocked until the broker says so.
	s.setBlockedLocked(false)
}

func (s *Supervisor) setBlocked(blocked bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setBlockedLocked(blocked)
}

func (s *Supervisor) setBlockedLocked(blocked bool) {
	select {
	case <-s.blocked:
		if !blocked {
			s.blocked = make(chan struct{})
			close(s.unblocked)
		}
	default:
		if blocked {
			s.unblocked = make(chan struct{})
			close(s.blocked)
		}
	}
}

// Flow returns two chans of the current connection's flow control: blocked
// is closed once the broker blocks publishing (connection.blocked), and
// unblocked once it lets publishing go on; exactly one is closed now.
func (s *Supervisor) Flow() (blocked, unblocked <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.blocked, s.unblocked
}

// Blocked reports whether the broker blocks publishing on the connection.
func (s *Supervisor) Blocked() bool {
	blocked, _ := s.Flow()
	select {
	case <-blocked:
		return true
	default:
		return false
	}
}

// Connection returns the live connection, waiting until there is one or ctx ends.
func (s *Supervisor) Connection(ctx context.Context) (*amqp.Connection, error) {
	for {
		s.mu.Lock()
		conn, changed := s.conn, s.changed
		s.mu.Unlock()
		if conn != nil && !conn.IsClosed() {
			return conn, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for broker connection: %w", ctx.Err())
		case <-changed:
		}
	}
}

// Current returns the live connection or nil, without waiting.
func (s *Supervisor) Current() *amqp.Connection {
	s.mu.Lock()
	conn := s.conn
	s.mu.Unlock()
	// The connection may have died a moment before Run notices.
	if conn == nil || conn.IsClosed() {
		return nil
	}
	return conn
}

// Connected reports whether there is a live connection.
func (s *Supervisor) Connected() bool {
	return s.Current() != nil
}

// User is the broker user the supervisor connects as: the user name of
// its URL (RabbitMQ's guest when the URL names none). Every node of a
// cluster's list is reached as the same user (ReadConfig checks it).
func (s *Supervisor) User() string {
	return User(s.cfg.URL)
}

// User is the broker user an AMQP_URL connects as: the user name of its
// first node's URL, or guest when it names none (as amqp091 dials); ""
// if the URL does not parse.
func User(raw string) string {
	uri, err := ParseURL(Nodes(raw)[0])
	if err != nil {
		return ""
	}
	return uri.Username
}

// Reconnects counts the successful connections after the first.
func (s *Supervisor) Reconnects() int64 {
	return max(s.connects.Load()-1, 0)
}

// sleep waits d and reports whether ctx is still alive.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// errMalformedURL is what a URL that does not parse is reported as. It
// never quotes the URL or the parser's error, which does: a password with
// a reserved character, not percent-encoded, is exactly what breaks it.
var errMalformedURL = errors.New("the AMQP URL is malformed: percent-encode reserved characters (/ + = @ : ? # %) in its user name and password")

// ParseURL reads an AMQP URL as amqp091 does. Its error never holds the
// URL, so it may be logged.
func ParseURL(raw string) (amqp.URI, error) {
	uri, err := amqp.ParseURI(raw)
	if err != nil {
		return amqp.URI{}, errMalformedURL
	}
	return uri, nil
}

// Redact hides the passwords in an AMQP_URL (one URL or a list) for logs
// and errors.
func Redact(raw string) string {
	nodes := Nodes(raw)
	for i, node := range nodes {
		u, err := url.Parse(node)
		if err != nil {
			nodes[i] = "(unparsable url)"
			continue
		}
		nodes[i] = u.Redacted()
	}
	return strings.Join(nodes, ",")
}
