// Package postgres stores the pay domain in PostgreSQL. Every state change is
// a conditional statement whose row count is checked, inside one transaction
// with the ledger row and the outbox event that go with it.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"runtime"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paytrade/paytrade/internal/crashpoint"
	"github.com/paytrade/paytrade/internal/database"
	"github.com/paytrade/paytrade/services/pay"
)

// Config says where pay.success events go and how the store behaves.
type Config struct {
	Exchange      string // exchange of pay.success and refund.success events
	PaySuccessKey string // routing key of pay.success events
	// RefundSuccessKey is the routing key of refund.success events
	// [refund.success].
	RefundSuccessKey string
	// Peppers hash payment passwords, the first every new one.
	Peppers pay.Peppers
	// PasswordChecks bounds the costly (bcrypt) password checks run at
	// once; one past it is refused. Zero: as many as there are CPUs.
	PasswordChecks int
	// Now is the host's clock. The store decides nothing by it: what it
	// compares (a pay order's expiry, a check's lapse, a lock's end) is
	// on the database's clock, so pays whose clocks disagree agree.
	Now             func() time.Time
	EventsCommitted func() // called after each committed payment: wakes the relay
	// seedWiring is the outbox; a faultinject build can replace it with
	// the course's publish after the commit (PublishAfterCommit).
	seedWiring
	Crash crashpoint.Set
	// PasswordLocked, when set, is told of every wallet locked for wrong
	// payment passwords, for the log and the metrics.
	PasswordLocked func(pay.PasswordLock)
	// RefundCredited, when set, is told of every refund credited, after
	// its commit: its kind (pay.PayOrder.RefundKind) and amount, for the
	// metrics.
	RefundCredited func(kind string, amount int64)
}

// Store implements pay.Service.
type Store struct {
	pool    *pgxpool.Pool
	cfg     Config
	checks  chan struct{} // a slot per costly password check in progress
	wallets walletChecks  // the password checks in progress here, by wallet
}

var _ pay.Service = (*Store)(nil)

// New returns a store over pool.
func New(pool *pgxpool.Pool, cfg Config) *Store {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.EventsCommitted == nil {
		cfg.EventsCommitted = func() {}
	}
	if cfg.RefundSuccessKey == "" {
		cfg.RefundSuccessKey = pay.RefundSuccessType
	}
	if cfg.PasswordChecks <= 0 {
		cfg.PasswordChecks = runtime.NumCPU()
	}
	return &Store{pool: pool, cfg: cfg, checks: make(chan struct{}, cfg.PasswordChecks), wallets: walletChecks{n: map[int64]int{}, locked: map[int64]lockSeen{}}}
}

// dbNow is the database's time in the transaction of q: what a pay order's,
// a payment's and a refund's times are written with, since they are
// compared with the database's clock (the expiry, reconcile's in-flight
// window), whatever the clock of the host pay runs on says.
func dbNow(ctx context.Context, q querier) (time.Time, error) {
	var now time.Time
	if err := q.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
		return time.Time{}, fmt.Errorf("read the database's time: %w", err)
	}
	return now.UTC(), nil
}

func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return database.InTx(ctx, s.pool, fn)
}

// lockKey turns a name into a transaction-scoped advisory lock key.
func lockKey(parts ...string) int64 {
	h := fnv.New64a()
	for _, p := range parts {
		_, _ = h.Write([]byte(p))
		_, _ = h.Write([]byte{0})
	}
	return int64(h.Sum64())
}

// lockBizOrder serialises every change of which pay order, if any, a
// business order has: applying and closing. Without it an apply and a close
// of a business order with no pay order yet could both succeed.
func lockBizOrder(ctx context.Context, tx pgx.Tx, bizOrderNo int64) error {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockKey("biz_order", fmt.Sprint(bizOrderNo))); err != nil {
		return fmt.Errorf("lock business order %d: %w", bizOrderNo, err)
	}
	return nil
}

const payOrderColumns = `id, biz_order_no, biz_user_id, amount, status, pay_channel_code, pay_type,
	order_info, pay_success_time, refunded_amount, refund_time, pay_over_time, create_time`

// scanPayOrder scans payOrderColumns, then any columns selected after
// them into extra.
func scanPayOrder(row pgx.Row, extra ...any) (pay.PayOrder, error) {
	var o pay.PayOrder
	err := row.Scan(append([]any{&o.ID, &o.BizOrderNo, &o.BizUserID, &o.Amount, &o.Status, &o.PayChannelCode, &o.PayType,
		&o.OrderInfo, &o.PaySuccessTime, &o.RefundedAmount, &o.RefundTime, &o.PayOverTime, &o.CreateTime}, extra...)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return pay.PayOrder{}, pay.ErrPayOrderNotFound
	}
	if err != nil {
		return pay.PayOrder{}, err
	}
	o.PayOverTime = o.PayOverTime.UTC()
	o.CreateTime = o.CreateTime.UTC()
	if o.PaySuccessTime != nil {
		t := o.PaySuccessTime.UTC()
		o.PaySuccessTime = &t
	}
	if o.RefundTime != nil {
		t := o.RefundTime.UTC()
		o.RefundTime = &t
	}
	return o, nil
}

// PayOrder returns the pay order with the given id.
func (s *Store) PayOrder(ctx context.Context, id int64) (pay.PayOrder, error) {
	o, err := scanPayOrder(s.pool.QueryRow(ctx, `SELECT `+payOrderColumns+` FROM pay_orders WHERE id = $1`, id))
	if err != nil && !errors.Is(err, pay.ErrPayOrderNotFound) {
		return o, fmt.Errorf("read pay order %d: %w", id, err)
	}
	return o, err
}

// PayOrdersByBizOrderNos returns the pay orders of the business orders that
// have one, by business order number.
func (s *Store) PayOrdersByBizOrderNos(ctx context.Context, bizOrderNos []int64) ([]pay.PayOrder, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+payOrderColumns+` FROM pay_orders WHERE biz_order_no = ANY($1) ORDER BY biz_order_no`, bizOrderNos)
	if err != nil {
		return nil, fmt.Errorf("read pay orders of %d business orders: %w", len(bizOrderNos), err)
	}
	orders, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (pay.PayOrder, error) { return scanPayOrder(row) })
	if err != nil {
		return nil, fmt.Errorf("read pay orders of %d business orders: %w", len(bizOrderNos), err)
	}
	return orders, nil
}

// PayOrderByBizOrderNo returns the pay order of a business order.
func (s *Store) PayOrderByBizOrderNo(ctx context.Context, bizOrderNo int64) (pay.PayOrder, error) {
	o, err := scanPayOrder(s.pool.QueryRow(ctx, `SELECT `+payOrderColumns+` FROM pay_orders WHERE biz_order_no = $1`, bizOrderNo))
	if err != nil && !errors.Is(err, pay.ErrPayOrderNotFound) {
		return o, fmt.Errorf("read pay order of business order %d: %w", bizOrderNo, err)
	}
	return o, err
}
