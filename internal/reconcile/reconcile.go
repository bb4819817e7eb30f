// Package reconcile compares the pay and trade databases against the
// invariants of docs/design.md: every payment paid its order (or left a recorded
// discrepancy), no order was paid without a payment of its owner and total,
// every refund trade requested was credited once and marked refunded, and at
// pay every balance is explained by its ledger, every paid pay order by
// exactly one debit of its amount and every refunded one by exactly one
// credit of it.
//
// The two databases are separate, so nothing can join them: Run reads
// the paid pay orders and the paid orders through two server-side cursors,
// both ordered by business order number, and merges them a page at a time.
// Memory stays flat however many orders there are; only the findings (up
// to Options.MaxDetails of each kind) are kept.
package reconcile

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paytrade/paytrade/services/trade"
)

// Severity says what a check's findings mean for whoever runs it.
type Severity int

// The severities, from the one that fails a run to the ones that do not.
const (
	Failure Severity = iota // an invariant is broken
	Warning                 // not broken yet, but worth a look (a payment on its way, a stuck outbox)
	Noted                   // the system kept its promise; a human settles the rest (a refund)
)

// String names the severity for printing.
func (s Severity) String() string {
	switch s {
	case Failure:
		return "failure"
	case Warning:
		return "warning"
	case Noted:
		return "noted"
	default:
		return fmt.Sprintf("Severity(%d)", int(s))
	}
}

// The names of the checks, as Report.Checks lists them.
const (
	CheckPaymentsWithoutPaidOrder = "payments without a paid order"
	CheckChargedButCancelled      = "payments whose order is cancelled, not refunded"
	CheckPaidOrdersWithoutPayment = "paid orders without a payment"
	CheckMismatches               = "paid order and payment disagree on user or amount"
	CheckLedgerDrift              = "balances not explained by their ledger"
	CheckDebits                   = "pay orders without exactly one debit of their amount"
	CheckRecordedDiscrepancies    = "payments with a recorded discrepancy"
	CheckPaymentsInFlight         = "payments on their way to their order"
	CheckStaleOutbox              = "outbox events pending too long"
	CheckRefundsNotCredited       = "refunds requested but not credited"
	CheckRefundsNotMarked         = "refunds credited but not marked refunded"
	CheckCredits                  = "pay orders credited other than once, of what was paid"
	CheckRefundsInFlight          = "refunds on their way"
	CheckRejectedRefunds          = "refunds pay could not honour, settled by an operator"
	CheckUnsettledRejections      = "refunds pay could not honour, not settled"
	CheckNegativeBalances         = "balances below zero"
	// CheckMoney is CheckPay's alone: Run's ledger, debit and credit
	// checks find, one by one, what makes money not add up.
	CheckMoney        = "money not conserved: funding <> balances + paid - credited"
	CheckOrderRefunds = "orders whose refunded amounts disagree with their refunds"
)

// Options tunes Run. The zero value excuses nothing and keeps the
// defaults in brackets.
type Options struct {
	// InFlight excuses a payment made less than this long ago whose order
	// is not paid yet: on a live system pay.success takes a moment to
	// arrive, and the fallback up to a cron period. Such payments are
	// warnings, not failures. [0: none excused]
	InFlight time.Duration
	// StaleOutbox is the age past which a pending outbox event is a warning. [1m]
	StaleOutbox time.Duration
	// MaxDetails bounds the findings kept of each kind; counts stay exact. [1000]
	MaxDetails int
	// PageSize is how many rows one FETCH or lookup carries. [1000]
	PageSize int
}

// Findings are what one check found: all of them counted, the first few kept.
type Findings[T any] struct {
	Count int64
	Items []T // the first Options.MaxDetails, in business order number (or user id) order
}

// Truncated reports whether some findings were counted but not kept.
func (f Findings[T]) Truncated() bool {
	return int64(len(f.Items)) < f.Count
}

func (f *Findings[T]) add(item T, max int) {
	f.Count++
	if len(f.Items) < max {
		f.Items = append(f.Items, item)
	}
}

// NoOrder is the OrderStatus of a payment whose order does not exist at trade.
const NoOrder int16 = 0

