package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/crashpoint"
	"github.com/paytrade/paytrade/internal/testenv"
)

type refund struct {
	RefundID string `json:"refundId"`
	Status   string `json:"status"`
	Amount   int64  `json:"amount"`
}

type orderWithRefund struct {
	Status       int        `json:"status"`
	RefundStatus *string    `json:"refundStatus"`
	RefundTime   *time.Time `json:"refundTime"`
}

func (s *system) refund(t *testing.T, trade *testenv.Process, b buyer, orderID int64) refund {
	t.Helper()
	var r refund
	client.MustCall(t, http.MethodPost, fmt.Sprintf("%s/orders/%d/refund", trade.BaseURL, orderID), b.tok, "", http.StatusAccepted, &r)
	return r
}

func refundedOrder(t *testing.T, trade *testenv.Process, b buyer, id int64) orderWithRefund {
	t.Helper()
	var o orderWithRefund
	client.MustCall(t, http.MethodGet, fmt.Sprintf("%s/orders/%d", trade.BaseURL, id), b.tok, "", http.StatusOK, &o)
	return o
}

func balance(t *testing.T, pay *testenv.Process, b buyer) int64 {
	t.Helper()
	var a struct {
		Balance int64 `json:"balance"`
	}
	client.MustCall(t, http.MethodGet, pay.BaseURL+"/accounts/me", b.tok, "", http.StatusOK, &a)
	return a.Balance
}

// count runs a count query on the database at url.
func count(t *testing.T, url, query string, args ...any) int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// paidOrder is an order of 10 000 of a buyer funded with 100 000, paid and
// seen paid at trade.
func (s *system) paidOrder(t *testing.T, trade *testenv.Process) (buyer, order) {
	t.Helper()
	b := s.newBuyer(t, 1, 100_000)
	o, po := s.orderAndApply(t, trade, b, 10_000)
	s.payOrder(t, b, po)
	testenv.WaitFor(t, 5*time.Second, "the order to be paid", func() bool { return orderStatus(t, trade, b, o.ID) == 2 })
	return b, o
}

func TestRefundCreditsTheWalletOnceAndMarksTheOrderRefundedThroughBothServices(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	trade := s.startTrade(t)
	b, o := s.paidOrder(t, trade)

	unpaid, _ := s.orderAndApply(t, trade, b, 500)
	client.MustCall(t, http.MethodPost, fmt.Sprintf("%s/orders/%d/refund", trade.BaseURL, unpaid.ID), b.tok, "", http.StatusConflict, nil)

	first := s.refund(t, trade, b, o.ID)
	if first.RefundID == "" || first.Amount != 10_000 {
		t.Fatalf("refund %+v, want one of 10000", first)
	}
	// Asked again, as a second click does: the same refund while it is
	// pending, or, once it was credited (pay and trade take milliseconds),
	// nothing left to refund. Never a second refund.
	status, body, err := client.Send(context.Background(), http.MethodPost, fmt.Sprintf("%s/orders/%d/refund", trade.BaseURL, o.ID), b.tok, "", nil)
	var again refund
	switch {
	case err != nil:
		t.Fatal(err)
	case status == http.StatusAccepted:
		if err := json.Unmarshal(body, &again); err != nil || again.RefundID != first.RefundID {
			t.Fatalf("refund asked again: %s, want the same refund %s", body, first.RefundID)
		}
	case status != http.StatusConflict || !strings.Contains(string(body), `"not_refundable"`):
		t.Fatalf("refund asked again: %d %s, want 202 with the same refund or 409 not_refundable", status, body)
	}
	started := time.Now()
	testenv.WaitFor(t, 5*time.Second, "the order to be refunded", func() bool {
		return refundedOrder(t, trade, b, o.ID).Status == 7
	})
	t.Logf("order refunded %v after the refund request", time.Since(started).Round(time.Millisecond))
	got := refundedOrder(t, trade, b, o.ID)
	if got.RefundStatus == nil || *got.RefundStatus != "refunded" || got.RefundTime == nil {
		t.Errorf("order = %+v, want refundStatus refunded with a refundTime", got)
	}
	if bal := balance(t, s.pay, b); bal != 100_000 {
		t.Errorf("balance %d, want 100000: the 10000 paid credited back once", bal)
	}
	if n := count(t, s.PayDB, `SELECT count(*) FROM ledger_entries WHERE kind = 'refund'`); n != 1 {
		t.Errorf("%d refund ledger rows, want 1", n)
	}
	if n := s.queueDepth(t, s.ErrorQueue); n != 0 {
		t.Errorf("%d messages parked, want none", n)
	}
	waitForMetrics(t, s.pay,
		`paytrade_refunds_credited_total{service="pay"} 1`,
		`paytrade_refund_consumer_acked_total{service="pay"} 1`,
		`paytrade_outbox_pending{service="pay"} 0`)
	waitForMetrics(t, trade,
		`paytrade_refund_consumer_refunded_total{service="trade"} 1`,
		`paytrade_outbox_published_total{service="trade"} 1`,
		`paytrade_refunds_waiting{service="trade"} 0`,
		`paytrade_refunds_rejected{service="trade"} 0`)
}

