package database_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paytrade/paytrade/internal/database"
	"github.com/paytrade/paytrade/internal/testenv"
)

var testMigrations = fstest.MapFS{
	"db/000001_counter.up.sql":   {Data: []byte(`CREATE TABLE counter (n int NOT NULL); INSERT INTO counter VALUES (0);`)},
	"db/000001_counter.down.sql": {Data: []byte(`DROP TABLE counter;`)},
	"db/000002_more.up.sql":      {Data: []byte(`UPDATE counter SET n = n + 1;`)},
	"db/000002_more.down.sql":    {Data: []byte(`UPDATE counter SET n = n - 1;`)},
}

func openTestDB(t *testing.T) func() *pgx.Conn {
	t.Helper()
	url := testenv.NewDatabase(t, fstest.MapFS{"empty/000001_nothing.up.sql": {Data: []byte(`SELECT 1;`)}}, "empty")
	return func() *pgx.Conn {
		conn, err := pgx.Connect(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close(context.Background()) })
		return conn
	}
}

func TestConcurrentStartsApplyEachMigrationOnce(t *testing.T) {
	t.Parallel()
	url := testenv.NewDatabase(t, fstest.MapFS{"none/000001_nothing.up.sql": {Data: []byte(`SELECT 1;`)}}, "none")
	// A second migration history in the same database would confuse
	// golang-migrate; start from a database with none.
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `DROP TABLE schema_migrations`); err != nil {
		t.Fatal(err)
	}

	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Go(func() { errs[i] = database.Migrate(context.Background(), url, testMigrations, "db") })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Errorf("concurrent migrate: %v", err)
		}
	}
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT n FROM counter`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("migration 2 ran %d times across 6 concurrent starts, want once", n)
	}
}

func TestInTxRollsBackOnErrorAndPanic(t *testing.T) {
	t.Parallel()
	connect := openTestDB(t)
	conn := connect()
	ctx := context.Background()
	if _, err := conn.Exec(ctx, `CREATE TABLE t (v int)`); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := database.InTx(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO t VALUES (1)`); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Errorf("InTx = %v, want the function's error", err)
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("InTx swallowed a panic")
			}
		}()
		_ = database.InTx(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO t VALUES (2)`); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d rows after a failed and a panicking transaction, want 0", n)
	}
}

func TestInTxRetriesSerializationFailures(t *testing.T) {
	t.Parallel()
	connect := openTestDB(t)
	conn := connect()
	ctx := context.Background()
	var calls atomic.Int32
	err := database.InTx(ctx, conn, func(tx pgx.Tx) error {
		if calls.Add(1) < 3 {
			return &pgconn.PgError{Code: "40001", Message: "could not serialize access"}
		}
		return nil
	})
	if err != nil || calls.Load() != 3 {
		t.Errorf("InTx = %v after %d calls, want success on the third", err, calls.Load())
	}
	calls.Store(0)
	err = database.InTx(ctx, conn, func(tx pgx.Tx) error {
		calls.Add(1)
		return &pgconn.PgError{Code: "23505", Message: "duplicate key"}
	})
	if err == nil || calls.Load() != 1 {
		t.Errorf("InTx retried a non-retryable error: %d calls, err %v", calls.Load(), err)
	}
}

func TestIsUnavailableTellsBrokenConnectionsFromRefusedStatements(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain error", errors.New("order not found"), false},
		{"unique violation", &pgconn.PgError{Code: "23505"}, false},
		{"connection failure class 08", &pgconn.PgError{Code: "08006"}, true},
		{"admin shutdown", fmt.Errorf("mark paid: %w", &pgconn.PgError{Code: "57P01"}), true},
		{"network error", fmt.Errorf("mark paid: %w", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}), true},
		{"unexpected EOF", fmt.Errorf("mark paid: %w", io.ErrUnexpectedEOF), true},
		{"conn closed", fmt.Errorf("mark paid: %w", pgconn.ErrConnClosed), true},
		{"transaction closed", pgx.ErrTxClosed, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := database.IsUnavailable(tt.err); got != tt.want {
				t.Errorf("IsUnavailable(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestIsUnavailableRecognisesConnectionCutMidQuery(t *testing.T) {
	t.Parallel()
	dbURL := testenv.NewEmptyDatabase(t, "cut")
	proxy := testenv.NewProxy(t, testenv.HostPort(t, dbURL))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())

	// Each way of running a query reports the cut differently: a pool's
	// QueryRow as an unexpected EOF, a connection's Exec and a transaction
	// as "conn closed".
	tests := []struct {
		name string
		run  func(ctx context.Context, db *pgxpool.Pool, query string) error
	}{
		{"pool query row", func(ctx context.Context, db *pgxpool.Pool, query string) error {
			var n int
			return db.QueryRow(ctx, query).Scan(&n)
		}},
		{"connection exec", func(ctx context.Context, db *pgxpool.Pool, query string) error {
			conn, err := db.Acquire(ctx)
			if err != nil {
				return err
			}
			defer conn.Release()
			_, err = conn.Exec(ctx, query)
			return err
		}},
		{"transaction", func(ctx context.Context, db *pgxpool.Pool, query string) error {
			return database.InTx(ctx, db, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, query)
				return err
			})
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := database.Open(ctx, proxy.RewriteURL(t, dbURL))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			// The comment finds this query in pg_stat_activity, so the cut
			// comes while it runs, not before it starts.
			marker := fmt.Sprintf("cut-%d-%d", i, time.Now().UnixNano())
			query := "SELECT 1 FROM pg_sleep(30) /* " + marker + " */"
			done := make(chan error, 1)
			go func() { done <- tt.run(ctx, db, query) }()
			testenv.WaitFor(t, 10*time.Second, "the query to be running", func() bool {
				var n int
				err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%' || $1 || '%' AND pid <> pg_backend_pid()`, marker).Scan(&n)
				return err == nil && n == 1
			})
			proxy.CutAll()
			select {
			case err := <-done:
				if !database.IsUnavailable(err) {
					t.Errorf("IsUnavailable(%T %v) = false after the connection was cut mid-query", err, err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("query still running 10s after the connection was cut")
			}
		})
	}
}

