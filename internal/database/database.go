// Package database holds what both services do with PostgreSQL apart from
// their own SQL: opening a pool, running a transaction, creating and
// migrating a database.
package database

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paytrade/paytrade/internal/problem"
)

// Open connects a pool to url and checks that the database answers. Each
// option changes the pool's configuration first (a tracer, say).
func Open(ctx context.Context, url string, options ...func(*pgxpool.Config)) (*pgxpool.Pool, error) {
	cfg, err := parseConfig(url)
	if err != nil {
		return nil, err
	}
	for _, option := range options {
		option(cfg)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("ping database %s: %w", cfg.ConnConfig.Database, err)
	}
	return pool, nil
}

// errMalformedURL is what a database URL that does not parse is reported
// as. pgx only tries to redact the password from its own parse errors, and
// a password with a reserved character, not percent-encoded, is exactly
// what defeats that; so its error is never passed on.
var errMalformedURL = errors.New("the database URL is malformed: percent-encode reserved characters (/ + = @ : ? # %) in its user name and password")

// parseConfig parses a database URL with pool settings; its error never
// holds the URL. The URL may name several servers (h1:p1,h2:p2 with
// target_session_attrs=read-write: the nodes of a Patroni cluster); every
// connection goes to the one that takes writes.
func parseConfig(dbURL string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, errMalformedURL
	}
	cfg.ConnConfig.OnPgError = dropReadOnly(cfg.ConnConfig.OnPgError)
	cfg.ConnConfig.OnNotice = noteSyncWaitCanceled(cfg.ConnConfig.OnNotice)
	return cfg, nil
}

// syncWaitCanceled is the key of a connection's custom data that holds the
// *atomic.Bool of the commit it runs now, set when PostgreSQL says it
// canceled that commit's wait for the synchronous standby.
const syncWaitCanceled = "paytrade.sync_wait_canceled"

// watchSyncWait gives the next commit on conn a flag of its own, to be read
// after the commit even once the connection is back in the pool and
// someone else's: the flag is this commit's, the map entry is not.
func watchSyncWait(conn *pgconn.PgConn) *atomic.Bool {
	flag := new(atomic.Bool)
	conn.CustomData()[syncWaitCanceled] = flag
	return flag
}

// noteSyncWaitCanceled marks the connection when the server warns that it
// stopped waiting for the synchronous standby: that commit is visible on
// the primary but may be missing on the standby a failover promotes, so
// InTx must not report it as done. The warning has no SQLSTATE of its own
// (01000); its text is PostgreSQL's, in English under lc_messages=C, as
// deploy/patroni/patroni.yml sets.
func noteSyncWaitCanceled(next pgconn.NoticeHandler) pgconn.NoticeHandler {
	return func(conn *pgconn.PgConn, n *pgconn.Notice) {
		if n.Code == "01000" && strings.Contains(n.Message, "wait for synchronous replication") {
			if flag, ok := conn.CustomData()[syncWaitCanceled].(*atomic.Bool); ok {
				flag.Store(true)
			}
		}
		if next != nil {
			next(conn, n)
		}
	}
}

// dropReadOnly closes a connection whose server refused a write because it
// is read-only (SQLSTATE 25006): a primary demoted to a standby answers
// every query on its old connections that way, and a pool that kept them
// would send every later write there too. Closed, the connection is
// destroyed when it goes back to the pool, and the next one is made to the
// node that takes writes. Every other error is left to next (by default,
// a FATAL error closes the connection).
func dropReadOnly(next pgconn.PgErrorHandler) pgconn.PgErrorHandler {
	return func(conn *pgconn.PgConn, pgErr *pgconn.PgError) bool {
		if pgErr.Code == "25006" {
			return false
		}
		if next == nil {
			return pgErr.Severity != "FATAL"
		}
		return next(conn, pgErr)
	}
}

// Beginner is what InTx needs: a pool or a connection.
type Beginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// maxAttempts bounds how often InTx retries a transaction that PostgreSQL
// aborted for a serialization failure or a deadlock.
const maxAttempts = 5

