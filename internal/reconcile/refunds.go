package reconcile

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Refund is a refund as trade requested it and as pay decided it, by
// trade's refund id; the side that has no record of it is left empty.
type Refund struct {
	ID         string
	BizOrderNo int64
	UserID     int64
	Amount     int64
	Reason     string
	// TradeStatus is requested, refunded or rejected; "" if trade has no
	// such refund.
	TradeStatus string
	RequestedAt *time.Time
	// PayOutcome is refunded or rejected; "" if pay has not decided it.
	PayOutcome string
	Rejection  string
	DecidedAt  *time.Time
	Problem    string
}

// CreditError is a pay order whose credits do not match it: refunded
// without exactly one credit of its amount, credited without being
// refunded, or a credit of no pay order.
type CreditError struct {
	PayOrderID int64 // 0 for a credit that names no pay order
	BizOrderNo int64
	Status     int16 // the pay order's status; -1 if it does not exist
	Amount     int64 // the pay order's amount
	Credits    int64 // how many refund ledger rows name it
	CreditSum  int64
	Problem    string
}

// tradeRefunds and payRefunds are both ordered by refund id, so the two
// sides merge like the payments do.
const (
	tradeRefunds = `
		DECLARE trade_refunds NO SCROLL CURSOR FOR
		SELECT id::text, order_id, user_id, amount, reason, status, requested_at
		FROM refunds ORDER BY id`
	payRefunds = `
		DECLARE pay_refunds NO SCROLL CURSOR FOR
		SELECT refund_id::text, biz_order_no, user_id, amount, reason, outcome, coalesce(rejection, ''), decided_at
		FROM refunds ORDER BY refund_id`
)

// refunds walks trade's refunds and pay's decisions side by side (invariants
// 8 and 9): every refund requested is credited and marked refunded at
// trade, or rejected by pay; nothing is credited that trade did not ask for.
func (r *run) refunds(ctx context.Context) error {
	requested, err := openCursor(ctx, r.trade, "trade_refunds", tradeRefunds, r.opts.PageSize,
		func(row pgx.CollectableRow) (Refund, error) {
			var f Refund
			var at time.Time
			err := row.Scan(&f.ID, &f.BizOrderNo, &f.UserID, &f.Amount, &f.Reason, &f.TradeStatus, &at)
			f.RequestedAt = &at
			return f, err
		})
	if err != nil {
		return fmt.Errorf("trade database: %w", err)
	}
	decided, err := openCursor(ctx, r.pay, "pay_refunds", payRefunds, r.opts.PageSize,
		func(row pgx.CollectableRow) (Refund, error) {
			var f Refund
			var at time.Time
			err := row.Scan(&f.ID, &f.BizOrderNo, &f.UserID, &f.Amount, &f.Reason, &f.PayOutcome, &f.Rejection, &at)
			f.DecidedAt = &at
			return f, err
		})
	if err != nil {
		return fmt.Errorf("pay database: %w", err)
	}
	t, tOK, err := requested.next(ctx)
	if err != nil {
		return fmt.Errorf("trade database: %w", err)
	}
	p, pOK, err := decided.next(ctx)
	if err != nil {
		return fmt.Errorf("pay database: %w", err)
	}
	for tOK || pOK {
		var f Refund
		advanceTrade, advancePay := false, false
		switch {
		case tOK && (!pOK || t.ID < p.ID):
			f, advanceTrade = t, true
		case pOK && (!tOK || p.ID < t.ID):
			f, advancePay = p, true
		default:
			f = t
			f.PayOutcome, f.Rejection, f.DecidedAt = p.PayOutcome, p.Rejection, p.DecidedAt
			advanceTrade, advancePay = true, true
		}
		r.judgeRefund(f)
		r.report.Refunds++
		if advanceTrade {
			if t, tOK, err = requested.next(ctx); err != nil {
				return fmt.Errorf("trade database: %w", err)
			}
		}
		if advancePay {
			if p, pOK, err = decided.next(ctx); err != nil {
				return fmt.Errorf("pay database: %w", err)
			}
		}
	}
	return nil
}

