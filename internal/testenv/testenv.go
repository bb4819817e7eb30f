// Package testenv gives integration tests their own piece of the real
// PostgreSQL and RabbitMQ: a fresh database per test and unique broker names,
// all removed when the test ends. A missing server fails the test loudly
// (it is skipped only under -short). What only some machines or users have
// (root, a local rabbitmq-server, a browser) skips the test outside CI
// and fails it under CI=true (Missing), so CI can never pass on skipped tests.
//
// It reads TEST_POSTGRES_URL, AMQP_URL and CHROMIUM from the environment:
// test support is the one place outside cmd/ that does, because go test has
// no flags of its own for them.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/database"
)

// DefaultPostgresURL is the server the tests use unless TEST_POSTGRES_URL says otherwise.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// DefaultAMQPURL is the broker the tests use unless AMQP_URL says otherwise.
const DefaultAMQPURL = "amqp://guest:guest@127.0.0.1:5672/"

func unavailable(tb testing.TB, what, target string, err error) {
	tb.Helper()
	if testing.Short() {
		tb.Skipf("-short: %s at %s not reachable: %v", what, target, err)
	}
	tb.Fatalf("%s at %s is not reachable: %v\n"+
		"integration tests need a real %s; start it (see README, 'make test') or point the URL variable at one", what, target, err, what)
}

// PostgresURL returns the URL of the test PostgreSQL server's admin database,
// failing the test if the server does not answer.
func PostgresURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv("TEST_POSTGRES_URL")
	if u == "" {
		u = DefaultPostgresURL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pool, err := database.Open(ctx, u)
	if err != nil {
		unavailable(tb, "PostgreSQL", redact(u), err)
	}
	pool.Close()
	return u
}

// NewDatabase creates a database for this test, applies the migrations in
// dir of fsys, drops it when the test ends and returns its URL.
func NewDatabase(tb testing.TB, fsys fs.FS, dir string) string {
	tb.Helper()
	dbURL := NewEmptyDatabase(tb, dir)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := database.Migrate(ctx, dbURL, fsys, dir); err != nil {
		tb.Fatalf("migrate test database: %v", err)
	}
	return dbURL
}

