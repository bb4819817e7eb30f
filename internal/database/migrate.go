package database

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"regexp"
	"strings"

	"github.com/golang-migrate/migrate/v4"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

// Migrate applies every up migration in dir of fsys that the database at
// dbURL has not seen yet.
//
// A database left dirty by a migration that failed is migrated again from
// the version before it, rather than refused until someone forces it by
// hand: each migration file runs as one batch of statements in one implicit
// transaction (pgx sends a query without parameters as a simple query), so
// one that failed changed nothing. And each up migration run here marks
// itself clean in that same transaction, so a process killed between a
// migration's commit and golang-migrate's own "clean" mark does not leave a
// migration that did run looking like one that did not.
//
// Replicas that start at the same time take turns under an advisory lock,
// so each migration is applied once and none sees another's migration in
// flight as dirty.
func Migrate(ctx context.Context, dbURL string, fsys fs.FS, dir string) error {
	files, err := iofs.New(fsys, dir)
	if err != nil {
		return fmt.Errorf("read migrations %s: %w", dir, err)
	}
	src := selfCleaning{Driver: files, table: migratepgx.DefaultMigrationsTable}
	cfg, err := ParseURL(dbURL)
	if err != nil {
		return err
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping database %s: %w", cfg.Database, err)
	}
	lock, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect to migrate %s: %w", cfg.Database, err)
	}
	defer lock.Close()
	key := migrateLockKey(cfg.Database)
	if _, err := lock.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, key); err != nil {
		return fmt.Errorf("wait for other migrations of %s: %w", cfg.Database, err)
	}
	defer func() { _, _ = lock.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, key) }()

	driver, err := migratepgx.WithInstance(db, &migratepgx.Config{})
	if err != nil {
		return fmt.Errorf("migration driver: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", src, cfg.Database, driver)
	if err != nil {
		return fmt.Errorf("migrations %s: %w", dir, err)
	}
	defer m.Close()
	if err := undirty(m, src); err != nil {
		return fmt.Errorf("migrate %s: %w", cfg.Database, err)
	}
	if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("migrate %s: %w", cfg.Database, err)
	}
	return nil
}

// undirty moves a database whose last migration failed back to the version
// before that migration, so that Up runs it again.
func undirty(m *migrate.Migrate, src source.Driver) error {
	version, dirty, err := m.Version()
	if errors.Is(err, migrate.ErrNilVersion) || (err == nil && !dirty) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read version: %w", err)
	}
	before := -1 // none: the failed migration was the first
	if prev, err := src.Prev(version); err == nil {
		before = int(prev)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("find the migration before dirty version %d: %w", version, err)
	}
	if err := m.Force(before); err != nil {
		return fmt.Errorf("move dirty version %d back to %d: %w", version, before, err)
	}
	return nil
}

// migrateLockKey is the advisory lock that start-ups migrating the same
// database take turns under; golang-migrate's own lock, taken inside it,
// covers a single step only.
func migrateLockKey(database string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("paytrade migrate\x00" + database))
	return int64(h.Sum64())
}

// selfCleaning is a migration source whose up migrations end by marking
// their own version clean, in their own transaction.
type selfCleaning struct {
	source.Driver
	table string
}

// ReadUp returns the up migration of version followed by the statement
// that marks version clean.
func (s selfCleaning) ReadUp(version uint) (io.ReadCloser, string, error) {
	r, id, err := s.Driver.ReadUp(version)
	if err != nil {
		return r, id, err
	}
	defer r.Close()
	body, err := io.ReadAll(r)
	if err != nil {
		return nil, id, fmt.Errorf("read up migration %d: %w", version, err)
	}
	clean := fmt.Sprintf("\n;\nUPDATE %s SET dirty = false WHERE version = %d;\n", pgx.Identifier{s.table}.Sanitize(), version)
	return io.NopCloser(strings.NewReader(string(body) + clean)), id, nil
}

// Create creates the database named in dbURL unless it exists, connecting
// to the server's postgres database to do so.
func Create(ctx context.Context, dbURL string) error {
	cfg, err := ParseURL(dbURL)
	if err != nil {
		return err
	}
	name := cfg.Database
	conn, err := pgx.ConnectConfig(ctx, adminConfig(cfg))
	if err != nil {
		return fmt.Errorf("connect to create database %s: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		var dup bool
		// Another process may have created it between the check and now.
		if qerr := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&dup); qerr == nil && dup {
			return nil
		}
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// Drop removes the database named in dbURL, disconnecting its sessions.
func Drop(ctx context.Context, dbURL string) error {
	cfg, err := ParseURL(dbURL)
	if err != nil {
		return err
	}
	conn, err := pgx.ConnectConfig(ctx, adminConfig(cfg))
	if err != nil {
		return fmt.Errorf("connect to drop database %s: %w", cfg.Database, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{cfg.Database}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", cfg.Database, err)
	}
	return nil
}

// ParseURL parses dbURL for a single connection; its error never holds the
// URL, so it may be logged. It goes through
// pgxpool's parser so that the pool settings a service's URL may carry
// (pool_max_conns, …) are taken out rather than sent to the server as
// run-time parameters, which it refuses.
func ParseURL(dbURL string) (*pgx.ConnConfig, error) {
	cfg, err := parseConfig(dbURL)
	if err != nil {
		return nil, err
	}
	return cfg.ConnConfig, nil
}

// adminConfig is cfg pointed at the server's postgres database.
func adminConfig(cfg *pgx.ConnConfig) *pgx.ConnConfig {
	admin := cfg.Copy()
	admin.Database = "postgres"
	return admin
}

// OpenMigrated applies the migrations in dir of fsys to the database at
// dbURL and opens a pool on it: how a service binary starts. The pool holds
// up to ServiceMaxConns connections unless the URL sets pool_max_conns.
func OpenMigrated(ctx context.Context, dbURL string, fsys fs.FS, dir string) (*pgxpool.Pool, error) {
	if err := Migrate(ctx, dbURL, fsys, dir); err != nil {
		return nil, err
	}
	return Open(ctx, dbURL, func(cfg *pgxpool.Config) {
		if !poolMaxConnsSet.MatchString(dbURL) {
			cfg.MaxConns = ServiceMaxConns
		}
	})
}

// ServiceMaxConns is how many connections a service's pool opens at most
// when its URL does not say. pgxpool's own default (4, or the CPU count if
// larger) sizes a pool for CPU; but a connection spends a payment mostly
// waiting on the network, two round trips, so with the database 5 ms away
// 4 connections cap pay near 400 payments a second whatever the CPUs
// could do. 8 carry 800 a second at 5 ms, more than two cores do; more
// than that only adds backends that compete for the database's cores and
// lengthen every payment's tail on loopback. Connections open only as
// requests wait for them.
const ServiceMaxConns = 8

// poolMaxConnsSet matches a database URL, or a keyword/value connection
// string, that sets pool_max_conns itself.
var poolMaxConnsSet = regexp.MustCompile(`(?:^|[\s?&])pool_max_conns\s*=`)