func TestServiceURLWithPoolSettingsIsCreatedMigratedAndOpenedWithThem(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	base := testenv.NewEmptyDatabase(t, "poolurl")
	if err := database.Drop(ctx, base); err != nil {
		t.Fatal(err)
	}
	// What an operator writes to size a service's pool.
	url := base + "&pool_max_conns=3&pool_min_conns=1"
	t.Cleanup(func() { _ = database.Drop(context.Background(), url) })
	if err := database.Create(ctx, url); err != nil {
		t.Fatalf("create: %v", err)
	}
	pool, err := database.OpenMigrated(ctx, url, testMigrations, "db")
	if err != nil {
		t.Fatalf("open migrated: %v", err)
	}
	defer pool.Close()
	if got := pool.Config().MaxConns; got != 3 {
		t.Errorf("pool max conns = %d, want the URL's 3", got)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT n FROM counter`).Scan(&n); err != nil || n != 1 {
		t.Errorf("counter = %d, %v; want the migrations applied", n, err)
	}
	pool.Close()
	if err := database.Drop(ctx, url); err != nil {
		t.Fatalf("drop: %v", err)
	}
}

// TestAServicePoolIsSizedForWaitingUnlessItsURLSaysOtherwise opens a
// service's pool as the binaries do, from a URL that says nothing of its
// size and from connection strings that do, in both of pgx's forms.
func TestAServicePoolIsSizedForWaitingUnlessItsURLSaysOtherwise(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testenv.NewDatabase(t, testMigrations, "db")
	cfg, err := database.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	keywords := fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable pool_max_conns = 5",
		cfg.Host, cfg.Port, cfg.User, cfg.Database)
	for _, tc := range []struct {
		name, url string
		want      int32
	}{
		{"no size", url, database.ServiceMaxConns},
		{"URL", url + "&pool_max_conns=3", 3},
		{"keyword/value", keywords, 5},
	} {
		pool, err := database.OpenMigrated(ctx, tc.url, testMigrations, "db")
		if err != nil {
			t.Fatalf("%s: open migrated: %v", tc.name, err)
		}
		if got := pool.Config().MaxConns; got != tc.want {
			t.Errorf("%s: pool max conns = %d, want %d", tc.name, got, tc.want)
		}
		pool.Close()
	}
}

// TestEveryRefusalOfTheDatabaseIsAFailure makes the real database refuse
// in each way a failover, a full disk or an overload shows itself, and
// wants every one classed as the database's failure; an error of the code
// (no database involved) is not.
func TestEveryRefusalOfTheDatabaseIsAFailure(t *testing.T) {
	t.Parallel()
	conn := openTestDB(t)
	tests := []struct {
		name, code string
		sql        []string
	}{
		{"read-only transaction", "25006", []string{`SET default_transaction_read_only = on`, `CREATE TABLE t (n int)`}},
		{"statement timeout", "57014", []string{`SET statement_timeout = '10ms'`, `SELECT pg_sleep(1)`}},
		{"lock not available", "55P03", []string{`SET lock_timeout = '10ms'`, `SELECT * FROM held FOR UPDATE`}},
		{"out of memory or disk: any other SQLSTATE", "22012", []string{`SELECT 1/0`}},
	}
	ctx := context.Background()
	holder := conn()
	if _, err := holder.Exec(ctx, `CREATE TABLE held (n int); INSERT INTO held VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	tx, err := holder.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT * FROM held FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := conn()
			var err error
			for _, stmt := range tt.sql {
				if _, err = c.Exec(ctx, stmt); err != nil {
					break
				}
			}
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != tt.code {
				t.Fatalf("got %v, want SQLSTATE %s", err, tt.code)
			}
			if !database.IsFailure(fmt.Errorf("mark paid: %w", err)) {
				t.Errorf("IsFailure(%v) = false, want true", err)
			}
		})
	}
	for _, err := range []error{nil, errors.New("order not found")} {
		if database.IsFailure(err) {
			t.Errorf("IsFailure(%v) = true, want false", err)
		}
	}
}