// Payment is a paid pay order, with what trade says of its order.
type Payment struct {
	PayOrderID  int64
	BizOrderNo  int64
	UserID      int64
	Amount      int64
	PaidAt      time.Time
	Refunded    bool       // the pay order has been refunded since
	OrderStatus int16      // NoOrder if trade has no such order
	OrderPaidAt *time.Time // the order's pay_time, if set
	// Discrepancies are the reasons trade recorded for this pay order
	// (payment_discrepancies), sorted.
	Discrepancies []string
}

// Order is an order trade holds as paid (pay_time set, or status paid or
// later), with what pay says of its pay order.
type Order struct {
	ID       int64
	UserID   int64
	TotalFee int64
	Status   int16
	PayTime  *time.Time
	// PayOrderID and PayOrderStatus describe the order's pay order at pay,
	// if there is one (PayOrderStatus is nil if not).
	PayOrderID     int64
	PayOrderStatus *int16
}

// Mismatch is a paid order whose paid pay order is of another user or amount.
type Mismatch struct {
	BizOrderNo  int64
	PayOrderID  int64
	OrderUserID int64
	PayUserID   int64
	TotalFee    int64
	PaidAmount  int64
}

// Drift is an account whose balance is not the sum of its ledger.
type Drift struct {
	UserID    int64
	Balance   int64
	LedgerSum int64
}

// DebitError is a pay order whose debits do not match it, or a debit of no
// pay order.
type DebitError struct {
	PayOrderID int64 // 0 for a debit that names no pay order
	BizOrderNo int64 // 0 if the pay order does not exist
	Status     int16 // the pay order's status; -1 if it does not exist
	UserID     int64 // the pay order's user
	Amount     int64 // the pay order's amount
	Debits     int64 // how many debit rows name it
	DebitSum   int64 // their amounts, summed (negative)
	Problem    string
}

// OutboxEvent is an outbox event the relay has not had confirmed.
type OutboxEvent struct {
	Database    string // pay or trade: whose outbox
	ID          string
	MessageType string
	RoutingKey  string
	CreatedAt   time.Time
	Attempts    int32
	LastError   string
}

// Report is what Run found.
type Report struct {
	PaidPayOrders int64 // paid pay orders compared
	PaidOrders    int64 // orders held as paid compared

	PaymentsWithoutPaidOrder Findings[Payment]
	ChargedButCancelled      Findings[Payment]
	PaidOrdersWithoutPayment Findings[Order]
	Mismatches               Findings[Mismatch]
	LedgerDrift              Findings[Drift]
	Debits                   Findings[DebitError]
	RecordedDiscrepancies    Findings[Payment]
	PaymentsInFlight         Findings[Payment]
	StaleOutbox              Findings[OutboxEvent]

	Refunds             int64 // refunds compared, by refund id, on either side
	RefundsNotCredited  Findings[Refund]
	RefundsNotMarked    Findings[Refund]
	Credits             Findings[CreditError]
	RefundsInFlight     Findings[Refund]
	RejectedRefunds     Findings[Refund]
	UnsettledRejections Findings[Refund]
	NegativeBalances    Findings[Drift]
	OrderRefunds        Findings[OrderRefundError]
}

// OrderRefundError is an order whose refunded or claimed amount is not
// what its own refunds say, or whose status does not match them.
type OrderRefundError struct {
	OrderID                       int64
	Status                        int16
	TotalFee                      int64
	RefundedAmount, RefundClaimed int64 // as the order holds them
	Refunded, Claimed             int64 // as its refunds add up
}

// Check is one check of a Report and how much it found.
type Check struct {
	Name     string
	Severity Severity
	Count    int64
}

