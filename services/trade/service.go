package trade

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Service keeps orders in step with their payments at pay where that takes
// both services: cancelling an order, and the cron fallback that asks pay
// about orders whose pay.success never arrived and closes those that were
// never paid.
type Service struct {
	orders        Orders
	pay           PayGateway
	log           *slog.Logger
	now           func() time.Time
	backoff       *orderBackoff // of the fallback's failing unpaid orders
	refundBackoff *orderBackoff // of the fallback's failing refunds, by order
}

// NewService returns a service over orders and pay; now is its clock (nil:
// time.Now) and log may be nil.
func NewService(orders Orders, pay PayGateway, log *slog.Logger, now func() time.Time) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &Service{orders: orders, pay: pay, log: log, now: now, backoff: newOrderBackoff(time.Minute, 30*time.Minute), refundBackoff: newOrderBackoff(time.Minute, 30*time.Minute)}
}

// PayOrder returns the pay order of the user's unpaid order, applying for
// it at pay with trade's service token for the order's owner and exact
// total. A user never names the amount or the owner, so nobody can block
// or underpay another user's order.
func (s *Service) PayOrder(ctx context.Context, userID, orderID int64, req PayOrderRequest) (PayOrder, bool, error) {
	order, err := s.orders.Order(ctx, orderID)
	if err != nil {
		return PayOrder{}, false, err
	}
	if err := order.CheckOwner(userID); err != nil {
		return PayOrder{}, false, err
	}
	switch {
	case order.Status != Unpaid:
		return PayOrder{}, false, ErrOrderNotUnpaid
	}
	return s.pay.ApplyPayment(ctx, PayApplication{
		BizOrderNo:     order.ID,
		BizUserID:      order.UserID,
		Amount:         order.TotalFee,
		PayChannelCode: req.PayChannelCode,
		PayType:        req.PayType,
		OrderInfo:      fmt.Sprintf("trade order %d", order.ID),
	})
}

// Cancel cancels the user's unpaid order by the close-then-cancel protocol.
// Another user's order does not exist for them. An order pay reports paid is
// marked paid, and the cancellation is refused with ErrAlreadyPaid.
func (s *Service) Cancel(ctx context.Context, userID, orderID int64) (Order, error) {
	order, err := s.orders.Order(ctx, orderID)
	if err != nil {
		return Order{}, err
	}
	if err := order.CheckOwner(userID); err != nil {
		return Order{}, err
	}
	return s.closeThenCancel(ctx, order)
}

// closeThenCancel makes the order unpayable at pay and only then cancels
// it. The other order is wrong: between cancelling and closing, a payment
// could still go through, charging the user for a cancelled order. If pay
// answers that the order is paid already, the order is marked paid instead.
func (s *Service) closeThenCancel(ctx context.Context, order Order) (Order, error) {
	switch {
	case order.Status == Cancelled:
		return order, nil
	case order.Status == Paid:
		return order, ErrAlreadyPaid
	case order.Status != Unpaid:
		return order, ErrOrderNotCancellable
	}
	err := s.pay.ClosePayment(ctx, order.ID)
	if errors.Is(err, ErrPaidAtPay) {
		if _, err := s.applyFromPay(ctx, order.ID); err != nil {
			return order, err
		}
		return order, ErrAlreadyPaid
	}
	if err != nil {
		s.log.WarnContext(ctx, "close pay order at pay", "order_id", order.ID, "err", err)
		return order, ErrPayUnavailable
	}
	cancelled, err := s.orders.CancelUnpaid(ctx, order.ID)
	if err != nil {
		return order, err
	}
	switch cancelled.Status {
	case Cancelled:
		return cancelled, nil
	case Paid:
		// Paid by a payment made before the close: the close would have
		// said so, unless the event and the close crossed in flight.
		return cancelled, ErrAlreadyPaid
	default:
		return cancelled, ErrOrderNotCancellable
	}
}

