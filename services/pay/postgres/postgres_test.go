package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/paytrade/paytrade/internal/problem"
	"github.com/paytrade/paytrade/services/pay"
	"github.com/paytrade/paytrade/services/pay/paytest"
	"github.com/paytrade/paytrade/services/pay/postgres"
)

func newStore(tb testing.TB) (*postgres.Store, *pgxpool.Pool) {
	tb.Helper()
	pool := paytest.NewPool(tb)
	tb.Cleanup(func() { paytest.CheckInvariants(tb, pool) })
	return postgres.New(pool, paytest.StoreConfig("pay.topic")), pool
}

func payment(o pay.PayOrder, pw string) pay.Payment {
	return pay.Payment{PayOrderID: o.ID, UserID: o.BizUserID, Password: pw}
}

func TestPayDebitsOnceMarksPaidBooksLedgerAndWritesEvent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, pool := newStore(t)
	paytest.Funded(t, store, 1, 10_000)
	order := paytest.Applied(t, store, 1, 1001, 3_000)

	res, err := store.Pay(ctx, pay.Payment{PayOrderID: order.ID, UserID: 1, Password: "123", CorrelationID: "corr-1"})
	if err != nil {
		t.Fatalf("pay: %v", err)
	}
	if res.PayOrder.Status != pay.Paid || res.PayOrder.PaySuccessTime == nil || res.Replayed {
		t.Fatalf("paid pay order = %+v, want status 3 with a success time, not replayed", res.PayOrder)
	}
	got, err := store.PayOrder(ctx, order.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != pay.Paid || !got.PaySuccessTime.Equal(*res.PayOrder.PaySuccessTime) {
		t.Errorf("stored pay order = %+v, want it paid at %v", got, res.PayOrder.PaySuccessTime)
	}
	if a, _ := store.Account(ctx, 1); a.Balance != 7_000 {
		t.Errorf("balance = %d, want 7000", a.Balance)
	}

	var kind string
	var amount, after int64
	if err := pool.QueryRow(ctx, `SELECT kind, amount, balance_after FROM ledger_entries WHERE pay_order_id = $1`, order.ID).
		Scan(&kind, &amount, &after); err != nil {
		t.Fatalf("debit ledger row: %v", err)
	}
	if kind != "debit" || amount != -3_000 || after != 7_000 {
		t.Errorf("ledger row = %s %d → %d, want debit -3000 → 7000", kind, amount, after)
	}

	var exchange, key, typ, corr string
	var payload []byte
	if err := pool.QueryRow(ctx, `SELECT exchange, routing_key, message_type, payload, correlation_id FROM outbox_events`).
		Scan(&exchange, &key, &typ, &payload, &corr); err != nil {
		t.Fatalf("outbox event: %v", err)
	}
	var ev pay.PaySuccess
	if err := json.Unmarshal(payload, &ev); err != nil {
		t.Fatalf("decode event: %v", err)
	}
	want := pay.PaySuccess{BizOrderNo: 1001, PayOrderID: order.ID, UserID: 1, Amount: 3_000, PaidAt: *res.PayOrder.PaySuccessTime}
	if exchange != "pay.topic" || key != "pay.success" || typ != "pay.success" || corr != "corr-1" || !ev.PaidAt.Equal(want.PaidAt) {
		t.Errorf("event to %s/%s type %s corr %q, want pay.topic/pay.success pay.success corr-1", exchange, key, typ, corr)
	}
	ev.PaidAt = want.PaidAt
	if ev != want {
		t.Errorf("event body = %+v, want %+v", ev, want)
	}
}

// payAsAClient pays p as a client does that is told to come back later:
// again after each password_checks_busy, which one wallet paying more than
// five at once meets, until pay answers something else.
func payAsAClient(ctx context.Context, store *postgres.Store, p pay.Payment) (pay.PaymentResult, error) {
	for {
		res, err := store.Pay(ctx, p)
		if !errors.Is(err, pay.ErrPasswordChecksBusy) {
			return res, err
		}
		time.Sleep(time.Millisecond)
	}
}

