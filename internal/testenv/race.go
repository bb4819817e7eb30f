package testenv

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// SkipFirstInsertThenFailItsCommit makes the next transaction that inserts
// into table see its first insert skipped (as ON CONFLICT DO NOTHING would
// for a row already there) and then fail at commit with a serialization
// failure, so the transaction is retried and its second attempt inserts
// for real. It is how a test shows that a retried transaction reports what
// its last attempt did, not what the first one saw.
func SkipFirstInsertThenFailItsCommit(tb testing.TB, pool *pgxpool.Pool, table string) {
	tb.Helper()
	_, err := pool.Exec(context.Background(), `
		CREATE SEQUENCE retry_fault_firings;
		CREATE TABLE retry_fault_marks (n int);
		CREATE FUNCTION retry_fault_skip() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF nextval('retry_fault_firings') = 1 THEN
				INSERT INTO retry_fault_marks VALUES (1);
				RETURN NULL;
			END IF;
			RETURN NEW;
		END $$;
		CREATE FUNCTION retry_fault_fail() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			RAISE EXCEPTION 'injected at commit' USING ERRCODE = 'serialization_failure';
		END $$;
		CREATE CONSTRAINT TRIGGER retry_fault_fail AFTER INSERT ON retry_fault_marks
			DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION retry_fault_fail();
		CREATE TRIGGER retry_fault_skip BEFORE INSERT ON `+table+`
			FOR EACH ROW EXECUTE FUNCTION retry_fault_skip();`)
	if err != nil {
		tb.Fatalf("arm the retry fault on %s: %v", table, err)
	}
}

// RetryFaultFired reports how often the fault armed by
// SkipFirstInsertThenFailItsCommit was reached: 2 once it skipped a first
// insert and let a retry's through.
func RetryFaultFired(tb testing.TB, pool *pgxpool.Pool) int64 {
	tb.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(), `SELECT last_value FROM retry_fault_firings`).Scan(&n); err != nil {
		tb.Fatalf("read the retry fault: %v", err)
	}
	return n
}

// Warm opens n connections of pool and puts them back, so goroutines racing
// on it start together instead of queueing behind the first one's dial.
func Warm(tb testing.TB, pool *pgxpool.Pool, n int) {
	tb.Helper()
	var conns []*pgxpool.Conn
	for range n {
		c, err := pool.Acquire(context.Background())
		if err != nil {
			tb.Fatalf("warm the pool: %v", err)
		}
		conns = append(conns, c)
	}
	for _, c := range conns {
		c.Release()
	}
}