// InTx runs fn in a transaction and commits it. It rolls back when fn returns
// an error or panics, and runs fn again, from the start, when PostgreSQL
// aborts the transaction with a serialization failure or a deadlock, which
// are safe to retry by definition.
func InTx(ctx context.Context, db Beginner, fn func(tx pgx.Tx) error) error {
	return retrying(ctx, func() error { return inTxOnce(ctx, db, fn) })
}

// retrying runs once until it succeeds, fails for another reason than a
// serialization failure or a deadlock, or has run maxAttempts times.
func retrying(ctx context.Context, once func() error) error {
	var err error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		err = once()
		if err == nil || !retryable(err) || ctx.Err() != nil {
			return err
		}
		time.Sleep(time.Duration(attempt*attempt) * 5 * time.Millisecond)
	}
	return err
}

func inTxOnce(ctx context.Context, db Beginner, fn func(tx pgx.Tx) error) (err error) {
	tx, err := db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
			panic(p)
		}
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	canceled := watchSyncWait(tx.Conn().PgConn())
	// The commit is never canceled with the request: a COMMIT abandoned
	// while it waits for the synchronous standby would leave a change the
	// primary shows and a failover can take back.
	err = tx.Commit(context.WithoutCancel(ctx))
	switch {
	case err != nil && commitMayHaveHappened(err):
		return &commitUnknownError{cause: fmt.Errorf("commit: %w", err)}
	case err != nil:
		return fmt.Errorf("commit: %w", err)
	case canceled.Load():
		return &commitUnknownError{cause: fmt.Errorf("commit: %w", ErrNotReplicated)}
	}
	return nil
}

// Statement runs fn on one connection of the pool: statements that commit
// on their own, with no BEGIN and no COMMIT, so that a change made by one
// statement costs one round trip. Its outcome is reported as InTx reports a
// commit's: a connection lost while fn ran is ErrCommitOutcomeUnknown (the
// statement may have committed), and so is a commit whose wait for the
// synchronous standby was canceled; a serialization failure or a deadlock
// runs fn again.
func Statement(ctx context.Context, pool *pgxpool.Pool, fn func(conn *pgxpool.Conn) error) error {
	return retrying(ctx, func() error { return statementOnce(ctx, pool, fn) })
}

func statementOnce(ctx context.Context, pool *pgxpool.Pool, fn func(conn *pgxpool.Conn) error) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire: %w", err)
	}
	defer conn.Release()
	canceled := watchSyncWait(conn.Conn().PgConn())
	err = fn(conn)
	switch {
	case err != nil && commitMayHaveHappened(err):
		return &commitUnknownError{cause: err}
	case err != nil:
		return err
	case canceled.Load():
		return &commitUnknownError{cause: ErrNotReplicated}
	}
	return nil
}

// ErrNotReplicated is the cause of a commit that did not reach the
// synchronous standby: the wait for it was canceled.
var ErrNotReplicated = errors.New("the wait for the synchronous standby was canceled: committed on the primary, perhaps not on its standby")

// ErrCommitOutcomeUnknown is the refusal of a request whose transaction may
// or may not have committed: the connection broke during COMMIT (the
// primary died, failed over, or was cut off), or the commit did not reach
// the synchronous standby. Asked again with the same Idempotency-Key, the
// request is either answered as it was or done for the first time.
var ErrCommitOutcomeUnknown = problem.New(problem.Unavailable, "commit_outcome_unknown",
	"the database failed while committing; the change may or may not have been made: "+
		"retry with the same Idempotency-Key").WithRetryAfter(RetryAfter)

// ErrUnavailable is the refusal of a request that failed because the
// database could not be reached or no longer takes writes (a failover in
// progress): nothing was changed, and asking again later may succeed.
var ErrUnavailable = problem.New(problem.Unavailable, "database_unavailable",
	"the database is unavailable; try again").WithRetryAfter(RetryAfter)

// RetryAfter is how long a client is asked to wait after a database
// failure: a Patroni failover takes a few seconds.
const RetryAfter = 2 * time.Second

// commitUnknownError is both ErrCommitOutcomeUnknown, for a client, and
// its cause, for a consumer that classifies failures.
type commitUnknownError struct{ cause error }