// NewPool returns a pool on a fresh database of this test with the
// migrations in dir of fsys applied; the pool closes when the test ends.
func NewPool(tb testing.TB, fsys fs.FS, dir string) *pgxpool.Pool {
	tb.Helper()
	dbURL := NewDatabase(tb, fsys, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pool, err := database.Open(ctx, dbURL)
	if err != nil {
		tb.Fatalf("open %s database: %v", dir, err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// NewEmptyDatabase creates an empty database for this test, named after
// prefix, drops it when the test ends and returns its URL: for tests of
// binaries that migrate their own database.
func NewEmptyDatabase(tb testing.TB, prefix string) string {
	tb.Helper()
	u, err := url.Parse(PostgresURL(tb))
	if err != nil {
		tb.Fatalf("parse postgres url: %v", err)
	}
	u.Path = "/" + "pt_" + strings.ReplaceAll(Name(tb, prefix), ".", "_")
	dbURL := u.String()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := database.Create(ctx, dbURL); err != nil {
		tb.Fatalf("create test database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := database.Drop(ctx, dbURL); err != nil {
			tb.Errorf("drop test database: %v", err)
		}
	})
	return dbURL
}

// AMQPURL returns the URL of the test broker, failing the test if it does
// not accept a connection.
func AMQPURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv("AMQP_URL")
	if u == "" {
		u = DefaultAMQPURL
	}
	conn, err := amqp.DialConfig(u, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
	if err != nil {
		unavailable(tb, "RabbitMQ", redact(u), err)
	}
	_ = conn.Close()
	return u
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9]+`)

// Name returns a name unique to this run of this test, starting with
// prefix: for databases, exchanges and queues that no other test touches.
func Name(tb testing.TB, prefix string) string {
	tb.Helper()
	test := unsafeChars.ReplaceAllString(strings.ToLower(tb.Name()), "_")
	if len(test) > 30 {
		test = test[len(test)-30:]
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		tb.Fatalf("random name: %v", err)
	}
	return prefix + "." + strings.Trim(test, "_") + "." + hex.EncodeToString(b[:])
}

// DeleteOnCleanup removes the given exchanges and queues from the broker
// (any node that answers, if amqpURL lists a cluster's) when the test ends.
func DeleteOnCleanup(tb testing.TB, amqpURL string, exchanges, queues []string) {
	tb.Helper()
	tb.Cleanup(func() {
		conn, err := broker.Dial(broker.Config{URL: amqpURL, ConnectTimeout: 5 * time.Second})
		if err != nil {
			tb.Errorf("connect to clean up broker: %v", err)
			return
		}
		defer conn.Close()
		for _, q := range queues {
			ch, err := conn.Channel()
			if err != nil {
				tb.Errorf("channel: %v", err)
				return
			}
			_, _ = ch.QueueDelete(q, false, false, false)
			_ = ch.Close()
		}
		for _, e := range exchanges {
			ch, err := conn.Channel()
			if err != nil {
				tb.Errorf("channel: %v", err)
				return
			}
			_ = ch.ExchangeDelete(e, false, false)
			_ = ch.Close()
		}
	})
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable url)"
	}
	return u.Redacted()
}

// WaitFor polls cond until it holds, failing the test if it still does not
// after within. Faults take effect asynchronously; this is how tests wait
// for their consequences without sleeping for a guessed time.
func WaitFor(tb testing.TB, within time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("after %v still waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// HostPort returns the host:port of an amqp:// or postgres:// URL,
// with the protocol's default port when the URL names none.
func HostPort(tb testing.TB, rawURL string) string {
	tb.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		tb.Fatalf("parse %s: %v", redact(rawURL), err)
	}
	if u.Port() != "" {
		return u.Host
	}
	port := "5672"
	if u.Scheme == "postgres" || u.Scheme == "postgresql" {
		port = "5432"
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// Watch declares the topic exchange (if missing) and a durable queue of this
// test bound to it with key, and returns the queue's deliveries, auto-acked,
// on a connection of its own. The queue, the exchange and the connection go
// when the test ends.
func Watch(tb testing.TB, amqpURL, exchange, key string) <-chan amqp.Delivery {
	tb.Helper()
	queue := Name(tb, "watch")
	DeleteOnCleanup(tb, amqpURL, []string{exchange}, []string{queue})
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		tb.Fatalf("connect to watch %s: %v", exchange, err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		tb.Fatalf("channel: %v", err)
	}
	if err := ch.ExchangeDeclare(exchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		tb.Fatalf("declare exchange %s: %v", exchange, err)
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		tb.Fatalf("declare queue %s: %v", queue, err)
	}
	if err := ch.QueueBind(queue, key, exchange, false, nil); err != nil {
		tb.Fatalf("bind %s to %s with %s: %v", queue, exchange, key, err)
	}
	deliveries, err := ch.Consume(queue, "", true, false, false, false, nil)
	if err != nil {
		tb.Fatalf("consume %s: %v", queue, err)
	}
	return deliveries
}

// SetDatabase sets a server parameter for every new session of the
// database at dbURL (ALTER DATABASE … SET) and ends its open sessions, so
// that pools reconnect under it at once: default_transaction_read_only=on
// turns the database into what a standby after a failover looks like,
// lock_timeout or statement_timeout make it refuse slow statements.
// RESET undoes it with value "".
func SetDatabase(tb testing.TB, dbURL, param, value string) {
	tb.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		tb.Fatalf("parse database url: %v", err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	admin, err := database.Open(ctx, PostgresURL(tb))
	if err != nil {
		tb.Fatalf("open admin database: %v", err)
	}
	defer admin.Close()
	db := pgx.Identifier{name}.Sanitize()
	stmt := fmt.Sprintf("ALTER DATABASE %s SET %s = %s", db, pgx.Identifier{param}.Sanitize(), quoteLiteral(value))
	if value == "" {
		stmt = fmt.Sprintf("ALTER DATABASE %s RESET %s", db, pgx.Identifier{param}.Sanitize())
	}
	if _, err := admin.Exec(ctx, stmt); err != nil {
		tb.Fatalf("%s: %v", stmt, err)
	}
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, name); err != nil {
		tb.Fatalf("end the sessions of %s: %v", name, err)
	}
}

// DatabaseName returns the name of the database of a postgres:// URL.
func DatabaseName(tb testing.TB, dbURL string) string {
	tb.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		tb.Fatalf("parse database url: %v", err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