// The course's example of why idempotency matters, through both real
// binaries: the order is paid, refunded, and then the re-sent pay.success
// arrives — under its own message id and under a new one.
func TestLatePaySuccessAfterTheRefundLeavesTheOrderRefundedAndRecordsNothing(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	events := testenv.Watch(t, s.AMQPURL, s.PayExchange, "pay.success")
	trade := s.startTrade(t)
	b, o := s.paidOrder(t, trade)
	var paySuccess amqp.Delivery
	select {
	case paySuccess = <-events:
	case <-time.After(5 * time.Second):
		t.Fatal("no pay.success seen")
	}

	s.refund(t, trade, b, o.ID)
	testenv.WaitFor(t, 5*time.Second, "the order to be refunded", func() bool { return refundedOrder(t, trade, b, o.ID).Status == 7 })
	before := refundedOrder(t, trade, b, o.ID)
	balanceBefore := balance(t, s.pay, b)
	inbox := count(t, s.TradeDB, `SELECT count(*) FROM processed_messages`)

	// The late copies: the same message re-sent, and the same payment
	// announced again under a new id, both by pay's own broker user.
	for _, id := range []string{paySuccess.MessageId, uuid.NewString()} {
		s.withChannelOf(t, s.PayBroker.URL, func(ch *amqp.Channel) int {
			if err := ch.Confirm(false); err != nil {
				t.Fatal(err)
			}
			dc, err := ch.PublishWithDeferredConfirmWithContext(context.Background(), s.PayExchange, "pay.success", true, false, amqp.Publishing{
				ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: id, Type: "pay.success", AppId: "pay",
				Timestamp: time.Now(), Body: paySuccess.Body, UserId: s.PayBroker.Name,
			})
			if err != nil || !dc.Wait() {
				t.Fatalf("re-send pay.success: %v", err)
			}
			return 0
		})
	}
	testenv.WaitFor(t, 5*time.Second, "both copies to be consumed", func() bool {
		return count(t, s.TradeDB, `SELECT count(*) FROM processed_messages`) == inbox+1 && s.queueDepth(t, s.PayQueue) == 0
	})
	after := refundedOrder(t, trade, b, o.ID)
	if after.Status != 7 || *after.RefundStatus != "refunded" || !after.RefundTime.Equal(*before.RefundTime) {
		t.Errorf("order went from %+v to %+v, want it left refunded", before, after)
	}
	if got := balance(t, s.pay, b); got != balanceBefore {
		t.Errorf("balance went from %d to %d", balanceBefore, got)
	}
	if n := count(t, s.TradeDB, `SELECT count(*) FROM payment_discrepancies`) + count(t, s.TradeDB, `SELECT count(*) FROM refunds`); n != 1 {
		t.Errorf("%d discrepancies and refunds recorded, want the one refund only", n)
	}
	if n := count(t, s.TradeDB, `SELECT count(*) FROM processed_messages WHERE outcome = 'duplicate'`); n != 1 {
		t.Errorf("%d late copies recorded as duplicates, want the new id's one (the old id was in the inbox)", n)
	}
}

