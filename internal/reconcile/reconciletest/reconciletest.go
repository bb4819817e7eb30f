// Package reconciletest builds pay and trade databases for tests of
// reconciliation: a consistent pair, and the inconsistencies Run must find,
// each made by writing rows directly with SQL as a bug or a hand would.
package reconciletest

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paytrade/paytrade/internal/database"
	"github.com/paytrade/paytrade/internal/reconcile"
	"github.com/paytrade/paytrade/internal/testenv"
	"github.com/paytrade/paytrade/migrations"
	"github.com/paytrade/paytrade/services/pay"
	"github.com/paytrade/paytrade/services/trade"
)

// Databases are a migrated pay and trade database of one test.
type Databases struct {
	PayURL, TradeURL   string
	PayPool, TradePool *pgxpool.Pool
}

// New creates the two databases for this test; they are dropped when it ends.
func New(tb testing.TB) *Databases {
	tb.Helper()
	d := &Databases{
		PayURL:   testenv.NewDatabase(tb, migrations.FS, migrations.Pay),
		TradeURL: testenv.NewDatabase(tb, migrations.FS, migrations.Trade),
	}
	d.PayPool, d.TradePool = open(tb, d.PayURL), open(tb, d.TradeURL)
	return d
}

func open(tb testing.TB, dbURL string) *pgxpool.Pool {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pool, err := database.Open(ctx, dbURL)
	if err != nil {
		tb.Fatalf("open test database: %v", err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// exec runs sql on pool, failing the test on error.
func exec(tb testing.TB, pool *pgxpool.Pool, sql string, args ...any) {
	tb.Helper()
	if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
}

// PaidAt is when the seeded payments were made: long enough ago that no
// reconciliation excuses them as on their way.
var PaidAt = time.Now().Add(-10 * time.Minute).UTC().Truncate(time.Microsecond)

// Fund opens a wallet for userID holding amount, with its funding in the ledger.
func (d *Databases) Fund(tb testing.TB, userID, amount int64) {
	tb.Helper()
	exec(tb, d.PayPool, `INSERT INTO accounts (user_id, balance, password_hash) VALUES ($1, $2, 'x')`, userID, amount)
	if amount != 0 { // the ledger holds changes only
		exec(tb, d.PayPool, `INSERT INTO ledger_entries (user_id, kind, amount, balance_after) VALUES ($1, 'funding', $2, $2)`, userID, amount)
	}
}

// PayOrder inserts a pay order of status for bizOrderNo, without touching
// any balance, and returns its id. A paid one is paid at paidAt; a
// refunded one is paid and refunded in full at paidAt.
func (d *Databases) PayOrder(tb testing.TB, bizOrderNo, userID, amount int64, status pay.PayOrderStatus, paidAt time.Time) int64 {
	tb.Helper()
	return d.PartlyRefunded(tb, bizOrderNo, userID, amount, status, 0, paidAt)
}

// PartlyRefunded inserts a pay order of status for bizOrderNo that holds
// refunded as credited back, and returns its id; a refunded one holds its
// amount.
func (d *Databases) PartlyRefunded(tb testing.TB, bizOrderNo, userID, amount int64, status pay.PayOrderStatus, refunded int64, paidAt time.Time) int64 {
	tb.Helper()
	var successTime, refundTime *time.Time
	if status == pay.Paid || status == pay.Refunded {
		successTime = &paidAt
	}
	if status == pay.Refunded {
		refunded = amount
	}
	if refunded > 0 {
		refundTime = &paidAt
	}
	var id int64
	err := d.PayPool.QueryRow(context.Background(), `
		INSERT INTO pay_orders (biz_order_no, biz_user_id, amount, status, pay_channel_code, pay_type, pay_success_time, refunded_amount, refund_time, pay_over_time)
		VALUES ($1, $2, $3, $4, 'balance', 5, $5, $6, $7, now() + interval '2 hours') RETURNING id`,
		bizOrderNo, userID, amount, status, successTime, refunded, refundTime).Scan(&id)
	if err != nil {
		tb.Fatalf("insert pay order of business order %d: %v", bizOrderNo, err)
	}
	return id
}

// Debit takes amount from userID's balance for pay order payOrderID, with
// its ledger row, as paying does.
func (d *Databases) Debit(tb testing.TB, userID, payOrderID, amount int64) {
	tb.Helper()
	exec(tb, d.PayPool, `
		WITH a AS (UPDATE accounts SET balance = balance - $3 WHERE user_id = $1 RETURNING balance)
		INSERT INTO ledger_entries (user_id, kind, amount, balance_after, pay_order_id)
		SELECT $1, 'debit', -$3, a.balance, $2 FROM a`, userID, payOrderID, amount)
}

// Refund gives amount back to userID for pay order payOrderID under
// refund id, with its ledger row.
func (d *Databases) Refund(tb testing.TB, userID, payOrderID int64, id uuid.UUID, amount int64) {
	tb.Helper()
	exec(tb, d.PayPool, `
		WITH a AS (UPDATE accounts SET balance = balance + $3 WHERE user_id = $1 RETURNING balance)
		INSERT INTO ledger_entries (user_id, kind, amount, balance_after, pay_order_id, refund_id)
		SELECT $1, 'refund', $3, a.balance, $2, $4 FROM a`, userID, payOrderID, amount, id)
}

// Pay pays bizOrderNo at pay as the service does: a paid pay order and
// its debit. It returns the pay order's id.
func (d *Databases) Pay(tb testing.TB, bizOrderNo, userID, amount int64) int64 {
	tb.Helper()
	id := d.PayOrder(tb, bizOrderNo, userID, amount, pay.Paid, PaidAt)
	d.Debit(tb, userID, id, amount)
	return id
}

// RefundRequest records at trade a refund of bizOrderNo in status
// (requested, refunded or rejected), requested at requestedAt, and returns
// its id. The order, if there is one, counts it as trade does: claimed
// unless rejected, refunded when refunded, and refunded (7) when in full.
func (d *Databases) RefundRequest(tb testing.TB, bizOrderNo, userID, amount int64, status trade.RefundStatus, requestedAt time.Time) uuid.UUID {
	tb.Helper()
	id := uuid.New()
	exec(tb, d.TradePool, `
		INSERT INTO refunds (id, order_id, user_id, amount, reason, status, requested_at, refunded_at, rejection)
		VALUES ($1, $2, $3, $4, 'user_request', $5, $6,
			CASE WHEN $5 = 'refunded' THEN $6::timestamptz END, CASE WHEN $5 = 'rejected' THEN 'not_paid' END)`,
		id, bizOrderNo, userID, amount, string(status), requestedAt)
	claimed, refunded := amount, int64(0)
	switch status {
	case trade.RefundRejected:
		claimed = 0
	case trade.RefundRefunded:
		refunded = amount
	}
	exec(tb, d.TradePool, `
		UPDATE orders SET refund_claimed = refund_claimed + $2, refunded_amount = refunded_amount + $3,
			status = CASE WHEN refunded_amount + $3 = total_fee THEN $4 ELSE status END
		WHERE id = $1`, bizOrderNo, claimed, refunded, trade.Refunded)
	return id
}

// Settle records that an operator settled rejected refund id.
func (d *Databases) Settle(tb testing.TB, id uuid.UUID) {
	tb.Helper()
	exec(tb, d.TradePool, `UPDATE refunds SET settlement = 'resolved: paid by bank transfer', settled_at = now() WHERE id = $1`, id)
}

// RefundDecision records at pay its decision (refunded or rejected) about
// refund id of pay order payOrderID, made at decidedAt, with the pay
// order's credits after it (total); it moves no money.
func (d *Databases) RefundDecision(tb testing.TB, id uuid.UUID, bizOrderNo, payOrderID, userID, amount int64, outcome pay.RefundOutcome, total int64, decidedAt time.Time) {
	tb.Helper()
	exec(tb, d.PayPool, `
		INSERT INTO refunds (refund_id, biz_order_no, pay_order_id, user_id, amount, reason, outcome, rejection, requested_at, decided_at, refunded_total)
		VALUES ($1, $2, $3, $4, $5, 'user_request', $6, CASE WHEN $6 = 'rejected' THEN 'not_paid' END, $7, $7,
			CASE WHEN $6 = 'refunded' THEN $8::bigint END)`,
		id, bizOrderNo, payOrderID, userID, amount, string(outcome), decidedAt, total)
}

// Refunded pays bizOrderNo and refunds it end to end, as the services do:
// a refunded pay order with its debit and its credit, the decision at pay,
// the refund and the refunded order (status 7) at trade. It returns the
// pay order's id and the refund's.
func (d *Databases) Refunded(tb testing.TB, bizOrderNo, userID, amount int64) (int64, uuid.UUID) {
	tb.Helper()
	id := d.PayOrder(tb, bizOrderNo, userID, amount, pay.Refunded, PaidAt)
	d.Debit(tb, userID, id, amount)
	d.Order(tb, bizOrderNo, userID, amount, trade.Paid, true)
	refund := d.RefundRequest(tb, bizOrderNo, userID, amount, trade.RefundRefunded, PaidAt)
	d.Refund(tb, userID, id, refund, amount)
	d.RefundDecision(tb, refund, bizOrderNo, id, userID, amount, pay.RefundCredited, amount, PaidAt)
	return id, refund
}

// Order inserts order id at trade with status; payTime is set if paid is
// true, and close_time for a cancelled order, as the schema wants. An
// order becomes refunded (7) by its refunds: RefundRequest.
func (d *Databases) Order(tb testing.TB, id, userID, totalFee int64, status trade.OrderStatus, paid bool) {
	tb.Helper()
	var payTime *time.Time
	if paid {
		payTime = &PaidAt
	}
	exec(tb, d.TradePool, `
		INSERT INTO orders (id, user_id, total_fee, payment_type, status, pay_time, close_time)
		VALUES ($1, $2, $3, 5, $4::smallint, $5, CASE WHEN $4::smallint = 5 THEN now() END)`, id, userID, totalFee, status, payTime)
}

// Discrepancy records at trade that payment payOrderID could not be applied.
func (d *Databases) Discrepancy(tb testing.TB, bizOrderNo, payOrderID, userID, amount int64, reason string, orderStatus trade.OrderStatus) {
	tb.Helper()
	exec(tb, d.TradePool, `
		INSERT INTO payment_discrepancies (biz_order_no, pay_order_id, user_id, amount, paid_at, reason, order_status, source)
		VALUES ($1, $2, $3, $4, $5, $6, $7, 'event')`, bizOrderNo, payOrderID, userID, amount, PaidAt, reason, orderStatus)
}

// OutboxEvent writes a pending outbox event created at createdAt.
func (d *Databases) OutboxEvent(tb testing.TB, createdAt time.Time) {
	tb.Helper()
	exec(tb, d.PayPool, `
		INSERT INTO outbox_events (id, exchange, routing_key, message_type, payload, created_at, available_at)
		VALUES ($1, 'pay.topic', 'pay.success', 'pay.success', '{}', $2, $2)`, uuid.New(), createdAt)
}

// Consistent fills the databases with a small history that breaks no
// invariant: paid, shipped and refunded orders, one refunded in part, a
// refund pay rejected and an operator settled, an order waiting for
// payment, one closed unpaid, a payment trade could not apply and
// recorded as a discrepancy, and a fresh outbox event.
func (d *Databases) Consistent(tb testing.TB) {
	tb.Helper()
	d.Fund(tb, 1, 100_000)
	d.Fund(tb, 2, 50_000)
	d.Fund(tb, 3, 0)

	d.Pay(tb, 101, 1, 10_000)
	d.Order(tb, 101, 1, 10_000, trade.Paid, true)

	d.Pay(tb, 102, 2, 2_500)
	d.Order(tb, 102, 2, 2_500, trade.Shipped, true)

	d.Refunded(tb, 103, 1, 700)

	d.PayOrder(tb, 104, 2, 900, pay.Waiting, time.Time{})
	d.Order(tb, 104, 2, 900, trade.Unpaid, false)

	d.PayOrder(tb, 105, 1, 300, pay.Closed, time.Time{})
	d.Order(tb, 105, 1, 300, trade.Cancelled, false)

	late := d.Pay(tb, 106, 2, 1_200) // paid after its order was closed
	d.Order(tb, 106, 2, 1_200, trade.Cancelled, false)
	d.Discrepancy(tb, 106, late, 2, 1_200, "order_moved_on", trade.Cancelled)

	d.Order(tb, 107, 3, 400, trade.Unpaid, false) // no pay order yet

	rejected := d.Pay(tb, 108, 2, 800) // a refund pay could not honour: settled, nothing moved
	d.Order(tb, 108, 2, 800, trade.Paid, true)
	refund := d.RefundRequest(tb, 108, 2, 800, trade.RefundRejected, PaidAt)
	d.RefundDecision(tb, refund, 108, rejected, 2, 800, pay.RefundRejected, 0, PaidAt)
	d.Settle(tb, refund)

	d.PartlyPaidBack(tb, 109, 1, 1_000, 400)

	d.OutboxEvent(tb, time.Now())
}

// PartlyPaidBack pays bizOrderNo and refunds part of it end to end, as the
// services do, and returns the pay order's id and the refund's.
func (d *Databases) PartlyPaidBack(tb testing.TB, bizOrderNo, userID, amount, part int64) (int64, uuid.UUID) {
	tb.Helper()
	id := d.PartlyRefunded(tb, bizOrderNo, userID, amount, pay.Paid, part, PaidAt)
	d.Debit(tb, userID, id, amount)
	d.Order(tb, bizOrderNo, userID, amount, trade.Paid, true)
	refund := d.RefundRequest(tb, bizOrderNo, userID, part, trade.RefundRefunded, PaidAt)
	d.Refund(tb, userID, id, refund, part)
	d.RefundDecision(tb, refund, bizOrderNo, id, userID, part, pay.RefundCredited, part, PaidAt)
	return id, refund
}

// Inconsistency is one way the databases can disagree, made on top of Consistent.
type Inconsistency struct {
	Name     string
	Make     func(tb testing.TB, d *Databases)
	Check    string             // the reconcile.Check* that must find it
	Severity reconcile.Severity // what that check's findings mean
}

// Inconsistencies are the disagreements Run must report, one per way each
// check can fire.
var Inconsistencies = []Inconsistency{
	{"payment for an unpaid order", func(tb testing.TB, d *Databases) {
		d.Pay(tb, 201, 1, 500)
		d.Order(tb, 201, 1, 500, trade.Unpaid, false)
	}, reconcile.CheckPaymentsWithoutPaidOrder, reconcile.Failure},
	{"payment for a missing order", func(tb testing.TB, d *Databases) {
		d.Pay(tb, 202, 1, 500)
	}, reconcile.CheckPaymentsWithoutPaidOrder, reconcile.Failure},
	{"payment for an order closed unpaid, no discrepancy recorded", func(tb testing.TB, d *Databases) {
		d.Pay(tb, 203, 1, 500)
		d.Order(tb, 203, 1, 500, trade.Cancelled, false)
	}, reconcile.CheckChargedButCancelled, reconcile.Failure},
	{"order cancelled after it was paid, not refunded", func(tb testing.TB, d *Databases) {
		d.Pay(tb, 230, 1, 500)
		d.Order(tb, 230, 1, 500, trade.Cancelled, true)
	}, reconcile.CheckChargedButCancelled, reconcile.Failure},
	{"paid order without a pay order", func(tb testing.TB, d *Databases) {
		d.Order(tb, 204, 1, 500, trade.Paid, true)
	}, reconcile.CheckPaidOrdersWithoutPayment, reconcile.Failure},
	{"paid order whose pay order waits", func(tb testing.TB, d *Databases) {
		d.PayOrder(tb, 205, 1, 500, pay.Waiting, time.Time{})
		d.Order(tb, 205, 1, 500, trade.Paid, true)
	}, reconcile.CheckPaidOrdersWithoutPayment, reconcile.Failure},
	{"shipped order never paid", func(tb testing.TB, d *Databases) {
		d.Order(tb, 206, 1, 500, trade.Shipped, false)
	}, reconcile.CheckPaidOrdersWithoutPayment, reconcile.Failure},
	{"paid order of another amount", func(tb testing.TB, d *Databases) {
		d.Pay(tb, 207, 1, 500)
		d.Order(tb, 207, 1, 600, trade.Paid, true)
	}, reconcile.CheckMismatches, reconcile.Failure},
	{"paid order of another user", func(tb testing.TB, d *Databases) {
		d.Pay(tb, 208, 1, 500)
		d.Order(tb, 208, 2, 500, trade.Paid, true)
	}, reconcile.CheckMismatches, reconcile.Failure},
	{"balance changed without a ledger row", func(tb testing.TB, d *Databases) {
		exec(tb, d.PayPool, `UPDATE accounts SET balance = balance + 1 WHERE user_id = 2`)
	}, reconcile.CheckLedgerDrift, reconcile.Failure},
	{"paid without a debit", func(tb testing.TB, d *Databases) {
		d.PayOrder(tb, 209, 1, 500, pay.Paid, PaidAt)
		d.Order(tb, 209, 1, 500, trade.Paid, true)
	}, reconcile.CheckDebits, reconcile.Failure},
	{"debit of another amount", func(tb testing.TB, d *Databases) {
		id := d.PayOrder(tb, 210, 1, 500, pay.Paid, PaidAt)
		d.Debit(tb, 1, id, 400)
		d.Order(tb, 210, 1, 500, trade.Paid, true)
	}, reconcile.CheckDebits, reconcile.Failure},
	{"debit of a pay order not paid", func(tb testing.TB, d *Databases) {
		id := d.PayOrder(tb, 211, 1, 500, pay.Waiting, time.Time{})
		d.Debit(tb, 1, id, 500)
		d.Order(tb, 211, 1, 500, trade.Unpaid, false)
	}, reconcile.CheckDebits, reconcile.Failure},
	{"debit of no pay order", func(tb testing.TB, d *Databases) {
		d.Debit(tb, 1, 999_999, 500)
	}, reconcile.CheckDebits, reconcile.Failure},
	{"refund requested long ago, never decided by pay", func(tb testing.TB, d *Databases) {
		d.Pay(tb, 212, 1, 500)
		d.Order(tb, 212, 1, 500, trade.Paid, true)
		d.RefundRequest(tb, 212, 1, 500, trade.RefundRequested, PaidAt)
	}, reconcile.CheckRefundsNotCredited, reconcile.Failure},
	{"order marked refunded, never credited", func(tb testing.TB, d *Databases) {
		d.Pay(tb, 213, 1, 500)
		d.Order(tb, 213, 1, 500, trade.Paid, true)
		d.RefundRequest(tb, 213, 1, 500, trade.RefundRefunded, PaidAt)
	}, reconcile.CheckRefundsNotCredited, reconcile.Failure},
	{"refund credited, still requested at trade", func(tb testing.TB, d *Databases) {
		id := d.PayOrder(tb, 214, 1, 500, pay.Refunded, PaidAt)
		d.Debit(tb, 1, id, 500)
		d.Order(tb, 214, 1, 500, trade.Paid, true)
		refund := d.RefundRequest(tb, 214, 1, 500, trade.RefundRequested, PaidAt)
		d.Refund(tb, 1, id, refund, 500)
		d.RefundDecision(tb, refund, 214, id, 1, 500, pay.RefundCredited, 500, PaidAt)
	}, reconcile.CheckRefundsNotMarked, reconcile.Failure},
	{"refund credited that trade never requested, order still paid", func(tb testing.TB, d *Databases) {
		id := d.PayOrder(tb, 215, 1, 500, pay.Refunded, PaidAt)
		d.Debit(tb, 1, id, 500)
		d.Order(tb, 215, 1, 500, trade.Paid, true)
		refund := uuid.New()
		d.Refund(tb, 1, id, refund, 500)
		d.RefundDecision(tb, refund, 215, id, 1, 500, pay.RefundCredited, 500, PaidAt)
	}, reconcile.CheckRefundsNotMarked, reconcile.Failure},
	{"shipped order refunded in full at pay by a refund trade never requested", func(tb testing.TB, d *Databases) {
		id := d.PayOrder(tb, 221, 1, 500, pay.Refunded, PaidAt)
		d.Debit(tb, 1, id, 500)
		d.Order(tb, 221, 1, 500, trade.Shipped, true)
		refund := uuid.New()
		d.Refund(tb, 1, id, refund, 500)
		d.RefundDecision(tb, refund, 221, id, 1, 500, pay.RefundCredited, 500, PaidAt)
	}, reconcile.CheckRefundsNotMarked, reconcile.Failure},
	{"partial refund of another amount at pay than at trade", func(tb testing.TB, d *Databases) {
		id := d.PartlyRefunded(tb, 219, 1, 1_000, pay.Paid, 300, PaidAt)
		d.Debit(tb, 1, id, 1_000)
		d.Order(tb, 219, 1, 1_000, trade.Paid, true)
		refund := d.RefundRequest(tb, 219, 1, 200, trade.RefundRefunded, PaidAt)
		d.Refund(tb, 1, id, refund, 300)
		d.RefundDecision(tb, refund, 219, id, 1, 300, pay.RefundCredited, 300, PaidAt)
	}, reconcile.CheckRefundsNotMarked, reconcile.Failure},
	{"refund id credited twice", func(tb testing.TB, d *Databases) {
		// The unique index is what stops a second credit; without it,
		// reconcile still sees one.
		exec(tb, d.PayPool, `DROP INDEX ledger_entries_one_credit_per_refund`)
		id, refund := d.PartlyPaidBack(tb, 216, 1, 1_000, 400)
		d.Refund(tb, 1, id, refund, 400)
	}, reconcile.CheckCredits, reconcile.Failure},
	{"credit of more than was paid", func(tb testing.TB, d *Databases) {
		id, _ := d.Refunded(tb, 217, 1, 500)
		d.Refund(tb, 1, id, uuid.New(), 100)
	}, reconcile.CheckCredits, reconcile.Failure},
	{"credit the pay order does not hold as refunded", func(tb testing.TB, d *Databases) {
		id := d.Pay(tb, 218, 1, 500)
		d.Order(tb, 218, 1, 500, trade.Paid, true)
		d.Refund(tb, 1, id, uuid.New(), 200)
	}, reconcile.CheckCredits, reconcile.Failure},
	{"refund pay rejected that nobody settled", func(tb testing.TB, d *Databases) {
		id := d.Pay(tb, 220, 2, 800)
		d.Order(tb, 220, 2, 800, trade.Paid, true)
		refund := d.RefundRequest(tb, 220, 2, 800, trade.RefundRejected, PaidAt)
		d.RefundDecision(tb, refund, 220, id, 2, 800, pay.RefundRejected, 0, PaidAt)
	}, reconcile.CheckUnsettledRejections, reconcile.Failure},
	{"order refunded at trade without refunds of its own", func(tb testing.TB, d *Databases) {
		exec(tb, d.TradePool, `UPDATE orders SET refund_claimed = 100, refunded_amount = 100 WHERE id = 101`)
	}, reconcile.CheckOrderRefunds, reconcile.Failure},
	{"outbox event pending for minutes", func(tb testing.TB, d *Databases) {
		d.OutboxEvent(tb, time.Now().Add(-5*time.Minute))
	}, reconcile.CheckStaleOutbox, reconcile.Warning},
}
