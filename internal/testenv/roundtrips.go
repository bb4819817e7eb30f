package testenv

import (
	"context"
	"io/fs"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paytrade/paytrade/internal/database"
)

// NewCountingPool returns a pool of one connection to a fresh database of
// this test (the migrations in dir of fsys applied) through a proxy that
// counts its round trips on the wire, and the proxy. One connection, so
// that a warm-up call prepares the statements the counted call runs, as
// every connection of a busy pool has. pgxpool pings a connection idle for
// more than a second before handing it out; a busy pool's never are, and
// a slow test machine's would be, so this pool never pings.
func NewCountingPool(tb testing.TB, fsys fs.FS, dir string) (*pgxpool.Pool, *Proxy) {
	tb.Helper()
	dbURL := NewDatabase(tb, fsys, dir)
	proxy := NewProxy(tb, HostPort(tb, dbURL))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pool, err := database.Open(ctx, proxy.RewriteURL(tb, dbURL), func(cfg *pgxpool.Config) {
		cfg.MaxConns, cfg.MinConns = 1, 1
		cfg.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false }
	})
	if err != nil {
		tb.Fatalf("open %s database through a counting proxy: %v", dir, err)
	}
	tb.Cleanup(pool.Close)
	return pool, proxy
}
