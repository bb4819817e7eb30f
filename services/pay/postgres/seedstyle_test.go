//go:build faultinject

package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paytrade/paytrade/internal/database"
	"github.com/paytrade/paytrade/internal/outbox"
	"github.com/paytrade/paytrade/internal/testenv"
	"github.com/paytrade/paytrade/migrations"
	"github.com/paytrade/paytrade/services/pay"
	"github.com/paytrade/paytrade/services/pay/paytest"
	"github.com/paytrade/paytrade/services/pay/postgres"
)

// afterCommit is a PublishAfterCommit hook that records each event and
// what another connection, one that took no part in the payment, saw of
// the database when the hook was called.
type afterCommit struct {
	observer *pgx.Conn
	calls    []afterCommitCall
}

type afterCommitCall struct {
	event        outbox.Event
	status       pay.PayOrderStatus // of the event's pay order, as the observer read it
	outboxEvents int
	err          error
}

func (a *afterCommit) publish(ctx context.Context, ev outbox.Event) {
	c := afterCommitCall{event: ev}
	var body pay.PaySuccess
	c.err = json.Unmarshal(ev.Payload, &body)
	if c.err == nil {
		c.err = a.observer.QueryRow(ctx, `SELECT status, (SELECT count(*) FROM outbox_events) FROM pay_orders WHERE id = $1`, body.PayOrderID).
			Scan(&c.status, &c.outboxEvents)
	}
	a.calls = append(a.calls, c)
}

// newSeedStyleStore returns a store whose events go to a recording
// PublishAfterCommit hook instead of the outbox.
func newSeedStyleStore(t *testing.T) (*postgres.Store, *afterCommit, *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	dbURL := testenv.NewDatabase(t, migrations.FS, migrations.Pay)
	pool, err := database.Open(ctx, dbURL)
	if err != nil {
		t.Fatalf("open pay database: %v", err)
	}
	t.Cleanup(pool.Close)
	observer, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatalf("connect the observer: %v", err)
	}
	t.Cleanup(func() { _ = observer.Close(context.Background()) })
	t.Cleanup(func() { paytest.CheckInvariants(t, pool) })

	hook := &afterCommit{observer: observer}
	cfg := paytest.StoreConfig("pay.topic")
	cfg.PublishAfterCommit = hook.publish
	return postgres.New(pool, cfg), hook, pool
}

func TestPublishAfterCommitGetsThePaymentsEventOnceAfterTheCommitAndNoOutboxRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, hook, pool := newSeedStyleStore(t)
	paytest.Funded(t, store, 1, 10_000)
	order := paytest.Applied(t, store, 1, 1001, 3_000)

	p := pay.Payment{PayOrderID: order.ID, UserID: 1, Password: "123", CorrelationID: "corr-1", IdempotencyKey: "k1", Fingerprint: []byte("fp")}
	res, err := store.Pay(ctx, p)
	if err != nil {
		t.Fatalf("pay: %v", err)
	}
	if len(hook.calls) != 1 {
		t.Fatalf("PublishAfterCommit called %d times for one payment, want once", len(hook.calls))
	}
	call := hook.calls[0]
	if call.err != nil {
		t.Fatalf("read the pay order from another connection inside PublishAfterCommit: %v", call.err)
	}
	if call.status != pay.Paid || call.outboxEvents != 0 {
		t.Errorf("inside PublishAfterCommit another connection saw the pay order with status %d and %d outbox rows, want %d (committed) and 0",
			call.status, call.outboxEvents, pay.Paid)
	}

	ev := call.event
	if ev.ID == uuid.Nil || ev.Exchange != "pay.topic" || ev.RoutingKey != "pay.success" || ev.Type != pay.PaySuccessType || ev.CorrelationID != "corr-1" {
		t.Errorf("event {id %v, to %s/%s, type %s, correlation %q}, want a fresh id to pay.topic/pay.success, type %s, correlation corr-1",
			ev.ID, ev.Exchange, ev.RoutingKey, ev.Type, ev.CorrelationID, pay.PaySuccessType)
	}
	var body pay.PaySuccess
	if err := json.Unmarshal(ev.Payload, &body); err != nil {
		t.Fatalf("decode event payload %s: %v", ev.Payload, err)
	}
	want := pay.PaySuccess{BizOrderNo: 1001, PayOrderID: order.ID, UserID: 1, Amount: 3_000, PaidAt: *res.PayOrder.PaySuccessTime}
	if !body.PaidAt.Equal(want.PaidAt) {
		t.Errorf("event paidAt %v, want the pay order's success time %v", body.PaidAt, want.PaidAt)
	}
	body.PaidAt = want.PaidAt
	if body != want {
		t.Errorf("event payload %+v, want %+v", body, want)
	}

	again, err := store.Pay(ctx, p)
	if err != nil || !again.Replayed {
		t.Fatalf("same payment under the same idempotency key: replayed=%v err=%v, want the replay", again.Replayed, err)
	}
	if len(hook.calls) != 1 {
		t.Errorf("PublishAfterCommit called %d times after a replay, want still once", len(hook.calls))
	}
	if snap := paytest.Snap(t, pool); snap.OutboxEvents != 0 || snap.Debits != 1 {
		t.Errorf("%d outbox rows and %d debits, want 0 and 1", snap.OutboxEvents, snap.Debits)
	}
}

func TestPublishAfterCommitIsNotCalledForAPaymentThatFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, hook, _ := newSeedStyleStore(t)
	paytest.Funded(t, store, 1, 1_000)
	tests := []struct {
		name    string
		biz     int64
		amount  int64
		pw      string
		wantErr error
	}{
		{"wrong password", 1, 100, "wrong", pay.ErrWrongPassword},
		{"insufficient funds", 2, 5_000, "123", pay.ErrInsufficientFunds},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			order := paytest.Applied(t, store, 1, tt.biz, tt.amount)
			if _, err := store.Pay(ctx, payment(order, tt.pw)); !errors.Is(err, tt.wantErr) {
				t.Fatalf("pay: %v, want %v", err, tt.wantErr)
			}
		})
	}
	if len(hook.calls) != 0 {
		t.Errorf("PublishAfterCommit called %d times for payments that rolled back, want never", len(hook.calls))
	}
}

func TestPaymentEventGoesToTheOutboxOnlyWithoutPublishAfterCommit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		hook       bool
		wantOutbox int
		wantCalls  int
	}{
		{"outbox (default)", false, 1, 0},
		{"publish after commit", true, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pool := paytest.NewPool(t)
			t.Cleanup(func() { paytest.CheckInvariants(t, pool) })
			calls := 0
			cfg := paytest.StoreConfig("pay.topic")
			if tt.hook {
				cfg.PublishAfterCommit = func(context.Context, outbox.Event) { calls++ }
			}
			store := postgres.New(pool, cfg)
			paytest.Funded(t, store, 1, 1_000)
			order := paytest.Applied(t, store, 1, 1, 100)
			if _, err := store.Pay(context.Background(), payment(order, "123")); err != nil {
				t.Fatalf("pay: %v", err)
			}
			if snap := paytest.Snap(t, pool); snap.OutboxEvents != tt.wantOutbox || calls != tt.wantCalls {
				t.Errorf("%d outbox rows, %d PublishAfterCommit calls; want %d and %d", snap.OutboxEvents, calls, tt.wantOutbox, tt.wantCalls)
			}
		})
	}
}
