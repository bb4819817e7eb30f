package database_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

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
