// Package postgres stores the trade domain in PostgreSQL. A payment is
// applied by one conditional UPDATE whose row count is checked, in the same
// transaction as the inbox row of the message that reported it.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paytrade/paytrade/internal/crashpoint"
	"github.com/paytrade/paytrade/internal/database"
	"github.com/paytrade/paytrade/services/trade"
)

// Store implements trade.Orders.
//
// Every time it writes that something is later compared with is the
// database's (now() in the statement), never the process's clock: trade's
// replicas and the database need not agree on the time for an order's age
// or a refund's to be right.
type Store struct {
	pool   *pgxpool.Pool
	events Events
}

// Events says where the store's refund.requested events go.
type Events struct {
	Exchange           string // trade.topic
	RefundRequestedKey string // refund.requested
	// Committed is called after each commit that wrote an event: it wakes
	// the outbox relay.
	Committed func()
	// Crash arms the fault suite's crash points.
	Crash crashpoint.Set
}

// DefaultEvents are the names DESIGN.md gives as defaults.
var DefaultEvents = Events{Exchange: "trade.topic", RefundRequestedKey: "refund.requested"}

var _ trade.Orders = (*Store)(nil)

// New returns a store over pool.
func New(pool *pgxpool.Pool) *Store {
	return &Store{pool: pool, events: DefaultEvents}
}

// WithEvents sends s's events where ev says, and returns s.
func (s *Store) WithEvents(ev Events) *Store {
	s.events = ev
	return s
}

// eventsCommitted tells whoever relays the outbox that events are waiting.
func (s *Store) eventsCommitted() {
	if s.events.Committed != nil {
		s.events.Committed()
	}
}

func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return database.InTx(ctx, s.pool, fn)
}

// orderColumns reads an order with its refunded amounts and its latest
// refund's status and credit time; the refund columns are subqueries so
// they also work in RETURNING.
const orderColumns = `id, user_id, total_fee, payment_type, status, create_time, pay_time, close_time,
	refunded_amount, refund_claimed,
	(SELECT r.status FROM refunds r WHERE r.order_id = orders.id ORDER BY r.requested_at DESC, r.id DESC LIMIT 1),
	(SELECT max(r.refunded_at) FROM refunds r WHERE r.order_id = orders.id)`

func scanOrder(row pgx.Row) (trade.Order, error) {
	var o trade.Order
	err := row.Scan(&o.ID, &o.UserID, &o.TotalFee, &o.PaymentType, &o.Status, &o.CreateTime, &o.PayTime, &o.CloseTime,
		&o.RefundedAmount, &o.RefundClaimed, &o.RefundStatus, &o.RefundTime)
	if errors.Is(err, pgx.ErrNoRows) {
		return trade.Order{}, trade.ErrOrderNotFound
	}
	if err != nil {
		return trade.Order{}, err
	}
	o.CreateTime = o.CreateTime.UTC()
	o.PayTime = utc(o.PayTime)
	o.CloseTime = utc(o.CloseTime)
	o.RefundTime = utc(o.RefundTime)
	return o, nil
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// CreateOrder creates an unpaid order for userID.
func (s *Store) CreateOrder(ctx context.Context, userID int64, req trade.NewOrder) (trade.Order, error) {
	if err := req.Validate(); err != nil {
		return trade.Order{}, err
	}
	o, err := scanOrder(s.pool.QueryRow(ctx, `
		INSERT INTO orders (user_id, total_fee, payment_type, status, create_time, update_time)
		VALUES ($1, $2, $3, $4, now(), now())
		RETURNING `+orderColumns,
		userID, req.TotalFee, req.PaymentType, trade.Unpaid))
	if err != nil {
		return trade.Order{}, fmt.Errorf("create order for user %d: %w", userID, err)
	}
	return o, nil
}

// Order returns the order with the given id.
func (s *Store) Order(ctx context.Context, id int64) (trade.Order, error) {
	o, err := scanOrder(s.pool.QueryRow(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = $1`, id))
	if err != nil && !errors.Is(err, trade.ErrOrderNotFound) {
		return o, fmt.Errorf("read order %d: %w", id, err)
	}
	return o, err
}

// Orders returns a user's orders, newest first.
func (s *Store) Orders(ctx context.Context, f trade.OrderFilter) ([]trade.Order, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = trade.DefaultOrdersPage
	}
	limit = min(limit, trade.MaxOrdersPage)
	rows, err := s.pool.Query(ctx, `
		SELECT `+orderColumns+` FROM orders
		WHERE user_id = $1 AND ($2 = 0 OR status = $2)
		ORDER BY id DESC LIMIT $3`, f.UserID, f.Status, limit)
	if err != nil {
		return nil, fmt.Errorf("list orders of user %d: %w", f.UserID, err)
	}
	orders, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (trade.Order, error) { return scanOrder(row) })
	if err != nil {
		return nil, fmt.Errorf("list orders of user %d: %w", f.UserID, err)
	}
	return orders, nil
}

// CancelUnpaid moves the order from unpaid to cancelled and returns it as
// it is afterwards. It is the caller's job to have closed the pay order
// first, so that nobody can pay for the order once it is cancelled.
func (s *Store) CancelUnpaid(ctx context.Context, id int64) (trade.Order, error) {
	o, err := scanOrder(s.pool.QueryRow(ctx, `
		UPDATE orders SET status = $2, close_time = now(), update_time = now()
		WHERE id = $1 AND status = $3
		RETURNING `+orderColumns, id, trade.Cancelled, trade.Unpaid))
	if errors.Is(err, trade.ErrOrderNotFound) {
		return s.Order(ctx, id)
	}
	if err != nil {
		return trade.Order{}, fmt.Errorf("cancel order %d: %w", id, err)
	}
	return o, nil
}

// UnpaidOrders returns up to limit orders unpaid for longer than
// olderThan by the database's clock, oldest first, after the order after
// (zero: from the start), walking the (status, create_time, id) index.
func (s *Store) UnpaidOrders(ctx context.Context, olderThan time.Duration, after trade.Order, limit int) ([]trade.Order, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT `+orderColumns+` FROM orders
		WHERE status = $1 AND create_time < now() - $2::interval AND (create_time, id) > ($3, $4)
		ORDER BY create_time, id LIMIT $5`,
		trade.Unpaid, olderThan, after.CreateTime, after.ID, limit)
	if err != nil {
		return nil, fmt.Errorf("list unpaid orders: %w", err)
	}
	orders, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (trade.Order, error) { return scanOrder(row) })
	if err != nil {
		return nil, fmt.Errorf("list unpaid orders: %w", err)
	}
	return orders, nil
}

// Exclusively runs fn unless another holder of the lock called name, in
// this or another trade process, is running; it reports whether fn ran.
// The lock is a session advisory lock on a connection held for fn's
// duration, so it goes away with a process that dies holding it.
func (s *Store) Exclusively(ctx context.Context, name string, fn func(ctx context.Context) error) (bool, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("acquire connection for lock %s: %w", name, err)
	}
	defer conn.Release()
	key := lockKey(name)
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&locked); err != nil {
		return false, fmt.Errorf("take lock %s: %w", name, err)
	}
	if !locked {
		return false, nil
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, key); err != nil {
			// A session lock outlives its holder's failure only on this
			// connection: drop the connection and the lock goes with it.
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}()
	return true, fn(ctx)
}

// lockKey turns a name into an advisory lock key.
func lockKey(name string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("trade\x00" + name))
	return int64(h.Sum64())
}
