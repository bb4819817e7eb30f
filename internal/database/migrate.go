package database

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/golang-migrate/migrate/v4"
	migratepgx "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

// Migrate applies every up migration in dir of fsys that the database at
// dbURL has not seen yet. golang-migrate holds an advisory lock while it
// works, so replicas that start at the same time apply each migration once.
func Migrate(ctx context.Context, dbURL string, fsys fs.FS, dir string) error {
	src, err := iofs.New(fsys, dir)
	if err != nil {
		return fmt.Errorf("read migrations %s: %w", dir, err)
	}
	cfg, err := ParseURL(dbURL)
	if err != nil {
		return err
	}
	db := stdlib.OpenDB(*cfg)
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping database %s: %w", cfg.Database, err)
	}
	driver, err := migratepgx.WithInstance(db, &migratepgx.Config{})
	if err != nil {
		return fmt.Errorf("migration driver: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", src, cfg.Database, driver)
	if err != nil {
		return fmt.Errorf("migrations %s: %w", dir, err)
	}
	if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("migrate %s: %w", cfg.Database, err)
	}
	return nil
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
// dbURL and opens a pool on it: how a service binary starts.
func OpenMigrated(ctx context.Context, dbURL string, fsys fs.FS, dir string) (*pgxpool.Pool, error) {
	if err := Migrate(ctx, dbURL, fsys, dir); err != nil {
		return nil, err
	}
	return Open(ctx, dbURL)
}