// applyFromPay asks pay for the order's payment and applies it.
func (s *Service) applyFromPay(ctx context.Context, bizOrderNo int64) (Outcome, error) {
	p, found, err := s.pay.PaymentFor(ctx, bizOrderNo)
	if err != nil {
		s.log.WarnContext(ctx, "ask pay about order", "order_id", bizOrderNo, "err", err)
		return 0, ErrPayUnavailable
	}
	if !found {
		return 0, fmt.Errorf("pay refused to close order %d as paid but reports no payment", bizOrderNo)
	}
	outcome, err := s.orders.ApplyPayment(ctx, "", p, FromPoll)
	if err != nil {
		return 0, err
	}
	s.logOutcome(ctx, outcome, p, FromPoll)
	return outcome, nil
}

func (s *Service) logOutcome(ctx context.Context, outcome Outcome, p Payment, source PaymentSource) {
	attrs := []any{"order_id", p.BizOrderNo, "pay_order_id", p.PayOrderID, "user_id", p.UserID, "amount", p.Amount, "source", source}
	switch outcome {
	case Applied:
		s.log.InfoContext(ctx, "order paid", attrs...)
	case Discrepancy:
		s.log.ErrorContext(ctx, "PAYMENT DISCREPANCY: a payment could not be applied to its order; recorded for settlement", attrs...)
	}
}

// FallbackReport is what one run of the fallback did.
type FallbackReport struct {
	Checked       int // unpaid orders asked about at pay
	Paid          int // found paid at pay and marked paid here
	Discrepancies int // found paid at pay but not payable here
	Closed        int // timed out: closed at pay and cancelled
	PaidInstead   int // timed out, but pay had them paid
	Failed        int // could not be settled this time; tried again next run
	BackingOff    int // failed in earlier runs, and not tried again yet

	RefundsChecked  int // refunds waiting past the grace period, asked about at pay
	Refunded        int // found credited at pay and marked refunded here
	RefundsRejected int // found rejected at pay and recorded as such here
}

// CloseExpired cancels, by close-then-cancel, the orders still unpaid
// timeout after they were created, batch by batch.
func (s *Service) CloseExpired(ctx context.Context, timeout time.Duration, batch int) (FallbackReport, error) {
	var r FallbackReport
	err := s.eachUnpaid(ctx, timeout, batch, &r, nil, func(o Order) error {
		_, err := s.closeThenCancel(ctx, o)
		switch {
		case err == nil:
			r.Closed++
			s.log.InfoContext(ctx, "order timed out and was cancelled", "order_id", o.ID, "created", o.CreateTime)
		case errors.Is(err, ErrAlreadyPaid):
			r.PaidInstead++
		}
		if errors.Is(err, ErrAlreadyPaid) {
			return nil
		}
		return err
	})
	return r, err
}

// CheckUnpaid asks pay about every order unpaid for longer than grace and
// applies the payments it reports: the fallback for a pay.success event
// that was lost or is stuck.
func (s *Service) CheckUnpaid(ctx context.Context, grace time.Duration, batch int) (FallbackReport, error) {
	var r FallbackReport
	var payments map[int64]Payment
	ask := func(page []Order) error {
		ids := make([]int64, len(page))
		for i, o := range page {
			ids[i] = o.ID
		}
		var err error
		payments, err = s.pay.PaymentsFor(ctx, ids)
		return err
	}
	err := s.eachUnpaid(ctx, grace, batch, &r, ask, func(o Order) error {
		r.Checked++
		p, found := payments[o.ID]
		if !found {
			return nil
		}
		outcome, err := s.orders.ApplyPayment(ctx, "", p, FromPoll)
		if err != nil {
			return err
		}
		s.logOutcome(ctx, outcome, p, FromPoll)
		switch outcome {
		case Applied:
			r.Paid++
		case Discrepancy:
			r.Discrepancies++
		}
		return nil
	})
	return r, err
}

