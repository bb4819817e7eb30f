package testenv_test

import (
	"context"
	"testing"
	"time"

	"github.com/paytrade/paytrade/internal/database"
	"github.com/paytrade/paytrade/internal/testenv"
)

// The harness's own promise: a commit acknowledged by the leader is on the
// synchronous standby that takes over when the leader's PostgreSQL dies.
func TestPatroniClusterPromotesItsSynchronousStandbyWithEveryAcknowledgedCommit(t *testing.T) {
	c := testenv.StartPatroniCluster(t, testenv.PatroniOptions{})
	dbURL := c.NewEmptyDatabase(t, testenv.Name(t, "harness"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pool, err := database.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `CREATE TABLE acked (id int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if _, err := pool.Exec(ctx, `INSERT INTO acked VALUES ($1)`, i); err != nil {
			t.Fatal(err)
		}
	}
	leader, standby := c.Leader(t), c.SyncStandby(t)
	start := time.Now()
	leader.KillPostgres(t)
	testenv.WaitFor(t, time.Minute, "a new leader", func() bool {
		ms, err := c.MembersNow()
		if err != nil {
			return false
		}
		for _, m := range ms {
			if m.Role == "leader" && m.Name != leader.Name && m.State == "running" {
				return true
			}
		}
		return false
	})
	if got := c.Leader(t); got != standby {
		t.Fatalf("leader after failover = %s, want the synchronous standby %s", got.Name, standby.Name)
	}
	var n int
	testenv.WaitFor(t, time.Minute, "the new leader to take writes", func() bool {
		return pool.QueryRow(ctx, `SELECT count(*) FROM acked`).Scan(&n) == nil && database.Writable(pool)(ctx) == nil
	})
	t.Logf("failover took %v", time.Since(start))
	if n != 100 {
		t.Fatalf("rows after failover = %d, want every acknowledged one, 100", n)
	}
}
