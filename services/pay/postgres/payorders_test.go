package postgres_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/paytrade/paytrade/services/pay"
	"github.com/paytrade/paytrade/services/pay/paytest"
)

// apply is trade's request for business order biz of user 1.
func apply(biz, amount int64) pay.Apply {
	return pay.Apply{BizOrderNo: biz, BizUserID: 1, Amount: amount, PayChannelCode: pay.ChannelBalance, PayType: pay.PayTypeBalance}
}

// of is req for another user.
func of(userID int64, req pay.Apply) pay.Apply {
	req.BizUserID = userID
	return req
}

func TestApplyIsIdempotentOnBizOrderNo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, _ := newStore(t)
	first, created, err := store.ApplyPayOrder(ctx, apply(7, 500))
	if err != nil || !created {
		t.Fatalf("first apply: created=%v err=%v", created, err)
	}
	if first.Status != pay.Waiting || first.PayOverTime.Sub(first.CreateTime) != pay.PayWindow {
		t.Errorf("new pay order = %+v, want status 1 and a %v pay window", first, pay.PayWindow)
	}
	again, created, err := store.ApplyPayOrder(ctx, apply(7, 500))
	if err != nil || created || again.ID != first.ID {
		t.Errorf("same apply again: id %d created=%v err=%v, want the same pay order %d", again.ID, created, err, first.ID)
	}
	tests := []struct {
		name string
		req  pay.Apply
		want error
	}{
		{"another amount", apply(7, 501), pay.ErrBizOrderConflict},
		{"another user", of(2, apply(7, 500)), pay.ErrBizOrderConflict},
		{"no user", of(0, apply(8, 500)), errInvalid()},
		{"zero amount", apply(8, 0), errInvalid()},
		{"negative amount", apply(8, -1), errInvalid()},
		{"zero biz order", apply(0, 1), errInvalid()},
		{"other pay type", pay.Apply{BizOrderNo: 8, BizUserID: 1, Amount: 1, PayChannelCode: "balance", PayType: 1}, errInvalid()},
		{"other channel", pay.Apply{BizOrderNo: 8, BizUserID: 1, Amount: 1, PayChannelCode: "wxPay", PayType: 5}, errInvalid()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := store.ApplyPayOrder(ctx, tt.req); !errors.Is(err, tt.want) {
				t.Errorf("apply: %v, want %v", err, tt.want)
			}
		})
	}
}

func TestCloseBeforeApplyRefusesAnyLaterApplyOrPayment(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, _ := newStore(t)
	closure, err := store.ClosePayOrder(ctx, 42)
	if err != nil || closure.PayOrder != nil || closure.BizOrderNo != 42 {
		t.Fatalf("close with no pay order: %+v, %v; want the closure recorded", closure, err)
	}
	if _, _, err := store.ApplyPayOrder(ctx, apply(42, 100)); !errors.Is(err, pay.ErrPayOrderClosed) {
		t.Errorf("apply after close: %v, want %v", err, pay.ErrPayOrderClosed)
	}
	if _, err := store.ClosePayOrder(ctx, 42); err != nil {
		t.Errorf("closing again: %v, want success", err)
	}
}

func TestCloseWaitingPayOrderThenPaymentIsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, _ := newStore(t)
	paytest.Funded(t, store, 1, 1_000)
	order := paytest.Applied(t, store, 1, 5, 100)
	closure, err := store.ClosePayOrder(ctx, 5)
	if err != nil || closure.PayOrder == nil || closure.PayOrder.Status != pay.Closed {
		t.Fatalf("close: %+v, %v; want the pay order with status 2", closure, err)
	}
	if _, err := store.Pay(ctx, payment(order, "123")); !errors.Is(err, pay.ErrPayOrderClosed) {
		t.Errorf("pay after close: %v, want %v", err, pay.ErrPayOrderClosed)
	}
	if _, _, err := store.ApplyPayOrder(ctx, apply(5, 100)); !errors.Is(err, pay.ErrPayOrderClosed) {
		t.Errorf("apply after close: %v, want %v", err, pay.ErrPayOrderClosed)
	}
}

func TestClosingAPaidPayOrderIsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, _ := newStore(t)
	paytest.Funded(t, store, 1, 1_000)
	order := paytest.Applied(t, store, 1, 5, 100)
	if _, err := store.Pay(ctx, payment(order, "123")); err != nil {
		t.Fatal(err)
	}
	if _, err := store.ClosePayOrder(ctx, 5); !errors.Is(err, pay.ErrAlreadyPaid) {
		t.Errorf("close a paid pay order: %v, want %v", err, pay.ErrAlreadyPaid)
	}
}

func TestCloseRacingPaymentEndsAsExactlyOneOfPaidOrClosed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, _ := newStore(t)
	paytest.Funded(t, store, 1, 1_000_000)
	const orders = 40
	for i := range orders {
		biz := int64(1000 + i)
		order := paytest.Applied(t, store, 1, biz, 100)
		var payErr, closeErr error
		var wg sync.WaitGroup
		wg.Go(func() { _, payErr = store.Pay(ctx, payment(order, "123")) })
		wg.Go(func() { _, closeErr = store.ClosePayOrder(ctx, biz) })
		wg.Wait()
		paid := payErr == nil && errors.Is(closeErr, pay.ErrAlreadyPaid)
		closed := closeErr == nil && errors.Is(payErr, pay.ErrPayOrderClosed)
		if paid == closed {
			t.Fatalf("order %d: pay %v, close %v; want exactly one to win", biz, payErr, closeErr)
		}
		final, err := store.PayOrderByBizOrderNo(ctx, biz)
		if err != nil || (paid && final.Status != pay.Paid) || (closed && final.Status != pay.Closed) {
			t.Errorf("order %d ends %+v (%v), inconsistent with who won", biz, final, err)
		}
	}
}

func TestApplyRacingCloseNeverLeavesAPayableOrder(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, _ := newStore(t)
	for i := range 40 {
		biz := int64(2000 + i)
		var applyErr, closeErr error
		var wg sync.WaitGroup
		wg.Go(func() { _, _, applyErr = store.ApplyPayOrder(ctx, apply(biz, 100)) })
		wg.Go(func() { _, closeErr = store.ClosePayOrder(ctx, biz) })
		wg.Wait()
		if closeErr != nil {
			t.Fatalf("close: %v", closeErr)
		}
		if applyErr != nil && !errors.Is(applyErr, pay.ErrPayOrderClosed) {
			t.Fatalf("apply: %v", applyErr)
		}
		if o, err := store.PayOrderByBizOrderNo(ctx, biz); err == nil && o.Status == pay.Waiting {
			t.Fatalf("business order %d was closed yet has a waiting pay order", biz)
		}
	}
}

func TestDepositAddsFundsAndRefusesOverflow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, _ := newStore(t)
	paytest.Funded(t, store, 1, 100)
	a, err := store.Deposit(ctx, pay.Deposit{UserID: 1, Amount: 50, IdempotencyKey: "d1"})
	if err != nil || a.Account.Balance != 150 {
		t.Fatalf("deposit: %+v, %v; want balance 150", a, err)
	}
	tests := []struct {
		name   string
		userID int64
		amount int64
		want   error
	}{
		{"overflowing int64", 1, 1<<63 - 1, pay.ErrBalanceOverflow},
		{"zero", 1, 0, errInvalid()},
		{"negative", 1, -5, errInvalid()},
		{"no wallet", 2, 5, pay.ErrAccountNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := store.Deposit(ctx, pay.Deposit{UserID: tt.userID, Amount: tt.amount, IdempotencyKey: tt.name}); !errors.Is(err, tt.want) {
				t.Errorf("deposit: %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := store.CreateAccount(ctx, pay.NewAccount{UserID: 1, Password: "x", Balance: 1}); !errors.Is(err, pay.ErrAccountExists) {
		t.Errorf("second wallet: %v, want %v", err, pay.ErrAccountExists)
	}
}