// CheckRefunds asks pay about every refund requested longer than grace ago
// (by the database's clock) and still waiting, and applies what pay says:
// the fallback for a refund.requested or refund.success that was lost or
// is stuck. A refund pay has not heard of is handed to it to decide now, so
// refunds arrive within a cron period even while the broker is away. Like
// the payment check, a refund that fails is counted, skipped and backed
// off, holding up no refund behind it; only pay being unavailable stops
// the walk.
func (s *Service) CheckRefunds(ctx context.Context, grace time.Duration, batch int) (FallbackReport, error) {
	var r FallbackReport
	var after Refund
	for {
		page, err := s.orders.RequestedRefunds(ctx, grace, after, batch)
		if err != nil {
			return r, err
		}
		for _, refund := range page {
			if err := ctx.Err(); err != nil {
				return r, err
			}
			if !s.refundBackoff.due(refund.OrderID, s.now()) {
				r.BackingOff++
				continue
			}
			r.RefundsChecked++
			if err := s.settleRefund(ctx, refund, &r); err != nil {
				r.Failed++
				s.refundBackoff.failed(refund.OrderID, s.now())
				s.log.WarnContext(ctx, "fallback could not settle refund; a later run tries again", "refund_id", refund.ID, "order_id", refund.OrderID, "err", err)
				if errors.Is(err, ErrPayUnavailable) {
					return r, fmt.Errorf("refund fallback stopped, pay unavailable: %w", err)
				}
				continue
			}
			s.refundBackoff.succeeded(refund.OrderID)
		}
		if len(page) < batch {
			return r, nil
		}
		after = page[len(page)-1]
	}
}

func (s *Service) settleRefund(ctx context.Context, refund Refund, r *FallbackReport) error {
	v, err := s.pay.RefundVerdict(ctx, refund.ID)
	if err == nil && !v.Decided {
		// Its refund.requested has not reached pay (the broker is away, or
		// the message was lost): pay decides it now, once per refund id.
		v, err = s.pay.DecideRefund(ctx, refund)
	}
	switch {
	case err != nil:
		return err
	case v.Credit != nil:
		outcome, err := s.orders.ApplyRefundCredit(ctx, "", *v.Credit)
		if err != nil {
			return err
		}
		if outcome == Applied {
			r.Refunded++
			s.log.InfoContext(ctx, "refund credited at pay, marked refunded by the fallback", "refund_id", refund.ID, "order_id", refund.OrderID, "amount", refund.Amount)
		}
		return nil
	}
	rejected, err := s.orders.RejectRefund(ctx, refund.ID, v.Rejection)
	if err != nil {
		return err
	}
	if rejected {
		r.RefundsRejected++
		s.log.ErrorContext(ctx, "REFUND REJECTED by pay: nothing was credited; recorded for settlement",
			"refund_id", refund.ID, "order_id", refund.OrderID, "amount", refund.Amount, "rejection", v.Rejection)
	}
	return nil
}

// eachUnpaid calls fn on every order unpaid for longer than olderThan, by
// the database's clock, oldest first, batch by batch; prepare, if not nil,
// first gets each batch's orders that are due, to ask pay about them in
// one call, and its failure stops the walk. An order whose fn
// fails is counted and skipped, and tried again in a later run as its
// backoff allows: it holds up no order behind it. Only pay being
// unavailable stops the walk, since every order behind would fail alike;
// the next run starts over.
func (s *Service) eachUnpaid(ctx context.Context, olderThan time.Duration, batch int, r *FallbackReport,
	prepare func(due []Order) error, fn func(Order) error) error {
	var after Order
	for {
		page, err := s.orders.UnpaidOrders(ctx, olderThan, after, batch)
		if err != nil {
			return err
		}
		var due []Order
		for _, o := range page {
			if !s.backoff.due(o.ID, s.now()) {
				r.BackingOff++
				continue
			}
			due = append(due, o)
		}
		if prepare != nil && len(due) > 0 {
			if err := prepare(due); err != nil {
				r.Failed += len(due)
				return fmt.Errorf("fallback stopped: %w", err)
			}
		}
		for _, o := range due {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(o); err != nil {
				r.Failed++
				s.backoff.failed(o.ID, s.now())
				s.log.WarnContext(ctx, "fallback could not settle order; a later run tries again", "order_id", o.ID, "err", err)
				if errors.Is(err, ErrPayUnavailable) {
					return fmt.Errorf("fallback stopped, pay unavailable: %w", err)
				}
				continue
			}
			s.backoff.succeeded(o.ID)
		}
		if len(page) < batch {
			return nil
		}
		after = page[len(page)-1]
	}
}