// Checks lists every check, failures first, with what it found.
func (r Report) Checks() []Check {
	return []Check{
		{CheckPaymentsWithoutPaidOrder, Failure, r.PaymentsWithoutPaidOrder.Count},
		{CheckChargedButCancelled, Failure, r.ChargedButCancelled.Count},
		{CheckPaidOrdersWithoutPayment, Failure, r.PaidOrdersWithoutPayment.Count},
		{CheckMismatches, Failure, r.Mismatches.Count},
		{CheckLedgerDrift, Failure, r.LedgerDrift.Count},
		{CheckDebits, Failure, r.Debits.Count},
		{CheckRefundsNotCredited, Failure, r.RefundsNotCredited.Count},
		{CheckRefundsNotMarked, Failure, r.RefundsNotMarked.Count},
		{CheckCredits, Failure, r.Credits.Count},
		{CheckUnsettledRejections, Failure, r.UnsettledRejections.Count},
		{CheckNegativeBalances, Failure, r.NegativeBalances.Count},
		{CheckOrderRefunds, Failure, r.OrderRefunds.Count},
		{CheckPaymentsInFlight, Warning, r.PaymentsInFlight.Count},
		{CheckRefundsInFlight, Warning, r.RefundsInFlight.Count},
		{CheckStaleOutbox, Warning, r.StaleOutbox.Count},
		{CheckRecordedDiscrepancies, Noted, r.RecordedDiscrepancies.Count},
		{CheckRejectedRefunds, Noted, r.RejectedRefunds.Count},
	}
}

// Failures counts the findings that break an invariant.
func (r Report) Failures() int64 {
	var n int64
	for _, c := range r.Checks() {
		if c.Severity == Failure {
			n += c.Count
		}
	}
	return n
}

// OK reports whether no invariant is broken (warnings and notes allowed).
func (r Report) OK() bool {
	return r.Failures() == 0
}

// Run compares the pay and trade databases and reports what disagrees.
// Its error is about reading them, never about what it found.
func Run(ctx context.Context, pay, trade *pgxpool.Pool, opts Options) (Report, error) {
	if opts.StaleOutbox <= 0 {
		opts.StaleOutbox = time.Minute
	}
	if opts.MaxDetails <= 0 {
		opts.MaxDetails = 1000
	}
	if opts.PageSize <= 0 {
		opts.PageSize = 1000
	}
	// Trade's snapshot is taken first: trade marks an order paid only
	// after its payment committed at pay, so every payment behind an
	// order trade sees paid is in pay's later snapshot. The other way
	// round, a payment whose event is on its way, is what InFlight is for.
	tradeTx, _, err := snapshot(ctx, trade)
	if err != nil {
		return Report{}, fmt.Errorf("trade database: %w", err)
	}
	defer rollback(tradeTx)
	payTx, payNow, err := snapshot(ctx, pay)
	if err != nil {
		return Report{}, fmt.Errorf("pay database: %w", err)
	}
	defer rollback(payTx)

	r := &run{
		opts:     opts,
		pay:      payTx,
		trade:    tradeTx,
		inFlight: payNow.Add(-opts.InFlight),
	}
	if err := r.merge(ctx); err != nil {
		return Report{}, err
	}
	if err := r.ledger(ctx); err != nil {
		return Report{}, err
	}
	if err := r.debits(ctx); err != nil {
		return Report{}, err
	}
	if err := r.refunds(ctx); err != nil {
		return Report{}, err
	}
	if err := r.credits(ctx); err != nil {
		return Report{}, err
	}
	if err := r.negativeBalances(ctx); err != nil {
		return Report{}, err
	}
	if err := r.orderRefunds(ctx); err != nil {
		return Report{}, err
	}
	if err := r.outbox(ctx, payNow.Add(-opts.StaleOutbox)); err != nil {
		return Report{}, err
	}
	return r.report, nil
}

// snapshot begins a read-only transaction that sees one snapshot of db
// throughout, and takes the snapshot now (PostgreSQL takes it at the
// first statement, not at BEGIN). It returns the database's clock then.
func snapshot(ctx context.Context, db *pgxpool.Pool) (pgx.Tx, time.Time, error) {
	tx, err := db.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("begin snapshot: %w", err)
	}
	var now time.Time
	if err := tx.QueryRow(ctx, `SELECT now()`).Scan(&now); err != nil {
		rollback(tx)
		return nil, time.Time{}, fmt.Errorf("take snapshot: %w", err)
	}
	return tx, now, nil
}

func rollback(tx pgx.Tx) {
	// Read only: rolling back loses nothing, and must happen even when
	// ctx has ended, or the connection goes back to the pool mid-transaction.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = tx.Rollback(ctx)
}

// run is one Run in progress.
type run struct {
	opts     Options
	pay      pgx.Tx
	trade    pgx.Tx
	inFlight time.Time // payments made after this are excused if their order is not paid yet
	report   Report

	unapplied []Payment // paid pay orders whose order trade does not hold as paid, to look up at trade
	unpaidFor []Order   // orders held as paid without a paid pay order, to look up at pay
}