func (e *commitUnknownError) Error() string   { return e.cause.Error() + " (outcome unknown)" }
func (e *commitUnknownError) Unwrap() []error { return []error{ErrCommitOutcomeUnknown, e.cause} }

// commitMayHaveHappened reports whether a COMMIT that failed with err may
// still have committed: the connection broke or the server was shutting
// down (the answer was lost), as opposed to a refusal the server sent back.
func commitMayHaveHappened(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code[:2] == "08" || pgErr.Code[:2] == "57"
	}
	return IsUnavailable(err)
}

// AsProblem returns the refusal a client gets for err when err is the
// database's failure rather than the request's: the outcome of its commit
// unknown, or the database unreachable or read-only. Both ask the client to
// try again after RetryAfter.
func AsProblem(err error) (*problem.Error, bool) {
	if errors.Is(err, ErrCommitOutcomeUnknown) {
		return ErrCommitOutcomeUnknown, true
	}
	var pgErr *pgconn.PgError
	if IsUnavailable(err) || errors.As(err, &pgErr) && pgErr.Code == "25006" {
		return ErrUnavailable, true
	}
	return nil, false
}

func retryable(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return pgErr.Code == "40001" || pgErr.Code == "40P01"
}

// IsFailure reports whether err came from the database or from reaching
// it: any statement it refused (read-only 25006, disk full 53100, out of
// memory 53200, a statement or lock timeout 57014 or 55P03, and every
// other SQLSTATE), or IsUnavailable. For work whose input was decoded and
// validated, every such error is the database's fault, not the input's:
// it calls for waiting on the database, never for giving the work up.
func IsFailure(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) || IsUnavailable(err)
}

// Writable returns a probe that succeeds once the database answers and
// takes writes: a standby after a failover, or a database set read-only,
// answers a ping yet refuses every change.
func Writable(db interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) func(context.Context) error {
	return func(ctx context.Context) error {
		var readOnly string
		if err := db.QueryRow(ctx, `SELECT current_setting('transaction_read_only')`).Scan(&readOnly); err != nil {
			return fmt.Errorf("probe database: %w", err)
		}
		if readOnly != "off" {
			return errors.New("probe database: it is read-only")
		}
		return nil
	}
}

// IsUnavailable reports whether err means the database could not be reached
// or the connection broke, as opposed to the database refusing a statement.
// Work that failed this way should wait and try again, not be given up.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08: connection exception; 57P01..57P03: the server is
		// shutting down or not yet accepting connections.
		return pgErr.Code[:2] == "08" || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		return true
	}
	// A connection that breaks mid-query surfaces as whatever the read
	// failed with: a network error, an unexpected EOF from the reader, or
	// pgconn's "conn closed" once it has given the connection up.
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, pgconn.ErrConnClosed) {
		return true
	}
	return pgconn.SafeToRetry(err) || pgconn.Timeout(err) || errors.Is(err, pgx.ErrTxClosed)
}

// PurgeEvery runs purge at once and then every interval until ctx ends,
// logging what it removed: the housekeeping of a table that would
// otherwise only grow (idempotency keys, the inbox). A failed purge is
// logged and tried again at the next interval.
func PurgeEvery(ctx context.Context, interval time.Duration, what string, purge func(context.Context) (int64, error), log *slog.Logger) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if n, err := purge(ctx); err != nil {
			log.Warn("purge "+what, "err", err)
		} else if n > 0 {
			log.Info("purged "+what, "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Primary returns the readiness check of a pool: it succeeds once a
// connection of the pool answers and takes writes, and names the server
// (host:port) that connection is on: of a cluster's nodes, the primary.
func Primary(pool *pgxpool.Pool) func(context.Context) (map[string]string, error) {
	return func(ctx context.Context) (map[string]string, error) {
		conn, err := pool.Acquire(ctx)
		if err != nil {
			return nil, fmt.Errorf("probe database: %w", err)
		}
		defer conn.Release()
		if err := Writable(conn)(ctx); err != nil {
			return nil, err
		}
		return map[string]string{"databasePrimary": conn.Conn().PgConn().Conn().RemoteAddr().String()}, nil
	}
}