// judgeRefund files one refund under the check it fails, if any. A refund
// requested or credited within InFlight is on its way, not lost.
func (r *run) judgeRefund(f Refund) {
	max := r.opts.MaxDetails
	recent := func(at *time.Time) bool { return at != nil && at.After(r.inFlight) }
	switch {
	case f.PayOutcome == "rejected":
		if f.TradeStatus == "refunded" {
			f.Problem = "marked refunded at trade, rejected by pay"
			r.report.RefundsNotCredited.add(f, max)
			return
		}
		r.report.RejectedRefunds.add(f, max)
	case f.PayOutcome == "refunded" && f.TradeStatus == "refunded":
	case f.PayOutcome == "refunded" && f.TradeStatus == "":
		f.Problem = "credited, but trade never requested it"
		r.report.RefundsNotMarked.add(f, max)
	case f.PayOutcome == "refunded":
		f.Problem = "credited, still " + f.TradeStatus + " at trade"
		if recent(f.DecidedAt) {
			r.report.RefundsInFlight.add(f, max)
			return
		}
		r.report.RefundsNotMarked.add(f, max)
	case f.TradeStatus == "requested" && recent(f.RequestedAt):
		f.Problem = "requested, not yet decided by pay"
		r.report.RefundsInFlight.add(f, max)
	default:
		f.Problem = f.TradeStatus + " at trade, never decided by pay"
		r.report.RefundsNotCredited.add(f, max)
	}
}

// credits finds the pay orders whose credits do not match them (invariant
// 8): a refunded one without exactly one credit of its amount to its
// payer — credited twice, or more than was paid — and credits of a pay
// order that is not refunded, or of none.
func (r *run) credits(ctx context.Context) error {
	rows, err := r.pay.Query(ctx, `
		SELECT coalesce(p.id, c.pay_order_id, 0), coalesce(p.biz_order_no, 0), coalesce(p.status, -1),
			coalesce(p.amount, 0), coalesce(c.n, 0), coalesce(c.total, 0),
			CASE
				WHEN p.id IS NULL THEN 'credit of no pay order'
				WHEN p.status <> 4 THEN 'credit of a pay order that is not refunded'
				WHEN c.n IS NULL THEN 'refunded without a credit'
				WHEN c.n > 1 THEN 'credited ' || c.n || ' times'
				WHEN c.total > p.amount THEN 'credited ' || c.total || ', more than the ' || p.amount || ' paid'
				WHEN c.total <> p.amount THEN 'credited ' || c.total || ', want ' || p.amount
				ELSE 'credit to user ' || c.other_user || ', not the payer'
			END
		FROM pay_orders p
		FULL JOIN (
			SELECT pay_order_id, count(*) AS n, sum(amount) AS total, min(user_id) FILTER (WHERE user_id <> payer) AS other_user
			FROM (SELECT l.pay_order_id, l.amount, l.user_id, po.biz_user_id AS payer
				FROM ledger_entries l LEFT JOIN pay_orders po ON po.id = l.pay_order_id
				WHERE l.kind = 'refund') x
			GROUP BY pay_order_id
		) c ON c.pay_order_id = p.id
		WHERE (p.id IS NULL)
			OR (p.status = 4 AND (c.n IS DISTINCT FROM 1 OR c.total <> p.amount OR c.other_user IS NOT NULL))
			OR (p.status <> 4 AND c.n IS NOT NULL)
		ORDER BY 2, 1`)
	if err != nil {
		return fmt.Errorf("pay database: compare refunded pay orders with credits: %w", err)
	}
	err = collect(rows, &r.report.Credits, r.opts.MaxDetails, func(row pgx.Rows, c *CreditError) error {
		return row.Scan(&c.PayOrderID, &c.BizOrderNo, &c.Status, &c.Amount, &c.Credits, &c.CreditSum, &c.Problem)
	})
	if err != nil {
		return fmt.Errorf("pay database: compare refunded pay orders with credits: %w", err)
	}
	return nil
}