func TestFiftyConcurrentPaysOfOnePayOrderDebitOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, pool := newStore(t)
	paytest.Funded(t, store, 1, 100_000)
	order := paytest.Applied(t, store, 1, 1, 1_000)

	const attempts = 50
	errs := make([]error, attempts)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range attempts {
		wg.Go(func() {
			<-start
			_, errs[i] = payAsAClient(ctx, store, payment(order, "123"))
		})
	}
	close(start)
	wg.Wait()

	succeeded := 0
	for _, err := range errs {
		switch {
		case err == nil:
			succeeded++
		case errors.Is(err, pay.ErrAlreadyPaid):
		default:
			t.Errorf("pay: %v, want success or already_paid", err)
		}
	}
	if succeeded != 1 {
		t.Errorf("%d of %d concurrent pays succeeded, want exactly 1", succeeded, attempts)
	}
	snap := paytest.Snap(t, pool)
	if snap.Balances[1] != 99_000 || snap.Debits != 1 || snap.OutboxEvents != 1 {
		t.Errorf("after %d pays: balance %d, debits %d, events %d; want 99000, 1, 1",
			attempts, snap.Balances[1], snap.Debits, snap.OutboxEvents)
	}
}

func TestConcurrentPaysOfOneWalletNeverOverdraw(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, pool := newStore(t)
	paytest.Funded(t, store, 1, 10_000)
	const orders = 25 // 25 × 1000 against a balance of 10 000
	var wg sync.WaitGroup
	var mu sync.Mutex
	paid, refused := 0, 0
	for i := range orders {
		order := paytest.Applied(t, store, 1, int64(100+i), 1_000)
		wg.Go(func() {
			_, err := payAsAClient(ctx, store, payment(order, "123"))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				paid++
			case errors.Is(err, pay.ErrInsufficientFunds):
				refused++
			default:
				t.Errorf("pay: %v", err)
			}
		})
	}
	wg.Wait()
	if paid != 10 || refused != 15 {
		t.Errorf("paid %d, refused %d; want 10 paid and 15 refused for insufficient funds", paid, refused)
	}
	if snap := paytest.Snap(t, pool); snap.Balances[1] != 0 {
		t.Errorf("balance = %d, want 0", snap.Balances[1])
	}
}

func TestRefusedPaymentsChangeNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, pool := newStore(t)
	paytest.Funded(t, store, 1, 5_000)
	paytest.Funded(t, store, 2, 5_000)
	closed := paytest.Applied(t, store, 1, 2, 100)
	if _, err := store.ClosePayOrder(ctx, 2); err != nil {
		t.Fatal(err)
	}
	expired := paytest.Applied(t, store, 1, 3, 100)
	// Its pay window is over by the database's clock, which pay reads.
	if _, err := pool.Exec(ctx, `UPDATE pay_orders SET pay_over_time = now() - interval '1 minute' WHERE id = $1`, expired.ID); err != nil {
		t.Fatal(err)
	}
	noWallet := paytest.Applied(t, store, 9, 4, 100)
	tooDear := paytest.Applied(t, store, 1, 5, 5_001)
	fine := paytest.Applied(t, store, 1, 6, 100)

	tests := []struct {
		name string
		p    pay.Payment
		want error
	}{
		{"wrong password", payment(fine, "wrong"), pay.ErrWrongPassword},
		{"password longer than bcrypt reads", payment(fine, string(make([]byte, 100))), pay.ErrWrongPassword},
		{"insufficient funds", payment(tooDear, "123"), pay.ErrInsufficientFunds},
		{"not the owner", pay.Payment{PayOrderID: fine.ID, UserID: 2, Password: "123"}, pay.ErrPayOrderNotFound},
		{"no such pay order", pay.Payment{PayOrderID: 999_999, UserID: 1, Password: "123"}, pay.ErrPayOrderNotFound},
		{"closed", payment(closed, "123"), pay.ErrPayOrderClosed},
		{"past its pay window", payment(expired, "123"), pay.ErrPayOrderExpired},
		{"payer has no wallet", payment(noWallet, "123"), pay.ErrAccountNotFound},
		{"empty password", payment(fine, ""), errInvalid()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := paytest.Snap(t, pool)
			_, err := store.Pay(ctx, tt.p)
			if !errors.Is(err, tt.want) {
				t.Fatalf("pay: %v, want %v", err, tt.want)
			}
			after := paytest.Snap(t, pool)
			if fmt.Sprint(before) != fmt.Sprint(after) {
				t.Errorf("a refused payment changed the books:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
}

// errInvalid matches any invalid_request refusal.
func errInvalid() error { return problem.Invalidf("") }