// paidPayOrders are the pay orders that were paid (and maybe refunded
// since), ordered by business order number for the merge; the unique
// index on biz_order_no serves the order.
var paidPayOrders = sql(`
	DECLARE paid_pay_orders NO SCROLL CURSOR FOR
	SELECT id, biz_order_no, biz_user_id, amount, pay_success_time, status = {pay.Refunded}
	FROM pay_orders WHERE status IN ({pay.Paid}, {pay.Refunded}) ORDER BY biz_order_no`)

// paidOrders are the orders trade holds as paid: pay_time set, or a status
// that only a paid order reaches (shipped, received, finished and refunded
// included, since an order shipped without a payment is paid for free all
// the same).
var paidOrders = sql(`
	DECLARE paid_orders NO SCROLL CURSOR FOR
	SELECT id, user_id, total_fee, status, pay_time
	FROM orders WHERE pay_time IS NOT NULL
		OR status IN ({trade.Paid}, {trade.Shipped}, {trade.Received}, {trade.Finished}, {trade.Refunded})
	ORDER BY id`)

// paidOrLater reports whether trade took the payment for o: paid, shipped,
// received, finished, refunded, or cancelled after being paid.
func paidOrLater(o Order) bool {
	switch trade.OrderStatus(o.Status) {
	case trade.Paid, trade.Shipped, trade.Received, trade.Finished, trade.Refunded:
		return true
	case trade.Cancelled:
		return o.PayTime != nil
	}
	return false
}

// merge walks the paid pay orders and the paid orders side by side.
func (r *run) merge(ctx context.Context) error {
	payments, err := openCursor(ctx, r.pay, "paid_pay_orders", paidPayOrders, r.opts.PageSize,
		func(row pgx.CollectableRow) (Payment, error) {
			var p Payment
			err := row.Scan(&p.PayOrderID, &p.BizOrderNo, &p.UserID, &p.Amount, &p.PaidAt, &p.Refunded)
			return p, err
		})
	if err != nil {
		return fmt.Errorf("pay database: %w", err)
	}
	orders, err := openCursor(ctx, r.trade, "paid_orders", paidOrders, r.opts.PageSize,
		func(row pgx.CollectableRow) (Order, error) {
			var o Order
			err := row.Scan(&o.ID, &o.UserID, &o.TotalFee, &o.Status, &o.PayTime)
			return o, err
		})
	if err != nil {
		return fmt.Errorf("trade database: %w", err)
	}

	p, pOK, err := payments.next(ctx)
	if err != nil {
		return fmt.Errorf("pay database: %w", err)
	}
	o, oOK, err := orders.next(ctx)
	if err != nil {
		return fmt.Errorf("trade database: %w", err)
	}
	for pOK || oOK {
		advancePay, advanceTrade := false, false
		switch {
		case oOK && (!pOK || o.ID < p.BizOrderNo):
			err = r.orderWithoutPayment(ctx, o)
			advanceTrade = true
		case pOK && (!oOK || p.BizOrderNo < o.ID):
			err = r.paymentWithoutOrder(ctx, p)
			advancePay = true
		default:
			err = r.compare(ctx, p, o)
			advancePay, advanceTrade = true, true
		}
		if err != nil {
			return err
		}
		if advancePay {
			r.report.PaidPayOrders++
			if p, pOK, err = payments.next(ctx); err != nil {
				return fmt.Errorf("pay database: %w", err)
			}
		}
		if advanceTrade {
			r.report.PaidOrders++
			if o, oOK, err = orders.next(ctx); err != nil {
				return fmt.Errorf("trade database: %w", err)
			}
		}
	}
	if err := r.lookUpUnapplied(ctx); err != nil {
		return err
	}
	return r.lookUpUnpaidFor(ctx)
}

