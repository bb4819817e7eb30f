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
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Open connects a pool to url and checks that the database answers.
func Open(ctx context.Context, url string) (*pgxpool.Pool, error) {
	cfg, err := parseConfig(url)
	if err != nil {
		return nil, err
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
// holds the URL.
func parseConfig(dbURL string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, errMalformedURL
	}
	return cfg, nil
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
	var err error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		err = inTxOnce(ctx, db, fn)
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
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
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