func TestPayKilledAfterTheCreditCommitsBeforeThePublishLosesNoRefundSuccess(t *testing.T) {
	t.Parallel()
	s := newCrashSystem(t, "TRADE_PAY_CHECK_SPEC=@every 1h")
	trade := s.startTrade(t)
	b, o := s.paidOrder(t, trade)
	s.pay.Stop(t, 10*time.Second)
	crashing := s.StartPay(t, append(s.PayEnv(), "PAYTRADE_CRASH_POINTS="+crashpoint.PayAfterRefundCommit))

	s.refund(t, trade, b, o.ID)
	crashing.WaitKilled(t, 10*time.Second)
	if n := count(t, s.PayDB, `SELECT count(*) FROM outbox_events WHERE message_type = 'refund.success'`); n != 1 {
		t.Fatalf("%d refund.success events waiting in pay's outbox after the crash, want 1", n)
	}
	if got := refundedOrder(t, trade, b, o.ID); got.Status != 2 {
		t.Fatalf("order status %d before pay is back, want 2", got.Status)
	}

	pay := s.StartPay(t, s.PayEnv())
	testenv.WaitFor(t, 10*time.Second, "the order to be refunded", func() bool { return refundedOrder(t, trade, b, o.ID).Status == 7 })
	if got := balance(t, pay, b); got != 100_000 {
		t.Errorf("balance %d, want 100000: credited once, whatever the redelivery", got)
	}
	if n := count(t, s.PayDB, `SELECT count(*) FROM ledger_entries WHERE kind = 'refund'`); n != 1 {
		t.Errorf("%d refund ledger rows, want 1", n)
	}
}

func TestTradeKilledBetweenItsRefundCommitAndThePublishLosesNoRefundRequested(t *testing.T) {
	t.Parallel()
	s := newCrashSystem(t, "TRADE_PAY_CHECK_SPEC=@every 1h")
	first := s.startTrade(t)
	b, o := s.paidOrder(t, first)
	first.Stop(t, 10*time.Second)
	crashing := s.startTrade(t, "PAYTRADE_CRASH_POINTS="+crashpoint.TradeAfterRefundCommit)

	if status, _, err := client.Send(context.Background(), http.MethodPost, fmt.Sprintf("%s/orders/%d/refund", crashing.BaseURL, o.ID), b.tok, "", nil); err == nil {
		t.Fatalf("the refund request answered %d; the crash point was not reached", status)
	}
	crashing.WaitKilled(t, 10*time.Second)
	if n := count(t, s.TradeDB, `SELECT count(*) FROM outbox_events WHERE message_type = 'refund.requested'`); n != 1 {
		t.Fatalf("%d refund.requested events waiting in trade's outbox after the crash, want 1", n)
	}

	trade := s.startTrade(t)
	testenv.WaitFor(t, 10*time.Second, "the order to be refunded", func() bool { return refundedOrder(t, trade, b, o.ID).Status == 7 })
	if got := balance(t, s.pay, b); got != 100_000 {
		t.Errorf("balance %d, want 100000", got)
	}
}

// Invariant 9 without the broker path: the refund.requested is lost before
// pay sees it, and trade's fallback has pay decide the refund on a later
// tick (one period, 1 s, on a quiet machine: the log says how long it took;
// a loaded one may need several ticks, which is no broken promise).
func TestLostRefundRequestIsSettledByTheCronFallback(t *testing.T) {
	t.Parallel()
	s := newSystem(t, "TRADE_PAY_CHECK_SPEC=@every 1s", "TRADE_PAY_CHECK_GRACE=100ms")
	trade := s.startTrade(t)
	b, o := s.paidOrder(t, trade)
	s.pay.Stop(t, 10*time.Second) // its consumer goes with it: refund.requested waits in the queue

	s.refund(t, trade, b, o.ID)
	testenv.WaitFor(t, 10*time.Second, "the refund request in pay's queue", func() bool { return s.queueDepth(t, s.PayRefundQueue) == 1 })
	s.withChannel(t, func(ch *amqp.Channel) int {
		n, err := ch.QueuePurge(s.PayRefundQueue, false)
		if err != nil || n != 1 {
			t.Fatalf("purge: %d, %v", n, err)
		}
		return n
	})

	// pay comes back where trade expects it, with nothing to consume.
	pay := s.StartPay(t, append(s.PayEnv(), "PAY_HTTP_ADDR="+strings.TrimPrefix(s.pay.BaseURL, "http://")))
	started := time.Now()
	testenv.WaitFor(t, time.Minute, "the fallback to settle the refund", func() bool { return refundedOrder(t, trade, b, o.ID).Status == 7 })
	t.Logf("refund settled by the fallback %v after pay came back", time.Since(started).Round(time.Millisecond))
	if got := balance(t, pay, b); got != 100_000 {
		t.Errorf("balance %d, want 100000", got)
	}
}