// compare checks a paid pay order against the order of the same number.
func (r *run) compare(ctx context.Context, p Payment, o Order) error {
	if !paidOrLater(o) {
		// pay_time set on an order still unpaid: trade has not taken
		// this payment, whatever the column says.
		return r.paymentWithoutOrder(ctx, p)
	}
	if trade.OrderStatus(o.Status) == trade.Cancelled && !p.Refunded {
		// Paid, then cancelled, and the money never went back.
		p.OrderStatus, p.OrderPaidAt = o.Status, o.PayTime
		r.report.ChargedButCancelled.add(p, r.opts.MaxDetails)
	}
	if o.UserID != p.UserID || o.TotalFee != p.Amount {
		r.report.Mismatches.add(Mismatch{
			BizOrderNo: o.ID, PayOrderID: p.PayOrderID,
			OrderUserID: o.UserID, PayUserID: p.UserID,
			TotalFee: o.TotalFee, PaidAmount: p.Amount,
		}, r.opts.MaxDetails)
	}
	return nil
}

// paymentWithoutOrder queues p to learn at trade why its order is not paid.
func (r *run) paymentWithoutOrder(ctx context.Context, p Payment) error {
	r.unapplied = append(r.unapplied, p)
	if len(r.unapplied) < r.opts.PageSize {
		return nil
	}
	return r.lookUpUnapplied(ctx)
}

// orderWithoutPayment queues o to learn at pay what became of its pay order.
func (r *run) orderWithoutPayment(ctx context.Context, o Order) error {
	r.unpaidFor = append(r.unpaidFor, o)
	if len(r.unpaidFor) < r.opts.PageSize {
		return nil
	}
	return r.lookUpUnpaidFor(ctx)
}

// lookUpUnapplied sorts the queued payments into recorded discrepancies,
// payments in flight and payments without a paid order.
func (r *run) lookUpUnapplied(ctx context.Context) error {
	if len(r.unapplied) == 0 {
		return nil
	}
	payOrderIDs := make([]int64, len(r.unapplied))
	bizOrderNos := make([]int64, len(r.unapplied))
	for i, p := range r.unapplied {
		payOrderIDs[i], bizOrderNos[i] = p.PayOrderID, p.BizOrderNo
	}
	rows, err := r.trade.Query(ctx, `
		SELECT coalesce(o.status, 0), o.pay_time,
			coalesce((SELECT array_agg(d.reason ORDER BY d.reason) FROM payment_discrepancies d
				WHERE d.pay_order_id = u.pay_order_id), '{}')
		FROM unnest($1::bigint[], $2::bigint[]) WITH ORDINALITY AS u(pay_order_id, biz_order_no, n)
		LEFT JOIN orders o ON o.id = u.biz_order_no
		ORDER BY u.n`, payOrderIDs, bizOrderNos)
	if err != nil {
		return fmt.Errorf("trade database: look up the orders of %d payments: %w", len(r.unapplied), err)
	}
	err = scanEach(rows, r.unapplied, func(row pgx.Rows, p *Payment) error {
		return row.Scan(&p.OrderStatus, &p.OrderPaidAt, &p.Discrepancies)
	})
	if err != nil {
		return fmt.Errorf("trade database: look up the orders of %d payments: %w", len(r.unapplied), err)
	}
	for _, p := range r.unapplied {
		switch {
		case len(p.Discrepancies) > 0:
			r.report.RecordedDiscrepancies.add(p, r.opts.MaxDetails)
		case p.PaidAt.After(r.inFlight):
			r.report.PaymentsInFlight.add(p, r.opts.MaxDetails)
		case trade.OrderStatus(p.OrderStatus) == trade.Cancelled && !p.Refunded:
			r.report.ChargedButCancelled.add(p, r.opts.MaxDetails)
		default:
			r.report.PaymentsWithoutPaidOrder.add(p, r.opts.MaxDetails)
		}
	}
	r.unapplied = r.unapplied[:0]
	return nil
}

// lookUpUnpaidFor learns the pay order, if any, of each queued order.
func (r *run) lookUpUnpaidFor(ctx context.Context) error {
	if len(r.unpaidFor) == 0 {
		return nil
	}
	ids := make([]int64, len(r.unpaidFor))
	for i, o := range r.unpaidFor {
		ids[i] = o.ID
	}
	rows, err := r.pay.Query(ctx, `
		SELECT coalesce(p.id, 0), p.status
		FROM unnest($1::bigint[]) WITH ORDINALITY AS u(biz_order_no, n)
		LEFT JOIN pay_orders p ON p.biz_order_no = u.biz_order_no
		ORDER BY u.n`, ids)
	if err != nil {
		return fmt.Errorf("pay database: look up the pay orders of %d orders: %w", len(r.unpaidFor), err)
	}
	err = scanEach(rows, r.unpaidFor, func(row pgx.Rows, o *Order) error {
		return row.Scan(&o.PayOrderID, &o.PayOrderStatus)
	})
	if err != nil {
		return fmt.Errorf("pay database: look up the pay orders of %d orders: %w", len(r.unpaidFor), err)
	}
	for _, o := range r.unpaidFor {
		r.report.PaidOrdersWithoutPayment.add(o, r.opts.MaxDetails)
	}
	r.unpaidFor = r.unpaidFor[:0]
	return nil
}

