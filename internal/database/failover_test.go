package database_test

import (
	"context"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paytrade/paytrade/internal/database"
	"github.com/paytrade/paytrade/internal/testenv"
)

// A primary demoted to a standby keeps its clients' connections and
// refuses every write on them (25006). The pool must drop such a
// connection, not hand it out again: here a session turned read-only
// stands for the demoted node.
func TestPooledConnectionRefusedAsReadOnlyIsDroppedNotReused(t *testing.T) {
	url := testenv.NewDatabase(t, fstest.MapFS{"t/000001_t.up.sql": {Data: []byte(`CREATE TABLE t (n int);`)}}, "t")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := database.Open(ctx, url+"&pool_max_conns=1")
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var readOnlyPID int
	if err := pool.QueryRow(ctx, `SELECT pg_backend_pid() FROM set_config('default_transaction_read_only', 'on', false)`).Scan(&readOnlyPID); err != nil {
		t.Fatal(err)
	}
	_, err = pool.Exec(ctx, `INSERT INTO t VALUES (1)`)
	if !database.IsFailure(err) {
		t.Fatalf("write on a read-only session: %v, want 25006", err)
	}
	if p, ok := database.AsProblem(err); !ok || p.Code != "database_unavailable" {
		t.Fatalf("a read-only refusal is answered as %v, want database_unavailable (503)", p)
	}
	var pid int
	if err := pool.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if pid == readOnlyPID {
		t.Fatalf("the pool handed out again the connection (backend %d) that was refused as read-only", pid)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO t VALUES (2)`); err != nil {
		t.Fatalf("write on the pool's next connection: %v", err)
	}
}

// The services' readiness names the server their pool writes to: of a
// Patroni cluster's nodes, the primary, before and after a failover.
func TestReadinessNamesThePrimaryBeforeAndAfterAFailover(t *testing.T) {
	c := testenv.StartPatroniCluster(t, testenv.PatroniOptions{})
	url := c.NewEmptyDatabase(t, testenv.Name(t, "ready"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pool, err := database.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	ready := database.Primary(pool)
	leader := c.Leader(t)
	facts, err := ready(ctx)
	if err != nil || facts["databasePrimary"] != leader.Addr {
		t.Fatalf("ready = %v, %v; want databasePrimary %s (the leader)", facts, err, leader.Addr)
	}
	standby := c.SyncStandby(t)
	leader.KillPostgres(t)
	testenv.WaitFor(t, time.Minute, "readiness to name the new primary", func() bool {
		facts, err = ready(ctx)
		return err == nil && facts["databasePrimary"] == standby.Addr
	})
}

// A commit whose wait for the synchronous standby is canceled is done on
// the primary only; PostgreSQL reports it done, with a warning. InTx must
// say its outcome is unknown, so that no client is told it happened.
func TestCommitWhoseWaitForTheStandbyIsCanceledIsReportedAsOutcomeUnknown(t *testing.T) {
	c := testenv.StartPatroniCluster(t, testenv.PatroniOptions{})
	url := c.NewEmptyDatabase(t, testenv.Name(t, "canceled"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pool, err := database.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `CREATE TABLE t (n int)`); err != nil {
		t.Fatal(err)
	}
	leader := c.Leader(t)
	c.SyncStandby(t).FreezeReplication(t)
	committed := make(chan error, 1)
	go func() {
		committed <- database.InTx(ctx, pool, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO t VALUES (1)`)
			return err
		})
	}()
	admin, err := pgx.Connect(ctx, leader.NodeURL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	testenv.WaitFor(t, 30*time.Second, "the commit to wait for the standby, then its wait to be canceled", func() bool {
		var canceled bool
		err := admin.QueryRow(ctx, `SELECT coalesce(bool_or(pg_cancel_backend(pid)), false) FROM pg_stat_activity WHERE wait_event = 'SyncRep'`).Scan(&canceled)
		return err == nil && canceled
	})
	err = <-committed
	if p, ok := database.AsProblem(err); !ok || p.Code != "commit_outcome_unknown" {
		t.Fatalf("InTx after its wait for the standby was canceled: %v, want commit_outcome_unknown", err)
	}
}
