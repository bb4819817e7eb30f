package reconcile

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paytrade/paytrade/services/pay"
	"github.com/paytrade/paytrade/services/trade"
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
	// PayAmount is the amount pay decided on, when it differs from trade's.
	PayAmount int64
	// Settlement is how an operator settled a rejected refund at trade.
	Settlement string
	Problem    string
}

// CreditError is a pay order whose credits do not match it: their sum is
// not its refunded amount or is above what was paid, one is to another
// user, a refund id is credited twice or without its decision, a pay order
// not paid is credited, or a credit names no pay order.
type CreditError struct {
	PayOrderID     int64 // 0 for a credit that names no pay order
	BizOrderNo     int64
	Status         int16 // the pay order's status; -1 if it does not exist
	Amount         int64 // the pay order's amount
	RefundedAmount int64 // what the pay order holds as credited
	Credits        int64 // how many refund ledger rows name it
	CreditSum      int64
	Problem        string
}

// tradeRefunds and payRefunds are both ordered by refund id, so the two
// sides merge like the payments do.
const (
	tradeRefunds = `
		DECLARE trade_refunds NO SCROLL CURSOR FOR
		SELECT id::text, order_id, user_id, amount, reason, status, requested_at, coalesce(settlement, '')
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
			err := row.Scan(&f.ID, &f.BizOrderNo, &f.UserID, &f.Amount, &f.Reason, &f.TradeStatus, &at, &f.Settlement)
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
			if p.Amount != t.Amount {
				f.PayAmount = p.Amount
			}
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
	case f.PayAmount != 0:
		f.Problem = fmt.Sprintf("%d at trade, %d at pay", f.Amount, f.PayAmount)
		if f.PayOutcome == string(pay.RefundCredited) {
			r.report.RefundsNotMarked.add(f, max)
			return
		}
		r.report.RefundsNotCredited.add(f, max)
	case f.PayOutcome == string(pay.RefundRejected):
		switch {
		case f.TradeStatus == string(trade.RefundRefunded):
			f.Problem = "marked refunded at trade, rejected by pay"
			r.report.RefundsNotCredited.add(f, max)
		case f.TradeStatus == string(trade.RefundRejected) && f.Settlement != "":
			r.report.RejectedRefunds.add(f, max)
		case f.TradeStatus == string(trade.RefundRequested) && recent(f.DecidedAt):
			f.Problem = "rejected by pay, not yet recorded at trade"
			r.report.RefundsInFlight.add(f, max)
		default:
			f.Problem = "rejected by pay, not settled"
			r.report.UnsettledRejections.add(f, max)
		}
	case f.PayOutcome == string(pay.RefundCredited) && f.TradeStatus == string(trade.RefundRefunded):
	case f.PayOutcome == string(pay.RefundCredited) && f.TradeStatus == "":
		f.Problem = "credited, but trade never requested it"
		r.report.RefundsNotMarked.add(f, max)
	case f.PayOutcome == string(pay.RefundCredited):
		f.Problem = "credited, still " + f.TradeStatus + " at trade"
		if recent(f.DecidedAt) {
			r.report.RefundsInFlight.add(f, max)
			return
		}
		r.report.RefundsNotMarked.add(f, max)
	case f.TradeStatus == string(trade.RefundRequested) && recent(f.RequestedAt):
		f.Problem = "requested, not yet decided by pay"
		r.report.RefundsInFlight.add(f, max)
	default:
		f.Problem = f.TradeStatus + " at trade, never decided by pay"
		r.report.RefundsNotCredited.add(f, max)
	}
}

// credits finds the pay orders whose credits do not match them
// (invariant 8), by the shared rule.
func (r *run) credits(ctx context.Context) error {
	rows, err := r.pay.Query(ctx, ruleCredits.Query)
	if err != nil {
		return fmt.Errorf("pay database: compare pay orders with credits: %w", err)
	}
	err = collect(rows, &r.report.Credits, r.opts.MaxDetails, func(row pgx.Rows, c *CreditError) error {
		return row.Scan(&c.PayOrderID, &c.BizOrderNo, &c.Status, &c.Amount, &c.RefundedAmount, &c.Credits, &c.CreditSum, &c.Problem)
	})
	if err != nil {
		return fmt.Errorf("pay database: compare pay orders with credits: %w", err)
	}
	return nil
}

// negativeBalances finds balances below zero (invariant 2), by the shared
// rule.
func (r *run) negativeBalances(ctx context.Context) error {
	rows, err := r.pay.Query(ctx, ruleNegativeBalance.Query)
	if err != nil {
		return fmt.Errorf("pay database: find negative balances: %w", err)
	}
	err = collect(rows, &r.report.NegativeBalances, r.opts.MaxDetails, func(row pgx.Rows, d *Drift) error {
		return row.Scan(&d.UserID, &d.Balance)
	})
	if err != nil {
		return fmt.Errorf("pay database: find negative balances: %w", err)
	}
	return nil
}

// orderRefunds finds the orders whose refunded amounts are not what their
// own refunds say, by the shared rule.
func (r *run) orderRefunds(ctx context.Context) error {
	rows, err := r.trade.Query(ctx, ruleOrderRefunds.Query)
	if err != nil {
		return fmt.Errorf("trade database: compare orders with their refunds: %w", err)
	}
	err = collect(rows, &r.report.OrderRefunds, r.opts.MaxDetails, func(row pgx.Rows, o *OrderRefundError) error {
		return row.Scan(&o.OrderID, &o.Status, &o.TotalFee, &o.RefundedAmount, &o.RefundClaimed, &o.Refunded, &o.Claimed)
	})
	if err != nil {
		return fmt.Errorf("trade database: compare orders with their refunds: %w", err)
	}
	return nil
}