// scanEach scans the i-th row into items[i]; the query returns exactly
// one row per item, in order.
func scanEach[T any](rows pgx.Rows, items []T, scan func(pgx.Rows, *T) error) error {
	defer rows.Close()
	i := 0
	for rows.Next() {
		if i == len(items) {
			return fmt.Errorf("more rows than the %d asked about", len(items))
		}
		if err := scan(rows, &items[i]); err != nil {
			return err
		}
		i++
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if i != len(items) {
		return fmt.Errorf("%d rows for the %d asked about", i, len(items))
	}
	return nil
}

// ledger finds the accounts whose balance is not the sum of their ledger.
// The database sums; only the drifts travel.
func (r *run) ledger(ctx context.Context) error {
	rows, err := r.pay.Query(ctx, ruleLedgerDrift.Query)
	if err != nil {
		return fmt.Errorf("pay database: compare balances with ledgers: %w", err)
	}
	err = collect(rows, &r.report.LedgerDrift, r.opts.MaxDetails, func(row pgx.Rows, d *Drift) error {
		return row.Scan(&d.UserID, &d.Balance, &d.LedgerSum)
	})
	if err != nil {
		return fmt.Errorf("pay database: compare balances with ledgers: %w", err)
	}
	return nil
}

// debits finds the pay orders whose debits do not match them: a paid one
// without exactly one debit of its amount from its user, an unpaid one
// with any, and debits of no pay order at all.
func (r *run) debits(ctx context.Context) error {
	rows, err := r.pay.Query(ctx, ruleDebits.Query)
	if err != nil {
		return fmt.Errorf("pay database: compare pay orders with debits: %w", err)
	}
	err = collect(rows, &r.report.Debits, r.opts.MaxDetails, func(row pgx.Rows, d *DebitError) error {
		return row.Scan(&d.PayOrderID, &d.BizOrderNo, &d.Status, &d.UserID, &d.Amount, &d.Debits, &d.DebitSum, &d.Problem)
	})
	if err != nil {
		return fmt.Errorf("pay database: compare pay orders with debits: %w", err)
	}
	return nil
}

// outbox finds the events still waiting for a confirm that were written
// before the given time, in pay's outbox and in trade's. The relay deletes
// an event once the broker confirms it, so every row is pending.
func (r *run) outbox(ctx context.Context, before time.Time) error {
	for _, db := range []struct {
		name string
		tx   pgx.Tx
	}{{"pay", r.pay}, {"trade", r.trade}} {
		rows, err := db.tx.Query(ctx, `
			SELECT id::text, message_type, routing_key, created_at, attempts, last_error
			FROM outbox_events WHERE created_at < $1 ORDER BY created_at, id`, before)
		if err != nil {
			return fmt.Errorf("%s database: list pending outbox events: %w", db.name, err)
		}
		err = collect(rows, &r.report.StaleOutbox, r.opts.MaxDetails, func(row pgx.Rows, e *OutboxEvent) error {
			e.Database = db.name
			return row.Scan(&e.ID, &e.MessageType, &e.RoutingKey, &e.CreatedAt, &e.Attempts, &e.LastError)
		})
		if err != nil {
			return fmt.Errorf("%s database: list pending outbox events: %w", db.name, err)
		}
	}
	return nil
}

// collect counts every row into f and keeps the first max.
func collect[T any](rows pgx.Rows, f *Findings[T], max int, scan func(pgx.Rows, *T) error) error {
	defer rows.Close()
	for rows.Next() {
		var item T
		if err := scan(rows, &item); err != nil {
			return err
		}
		f.add(item, max)
	}
	return rows.Err()
}
