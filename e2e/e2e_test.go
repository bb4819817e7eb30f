package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/correlation"
	"github.com/paytrade/paytrade/internal/crashpoint"
	"github.com/paytrade/paytrade/internal/testenv"
)

func TestOrderIsPaidWithinOneSecondOfThePayRequestReturning(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	trade := s.startTrade(t)
	b := s.newBuyer(t, 1, 100_000)
	o, po := s.orderAndApply(t, trade, b, 10_000)
	if got := orderStatus(t, trade, b, o.ID); got != 1 {
		t.Fatalf("new order status %d, want 1 (unpaid)", got)
	}

	s.payOrder(t, b, po)
	returned := time.Now()
	testenv.WaitFor(t, time.Second, "the order to be paid", func() bool { return orderStatus(t, trade, b, o.ID) == 2 })
	t.Logf("order paid %v after the pay request returned", time.Since(returned).Round(time.Millisecond))
	if n := s.queueDepth(t, s.ErrorQueue); n != 0 {
		t.Fatalf("%d messages parked, want none", n)
	}
}

func TestLostEventIsRecoveredByTheCronFallbackWithinOnePeriod(t *testing.T) {
	t.Parallel()
	s := newSystem(t, "TRADE_PAY_CHECK_SPEC=@every 1s", "TRADE_PAY_CHECK_GRACE=100ms")
	first := s.startTrade(t) // declares the queue, then goes away
	b := s.newBuyer(t, 1, 100_000)
	o, po := s.orderAndApply(t, first, b, 10_000)
	first.Stop(t, 10*time.Second)

	s.payOrder(t, b, po)
	testenv.WaitFor(t, 10*time.Second, "the event in the queue", func() bool { return s.queueDepth(t, s.PayQueue) == 1 })
	s.withChannel(t, func(ch *amqp.Channel) int {
		n, err := ch.QueuePurge(s.PayQueue, false)
		if err != nil || n != 1 {
			t.Fatalf("purge: %d, %v", n, err)
		}
		return n
	})

	trade := s.startTrade(t)
	started := time.Now()
	// One period, and room for the tick's own work.
	testenv.WaitFor(t, 2*time.Second, "the fallback to mark the order paid", func() bool {
		return orderStatus(t, trade, b, o.ID) == 2
	})
	t.Logf("order paid by the fallback %v after trade started", time.Since(started).Round(time.Millisecond))
}

func TestTradeKilledAfterCommitBeforeAckAppliesTheRedeliveryNothingTwice(t *testing.T) {
	t.Parallel()
	s := newCrashSystem(t)
	first := s.startTrade(t, "PAYTRADE_CRASH_POINTS="+crashpoint.TradeAfterCommit)
	b := s.newBuyer(t, 1, 100_000)
	o, po := s.orderAndApply(t, first, b, 10_000)

	s.payOrder(t, b, po)
	first.WaitKilled(t, 10*time.Second)
	// Committed but not acked: the broker still holds the message.
	testenv.WaitFor(t, 10*time.Second, "the unacked event back in the queue", func() bool { return s.queueDepth(t, s.PayQueue) == 1 })

	trade := s.startTrade(t)
	testenv.WaitFor(t, 10*time.Second, "the redelivery to be acked", func() bool { return s.queueDepth(t, s.PayQueue) == 0 })
	if got := orderStatus(t, trade, b, o.ID); got != 2 {
		t.Fatalf("order status %d, want 2 (paid)", got)
	}
	trade.Stop(t, 10*time.Second)
	if out := trade.Output(); !strings.Contains(out, "duplicate pay.success acknowledged") {
		t.Fatalf("the redelivery was not recognised as a duplicate; trade said:\n%s", out)
	}
}

func TestMetricsCountThePaymentAtPayAndItsApplicationAtTrade(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	trade := s.startTrade(t)
	b := s.newBuyer(t, 1, 100_000)
	o, po := s.orderAndApply(t, trade, b, 10_000)
	s.payOrder(t, b, po)
	testenv.WaitFor(t, 5*time.Second, "the order to be paid", func() bool { return orderStatus(t, trade, b, o.ID) == 2 })

	checks := map[*testenv.Process][]string{
		s.pay: {
			`paytrade_payments_total{service="pay"} 1`,
			`paytrade_outbox_published_total{service="pay"} 1`,
			`paytrade_outbox_refused_total{service="pay"} 0`,
			`paytrade_outbox_pending{service="pay"} 0`,
			`paytrade_http_requests_total{method="POST",route="/pay-orders/{id}",service="pay",status="200"} 1`,
			`paytrade_outbox_confirm_seconds_count{service="pay"}`,
			`paytrade_broker_reconnects_total{connection="publisher",service="pay"} 0`,
			`paytrade_broker_reconnects_total{connection="consumer",service="pay"} 0`,
		},
		trade: {
			`paytrade_consumer_applied_total{service="trade"} 1`,
			`paytrade_consumer_acked_total{service="trade"} 1`,
			`paytrade_consumer_parked_total{service="trade"} 0`,
			`paytrade_http_requests_total{method="POST",route="/orders",service="trade",status="201"} 1`,
			`paytrade_broker_reconnects_total{connection="consumer",service="trade"} 0`,
			`paytrade_cron_runs_total{service="trade"}`,
		},
	}
	for p, wants := range checks {
		waitForMetrics(t, p, wants...)
	}
}

func TestCorrelationIDTravelsFromThePayRequestToTradesLogLine(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	trade := s.startTrade(t)
	b := s.newBuyer(t, 1, 100_000)
	o, po := s.orderAndApply(t, trade, b, 10_000)

	const id = "corr-e2e-7f3a"
	req, _ := http.NewRequest("POST", fmt.Sprintf("%s/pay-orders/%d", s.pay.BaseURL, po.ID), strings.NewReader(`{"pw":"123"}`))
	req.Header.Set("Authorization", "Bearer "+b.tok)
	req.Header.Set(correlation.Header, id)
	res, err := client.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get(correlation.Header) != id {
		t.Fatalf("pay answered %d with correlation id %q", res.StatusCode, res.Header.Get(correlation.Header))
	}
	testenv.WaitFor(t, 5*time.Second, "trade to log the paid order", func() bool { return orderStatus(t, trade, b, o.ID) == 2 })

	logged := func(p *testenv.Process, msg string) bool {
		for _, line := range strings.Split(p.Output(), "\n") {
			var entry map[string]any
			if json.Unmarshal([]byte(line), &entry) == nil && entry["msg"] == msg && entry["correlation_id"] == id {
				return true
			}
		}
		return false
	}
	testenv.WaitFor(t, 2*time.Second, "the log lines", func() bool {
		return logged(s.pay, "payment committed") && logged(trade, "order paid")
	})
}
