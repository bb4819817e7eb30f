package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paytrade/paytrade/internal/auth"
	"github.com/paytrade/paytrade/internal/database"
	"github.com/paytrade/paytrade/internal/testenv"
	"github.com/paytrade/paytrade/migrations"
	"github.com/paytrade/paytrade/services/pay/httpapi"
	"github.com/paytrade/paytrade/services/pay/paytest"
	"github.com/paytrade/paytrade/services/pay/postgres"
)

// onQuery calls its function, once armed, the first time a statement
// holding its text starts.
type onQuery struct {
	text  string
	armed atomic.Bool
	fn    func()
}

func (q *onQuery) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	if strings.Contains(data.SQL, q.text) && q.armed.CompareAndSwap(true, false) {
		q.fn()
	}
	return ctx
}

func (q *onQuery) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// The primary dies while the payment's COMMIT waits for the synchronous
// standby: pay cannot know whether the debit happened, answers 503 with
// Retry-After, and the buyer's retry under the same Idempotency-Key ends
// with exactly one debit, whichever way the commit went.
func TestPaymentWhosePrimaryDiesDuringCommitAnswers503AndItsRetryDebitsOnce(t *testing.T) {
	c := testenv.StartPatroniCluster(t, testenv.PatroniOptions{})
	dbURL := c.NewDatabase(t, migrations.FS, migrations.Pay)
	leader, standby := c.Leader(t), c.SyncStandby(t)

	// The payment's transaction locks its pay order first; that is when
	// the synchronous standby stops acknowledging.
	var frozen *testenv.FrozenReplication
	lock := &onQuery{text: "FOR UPDATE", fn: func() { frozen = standby.FreezeReplication(t) }}
	ctx := context.Background()
	pool, err := database.Open(ctx, dbURL, func(cfg *pgxpool.Config) { cfg.ConnConfig.Tracer = lock })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	store := postgres.New(pool, paytest.StoreConfig(testenv.Name(t, "pay.topic")))
	h := &harness{pool: pool, srv: httptest.NewServer(httpapi.NewHandler(store, httpapi.Config{
		Auth:              keys.Authenticator(auth.AudiencePay),
		IdempotencySecret: []byte("idem"),
	}))}
	t.Cleanup(h.srv.Close)
	paytest.Funded(t, store, 1, 10_000)
	po := paytest.Applied(t, store, 1, 77, 2_500)
	path := fmt.Sprintf("/pay-orders/%d", po.ID)

	lock.armed.Store(true)
	answered := make(chan response, 1)
	go func() {
		answered <- h.call(t, http.MethodPost, path, userToken(t, 1), `{"pw":"123"}`, "Idempotency-Key", "buy-77")
	}()
	admin, err := database.Open(ctx, leader.NodeURL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
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
	snap := paytest.Snap(t, pool)
	if snap.Debits != 1 || snap.Balances[1] != 7_500 {
		t.Fatalf("after the retry: %d debits, balance %d; want exactly one debit, balance 7500", snap.Debits, snap.Balances[1])
	}
	paytest.CheckInvariants(t, pool)
	t.Logf("first answer %d %s; retry answered %d; leader now %s", first.status, first.code(), last.status, c.Leader(t).Name)
}
