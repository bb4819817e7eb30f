package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/testenv"
)

// The attack of the issue: with the broker's guest user, a forged
// pay.success marked an order paid with no debit. Each service now has a
// broker user of its own, and trade applies a pay.success only from pay's.
func TestOnlyPaysBrokerUserCanPayAnOrder(t *testing.T) {
	t.Parallel()
	testenv.NeedBrokerUsers(t)
	s := newSystem(t)
	trade := s.startTrade(t)
	b := s.newBuyer(t, 1, 100_000)
	o, po := s.orderAndApply(t, trade, b, 10_000)
	forged := func(id string) amqp.Publishing {
		return amqp.Publishing{
			ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: id, Type: "pay.success",
			AppId: "pay", Timestamp: time.Now(),
			Body: fmt.Appendf(nil, `{"bizOrderNo":%d,"payOrderId":%d,"userId":%d,"amount":10000,"paidAt":"%s"}`,
				o.ID, po.ID, b.id, time.Now().UTC().Format(time.RFC3339)),
		}
	}

	t.Run("trade's user may not publish to pay's exchange", func(t *testing.T) {
		err := channelError(t, s.TradeBroker.URL, func(ch *amqp.Channel) error {
			return ch.Publish(s.PayExchange, "pay.success", false, false, forged(uuid.NewString()))
		})
		if err == nil || err.Code != amqp.AccessRefused {
			t.Fatalf("publishing to %s as trade's user: %v, want 403 ACCESS_REFUSED", s.PayExchange, err)
		}
	})
	t.Run("trade's user may not read pay's refund queue", func(t *testing.T) {
		err := channelError(t, s.TradeBroker.URL, func(ch *amqp.Channel) error {
			_, _, err := ch.Get(s.PayRefundQueue, false)
			return err
		})
		if err == nil || err.Code != amqp.AccessRefused {
			t.Fatalf("reading %s as trade's user: %v, want 403 ACCESS_REFUSED", s.PayRefundQueue, err)
		}
	})
	t.Run("pay's user id on trade's connection is refused", func(t *testing.T) {
		msg := forged(uuid.NewString())
		msg.UserId = s.PayBroker.Name
		err := channelError(t, s.TradeBroker.URL, func(ch *amqp.Channel) error {
			return ch.Publish(s.TradeExchange, "refund.requested", false, false, msg)
		})
		if err == nil || err.Code != amqp.PreconditionFailed {
			t.Fatalf("publishing with pay's user_id as trade's user: %v, want 406 PRECONDITION_FAILED", err)
		}
	})

	// An administrator (guest here) may write anywhere, but cannot claim
	// to be pay: its pay.success says guest, and trade parks it.
	id := uuid.NewString()
	msg := forged(id)
	msg.UserId = broker.User(s.AMQPURL)
	withChan(t, s.AMQPURL, func(ch *amqp.Channel) {
		if err := ch.Publish(s.PayExchange, "pay.success", false, false, msg); err != nil {
			t.Fatal(err)
		}
	})
	parked := takeParked(t, s.AMQPURL, s.ErrorQueue, id)
	if got := parked.Headers["x-exception-type"]; got != broker.ExceptionForbiddenSender {
		t.Errorf("x-exception-type = %v, want %q", got, broker.ExceptionForbiddenSender)
	}
	if reason, _ := parked.Headers["x-exception-message"].(string); !strings.Contains(reason, s.PayBroker.Name) || !strings.Contains(reason, msg.UserId) {
		t.Errorf("x-exception-message = %q, want it to name the sender %q and the one allowed, %q", reason, msg.UserId, s.PayBroker.Name)
	}
	if got := orderStatus(t, trade, b, o.ID); got != 1 {
		t.Fatalf("order status %d after a forged pay.success, want 1 (unpaid)", got)
	}

	// pay's own event, from pay's own user, is applied as ever.
	s.payOrder(t, b, po)
	testenv.WaitFor(t, 10*time.Second, "the order to be paid by pay's own event", func() bool { return orderStatus(t, trade, b, o.ID) == 2 })
}

// channelError runs fn on a channel of a connection to amqpURL and returns
// the error the broker closed the channel with (nil if it did not).
func channelError(t *testing.T, amqpURL string, fn func(ch *amqp.Channel) error) *amqp.Error {
	t.Helper()
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	if err := fn(ch); err != nil {
		if e, ok := err.(*amqp.Error); ok {
			return e
		}
	}
	select {
	case e := <-closed:
		return e
	case <-time.After(5 * time.Second):
		return nil
	}
}

func withChan(t *testing.T, amqpURL string, fn func(ch *amqp.Channel)) {
	t.Helper()
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	fn(ch)
}

// takeParked waits for the message id in the error queue and takes it.
func takeParked(t *testing.T, amqpURL, queue, id string) amqp.Delivery {
	t.Helper()
	var got amqp.Delivery
	testenv.WaitFor(t, 10*time.Second, "message "+id+" parked in "+queue, func() bool {
		found := false
		withChan(t, amqpURL, func(ch *amqp.Channel) {
			d, ok, err := ch.Get(queue, false)
			if err != nil {
				t.Fatal(err)
			}
			if ok && d.MessageId == id {
				got, found = d, true
				_ = d.Ack(false)
			}
		})
		return found
	})
	return got
}
