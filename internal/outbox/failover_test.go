package outbox_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paytrade/paytrade/internal/database"
	"github.com/paytrade/paytrade/internal/outbox"
	"github.com/paytrade/paytrade/internal/testenv"
	"github.com/paytrade/paytrade/migrations"
)

// A commit whose wait for the synchronous standby is canceled is visible
// on the primary and missing on the standby. The relay must not publish
// its event: here the primary then dies, the standby that lacks the commit
// is promoted, and an event published before would announce a change that
// never happened. Every event delivered must be of a change the new
// primary has.
func TestRelayPublishesNothingAFailoverTakesBack(t *testing.T) {
	c := testenv.StartPatroniCluster(t, testenv.PatroniOptions{})
	dbURL := c.NewDatabase(t, migrations.FS, migrations.Pay)
	f := newFixtureAt(t, testenv.AMQPURL(t), dbURL)
	ctx := context.Background()
	if _, err := f.pool.Exec(ctx, `CREATE TABLE announced (event_id uuid PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	deliveries := f.bindQueue(t)
	relay := f.startRelay(t, f.amqpURL)
	leader, standby := c.Leader(t), c.SyncStandby(t)

	// The leader's Patroni goes first, so what the cluster knows of the
	// primary's WAL position stays before the commit below: the standby
	// that lacks it may then be promoted.
	leader.KillPatroni()
	time.Sleep(time.Second) // the standby flushes what it was sent
	frozen := standby.FreezeReplication(t)

	// A change and its event, committed by a client whose wait for the
	// standby an operator cancels: PostgreSQL then reports the commit
	// done, committed locally only.
	conn, err := pgx.Connect(ctx, leader.NodeURL(testenv.DatabaseName(t, dbURL)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	ghost, err := outbox.NewEvent(f.exchange, "pay.success", "pay.success", map[string]string{"what": "a payment the failover takes back"}, "ghost")
	if err != nil {
		t.Fatal(err)
	}
	committed := make(chan error, 1)
	go func() {
		committed <- pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO announced VALUES ($1)`, ghost.ID); err != nil {
				return err
			}
			return outbox.Insert(ctx, tx, ghost)
		})
	}()
	admin, err := pgx.Connect(ctx, leader.NodeURL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	testenv.WaitFor(t, 20*time.Second, "the commit to wait for the synchronous standby, then its wait to be canceled", func() bool {
		var canceled bool
		err := admin.QueryRow(ctx, `SELECT coalesce(bool_or(pg_cancel_backend(pid)), false) FROM pg_stat_activity WHERE wait_event = 'SyncRep'`).Scan(&canceled)
		return err == nil && canceled
	})
	if err := <-committed; err != nil {
		t.Fatalf("the commit whose wait was canceled: %v, want it reported done (with a warning)", err)
	}
	relay.Wake()
	select {
	case d := <-deliveries:
		t.Fatalf("the relay published %s, whose commit the synchronous standby does not have", d.MessageId)
	case <-time.After(3 * time.Second):
	}

	// The primary dies, and the WAL that reached the standby unread with it.
	leader.KillPostgres(t)
	frozen.Drop()
	testenv.WaitFor(t, 2*time.Minute, "the standby to be promoted and take writes", func() bool {
		return c.LeaderNow() == standby && database.Writable(f.pool)(ctx) == nil
	})
	after := f.insert(t, 1)
	relay.Wake()
	for len(after) > 0 {
		select {
		case d := <-deliveries:
			var exists bool
			if err := f.pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM announced WHERE event_id = $1::uuid)`, d.MessageId).Scan(&exists); err != nil {
				t.Fatal(err)
			}
			if d.MessageId == ghost.ID.String() && !exists {
				t.Fatalf("event %s was published for a change the new primary does not have: a ghost", d.MessageId)
			}
			delete(after, d.MessageId)
		case <-time.After(30 * time.Second):
			t.Fatalf("the relay on the new primary did not publish a new event within 30 s")
		}
	}
	var kept bool
	if err := f.pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM announced WHERE event_id = $1)`, ghost.ID).Scan(&kept); err != nil {
		t.Fatal(err)
	}
	t.Logf("the commit whose wait was canceled is on the new primary: %v", kept)
}
