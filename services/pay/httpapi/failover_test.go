package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paytrade/paytrade/internal/database"
	"github.com/paytrade/paytrade/internal/testenv"
	"github.com/paytrade/paytrade/migrations"
	"github.com/paytrade/paytrade/services/pay/paytest"
	"github.com/paytrade/paytrade/services/pay/postgres"
)

// The primary dies while the payment's COMMIT waits for the synchronous
// standby: pay cannot know whether the debit happened, answers 503 with
// Retry-After, and the buyer's retry under the same Idempotency-Key ends
// with exactly one debit, whichever way the commit went.
func TestPaymentWhosePrimaryDiesDuringCommitAnswers503AndItsRetryDebitsOnce(t *testing.T) {
	c := testenv.StartPatroniCluster(t, testenv.PatroniOptions{})
	dbURL := c.NewDatabase(t, migrations.FS, migrations.Pay)
	leader, standby := c.Leader(t), c.SyncStandby(t)

	// The payment is one statement that commits on its own, once the
	// password is checked; that is when the synchronous standby stops
	// acknowledging.
	var frozen *testenv.FrozenReplication
	froze := make(chan struct{})
	payStatement := &testenv.OnQuery{Text: "UPDATE pay_orders SET status = $5, pay_success_time", Fn: func() {
		frozen = standby.FreezeReplication(t)
		close(froze)
	}}
	h, store := clusterHarness(t, dbURL, payStatement)
	ctx := context.Background()
	paytest.Funded(t, store, 1, 10_000)
	po := paytest.Applied(t, store, 1, 77, 2_500)
	path := fmt.Sprintf("/pay-orders/%d", po.ID)

	payStatement.Armed.Store(true)
	answered := make(chan response, 1)
	go func() {
		answered <- h.call(t, http.MethodPost, path, userToken(t, 1), `{"pw":"123"}`, "Idempotency-Key", "buy-77")
	}()
	admin, err := database.Open(ctx, leader.NodeURL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	// The password check's writes wait for the standby too, briefly: only
	// a wait after the freeze is the payment's COMMIT.
	<-froze
	testenv.WaitFor(t, 20*time.Second, "the payment's COMMIT to wait for the synchronous standby", func() bool {
		var n int
		return admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'`).Scan(&n) == nil && n > 0
	})
	admin.Close()
	leader.KillPostgres(t)
	frozen.Thaw()

	first := <-answered
	if first.status != http.StatusServiceUnavailable || first.code() != "commit_outcome_unknown" || first.header.Get("Retry-After") == "" {
		t.Fatalf("payment whose primary died during COMMIT: %d %s Retry-After %q, want 503 commit_outcome_unknown with Retry-After",
			first.status, first.body, first.header.Get("Retry-After"))
	}
	var last response
	testenv.WaitFor(t, 90*time.Second, "the retry with the same Idempotency-Key to succeed", func() bool {
		last = h.call(t, http.MethodPost, path, userToken(t, 1), `{"pw":"123"}`, "Idempotency-Key", "buy-77")
		if last.status != http.StatusOK {
			time.Sleep(500 * time.Millisecond)
		}
		return last.status == http.StatusOK
	})
	snap := paytest.Snap(t, h.pool)
	if snap.Debits != 1 || snap.Balances[1] != 7_500 {
		t.Fatalf("after the retry: %d debits, balance %d; want exactly one debit, balance 7500", snap.Debits, snap.Balances[1])
	}
	paytest.CheckInvariants(t, h.pool)
	t.Logf("first answer %d %s; retry answered %d; leader now %s", first.status, first.code(), last.status, c.Leader(t).Name)
}

// clusterHarness is pay's HTTP API on a database of a Patroni cluster, its
// pool traced by tracer (nil: none); no relay, no broker.
func clusterHarness(t *testing.T, dbURL string, tracer pgx.QueryTracer) (*harness, *postgres.Store) {
	t.Helper()
	pool, err := database.Open(context.Background(), dbURL, func(cfg *pgxpool.Config) {
		if tracer != nil {
			cfg.ConnConfig.Tracer = tracer
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	store := postgres.New(pool, paytest.StoreConfig(testenv.Name(t, "pay.topic")))
	h := &harness{pool: pool, store: store, srv: serve(t, store)}
	return h, store
}

// A request whose commit's wait for the synchronous standby is canceled is
// answered 503 commit_outcome_unknown: its change is on the primary only.
// Its retry under the same Idempotency-Key finds the stored answer there;
// replayed at once, it would tell the client of a payment (or a deposit)
// that a failover now takes back. The replay must wait for the standby as
// the commit did: answered only once the standby has the change, and 503
// again if that wait is canceled too.
func TestAReplayIsAnsweredOnlyOnceTheSynchronousStandbyHasWhatItReplays(t *testing.T) {
	c := testenv.StartPatroniCluster(t, testenv.PatroniOptions{})
	dbURL := c.NewDatabase(t, migrations.FS, migrations.Pay)
	h, store := clusterHarness(t, dbURL, nil)
	paytest.Funded(t, store, 1, 10_000)
	po := paytest.Applied(t, store, 1, 78, 2_500)
	ctx := context.Background()
	admin, err := database.Open(ctx, c.Leader(t).NodeURL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	// syncWaits is how many backends wait for the standby; cancel, when
	// true, cancels their waits, as an operator's pg_cancel_backend does.
	syncWaits := func(cancel bool) int {
		var n int
		q := `SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'`
		if cancel {
			q = `SELECT count(*) FILTER (WHERE pg_cancel_backend(pid)) FROM pg_stat_activity WHERE wait_event = 'SyncRep'`
		}
		if err := admin.QueryRow(ctx, q).Scan(&n); err != nil {
			t.Logf("pg_stat_activity: %v", err)
			return 0
		}
		return n
	}
	for _, tc := range []struct {
		name string
		send func() response
	}{
		{"payment", func() response {
			return h.call(t, http.MethodPost, fmt.Sprintf("/pay-orders/%d", po.ID), userToken(t, 1), `{"pw":"123"}`, "Idempotency-Key", "buy-78")
		}},
		{"deposit", func() response {
			return h.call(t, http.MethodPost, "/accounts/1/deposits", operatorToken(t), `{"amount":500}`, "Idempotency-Key", "top-up-1")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frozen := c.SyncStandby(t).FreezeReplication(t)
			// Every commit of the request waits for the standby (the
			// password check's too); each wait is canceled, as an
			// operator's pg_cancel_backend or a statement timeout does.
			ask := func(what string) response {
				answered := make(chan response, 1)
				go func() { answered <- tc.send() }()
				var got response
				testenv.WaitFor(t, 30*time.Second, what+" to be answered, each of its waits for the standby canceled", func() bool {
					select {
					case got = <-answered:
						return true
					default:
						syncWaits(true)
						return false
					}
				})
				return got
			}
			if first := ask("the " + tc.name); first.status != http.StatusServiceUnavailable || first.code() != "commit_outcome_unknown" {
				t.Fatalf("the %s whose wait for the standby was canceled: %d %s, want 503 commit_outcome_unknown", tc.name, first.status, first.body)
			}
			if replay := ask("its replay"); replay.status != http.StatusServiceUnavailable || replay.code() != "commit_outcome_unknown" {
				t.Fatalf("the %s's replay while the standby does not have it: %d %s, want 503 commit_outcome_unknown: a failover now would take back what it tells",
					tc.name, replay.status, replay.body)
			}
			frozen.Thaw()
			if replay := tc.send(); replay.status/100 != 2 || replay.header.Get("Idempotent-Replayed") != "true" {
				t.Fatalf("the %s's replay once the standby has it: %d %s, want it replayed", tc.name, replay.status, replay.body)
			}
		})
	}
	snap := paytest.Snap(t, h.pool)
	if snap.Debits != 1 || snap.Balances[1] != 8_000 {
		t.Fatalf("%d debits, balance %d; want one debit and one deposit: 10000 - 2500 + 500", snap.Debits, snap.Balances[1])
	}
	paytest.CheckInvariants(t, h.pool)
}

// A pay order's id comes from a sequence, which a promoted standby hands
// out again past what it has of the old primary's WAL. Nothing answered
// may be among what it lacks: pay orders applied for before a failover
// and answered keep their ids to themselves afterwards. The last ones are
// applied for while the standbys receive nothing, more of them than a
// sequence logs ahead (32), each twice; each wait for the standby is
// canceled, and then the primary dies and a standby without them is
// promoted.
func TestAPayOrderIDAnsweredBeforeAFailoverIsNeverHandedOutAgain(t *testing.T) {
	c := testenv.StartPatroniCluster(t, testenv.PatroniOptions{})
	dbURL := c.NewDatabase(t, migrations.FS, migrations.Pay)
	h, store := clusterHarness(t, dbURL, nil)
	paytest.Funded(t, store, 1, 10_000)
	ctx := context.Background()
	leader := c.Leader(t)
	admin, err := database.Open(ctx, leader.NodeURL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admin.Close)
	// apply asks for business order biz's pay order and returns its id if
	// it was answered; with cancel, it cancels every wait for the standby
	// meanwhile (before the fault the standby answers: nothing to cancel,
	// and canceling there would turn a slow commit into a 503).
	apply := func(biz int, cancel bool) (int64, bool) {
		answered := make(chan response, 1)
		go func() {
			answered <- h.call(t, http.MethodPost, "/pay-orders", serviceToken(t),
				fmt.Sprintf(`{"bizOrderNo":%d,"bizUserId":1,"amount":100,"payChannelCode":"balance","payType":5}`, biz))
		}()
		var r response
		testenv.WaitFor(t, time.Minute, fmt.Sprintf("business order %d's pay order to be answered", biz), func() bool {
			select {
			case r = <-answered:
				return true
			default:
				if cancel {
					_, _ = admin.Exec(ctx, `SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep'`)
				}
				return false
			}
		})
		if r.status/100 != 2 {
			if r.status != http.StatusServiceUnavailable {
				t.Fatalf("apply for business order %d: %d %s, want 2xx or 503", biz, r.status, r.body)
			}
			return 0, false
		}
		var po struct{ ID int64 }
		r.decode(t, &po)
		return po.ID, true
	}
	told := map[int64]int{} // id → the business order it was answered for
	for biz := 1; biz <= 5; biz++ {
		id, ok := apply(biz, false)
		if !ok {
			t.Fatalf("apply for business order %d before any fault: not answered", biz)
		}
		told[id] = biz
	}

	// The leader's Patroni goes first, so what the cluster knows of the
	// primary's WAL position stays before what follows: a standby that
	// lacks it may then be promoted.
	leader.KillPatroni()
	testenv.WaitFor(t, 30*time.Second, "every standby to have flushed the primary's WAL", func() bool {
		var behind int
		err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_replication WHERE flush_lsn IS NULL OR flush_lsn < pg_current_wal_lsn()`).Scan(&behind)
		return err == nil && behind == 0
	})
	var frozen []*testenv.FrozenReplication
	for _, n := range c.Nodes {
		if n != leader {
			frozen = append(frozen, n.FreezeReplication(t))
		}
	}
	lost := 0
	for biz := 6; biz <= 45; biz++ {
		// Asked twice, as trade retries a 503: the second finds the first's
		// pay order on the primary, which the standbys do not have.
		for range 2 {
			if id, ok := apply(biz, true); ok {
				told[id] = biz
				lost++
			}
		}
	}
	leader.KillPostgres(t)
	for _, f := range frozen {
		f.Drop()
	}
	testenv.WaitFor(t, 2*time.Minute, "a standby to be promoted and take writes", func() bool {
		l := c.LeaderNow()
		return l != nil && l != leader && database.Writable(h.pool)(ctx) == nil
	})
	for biz := 101; biz <= 140; biz++ {
		var id int64
		testenv.WaitFor(t, time.Minute, fmt.Sprintf("business order %d's pay order on the new primary", biz), func() bool {
			var ok bool
			// Not canceled: a retry finds the pay order of a 503 and waits
			// for the standby before it answers.
			id, ok = apply(biz, false)
			return ok
		})
		if earlier, ok := told[id]; ok {
			t.Fatalf("pay order %d of business order %d has the id answered before the failover for business order %d (%d answered while the standbys received nothing)",
				id, biz, earlier, lost)
		}
	}
	t.Logf("%d pay orders answered before the failover, %d of them while the standbys received nothing", len(told), lost)
}
