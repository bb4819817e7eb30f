package broker_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/testenv"
)

// declaration is t as a service declares it: through broker.Declaration,
// with the error exchange as the dead-letter route.
func (t *consumerTopology) declaration() broker.Declaration {
	errorRoute := broker.Binding{Exchange: t.errorExchange, Key: t.errorKey}
	return broker.Declaration{
		QueueType: t.queueType,
		Exchanges: []broker.Exchange{
			{Name: t.exchange, Kind: amqp.ExchangeTopic},
			{Name: t.errorExchange, Kind: amqp.ExchangeDirect},
		},
		Queues: []broker.Queue{
			{Name: t.queue, Bindings: []broker.Binding{{Exchange: t.exchange, Key: t.key}}},
			{Name: t.errorQueue, Bindings: []broker.Binding{errorRoute}},
		},
		DeadLetter: errorRoute,
	}
}

// newDeclaredEnv is a consumer environment on a topology of queueType
// declared by broker.Declaration.
func newDeclaredEnv(tb testing.TB, queueType string) (*consumerTopology, *consumerEnv) {
	tb.Helper()
	topo := newConsumerTopology(tb, true)
	topo.queueType = queueType
	return topo, newConsumerEnv(tb, topo, topo.url)
}

// wantDeadLettered fails the test unless d is msg, dead-lettered from
// queue for reason, with its body and id intact.
func wantDeadLettered(tb testing.TB, d amqp.Delivery, msg broker.Message, queue, reason string) {
	tb.Helper()
	if d.MessageId != msg.Publishing.MessageId || string(d.Body) != string(msg.Publishing.Body) {
		tb.Errorf("error queue holds %s %q, want %s %q", d.MessageId, d.Body, msg.Publishing.MessageId, msg.Publishing.Body)
	}
	if got := d.Headers["x-first-death-reason"]; got != reason {
		tb.Errorf("x-first-death-reason = %v, want %s", got, reason)
	}
	if got := d.Headers["x-first-death-queue"]; got != queue {
		tb.Errorf("x-first-death-queue = %v, want %s", got, queue)
	}
}

func TestAMessageRedeliveredPastTheDeliveryLimitEndsInTheErrorQueue(t *testing.T) {
	t.Parallel()
	topo, env := newDeclaredEnv(t, broker.QueueQuorum)
	cfg := env.config(t)
	cfg.Retry.MaxAttempts = 1
	cfg.Recoverer = broker.RecoverRequeue
	var calls atomic.Int32
	c := startConsumer(t, env.sup, cfg, func(ctx context.Context, d amqp.Delivery) error {
		calls.Add(1)
		return errors.New("order service says not now")
	})

	msg := messages(1, topo.exchange, topo.key, testenv.Name(t, "m"), 0)[0]
	env.sendMessages(t, []broker.Message{msg})
	parked := takeOne(t, topo.url, topo.errorQueue)
	c.stop(t)

	wantDeadLettered(t, parked, msg, topo.queue, "delivery_limit")
	if got := calls.Load(); got < broker.DeliveryLimit || got > broker.DeliveryLimit+1 {
		t.Errorf("handler called %d times before the broker gave up, want about DeliveryLimit = %d", got, broker.DeliveryLimit)
	}
	if got := depth(t, topo.url, topo.queue); got != 0 {
		t.Errorf("source queue holds %d messages, want 0", got)
	}
}

func TestTheRejectRecovererDeadLettersToTheErrorQueueOfTheDeclaredTopology(t *testing.T) {
	t.Parallel()
	for _, queueType := range []string{broker.QueueQuorum, broker.QueueClassic} {
		t.Run(queueType, func(t *testing.T) {
			t.Parallel()
			topo, env := newDeclaredEnv(t, queueType)
			cfg := env.config(t)
			cfg.Retry.MaxAttempts = 1
			cfg.Recoverer = broker.RecoverReject
			c := startConsumer(t, env.sup, cfg, func(ctx context.Context, d amqp.Delivery) error {
				return errors.New("order rules say no")
			})

			msg := messages(1, topo.exchange, topo.key, testenv.Name(t, "m"), 0)[0]
			env.sendMessages(t, []broker.Message{msg})
			parked := takeOne(t, topo.url, topo.errorQueue)
			c.stop(t)

			wantDeadLettered(t, parked, msg, topo.queue, "rejected")
			if st := c.Stats(); st.Rejected != 1 || st.Parked != 0 {
				t.Errorf("stats %+v, want 1 rejected by the consumer and none parked by it", st)
			}
		})
	}
}

func TestQueueArgumentsNeverSendTheQueueModeThatRabbitMQ43Refuses(t *testing.T) {
	for _, queueType := range []string{broker.QueueQuorum, broker.QueueClassic} {
		for _, deadLetter := range []*broker.Binding{nil, {Exchange: "error.direct", Key: "error"}} {
			args := broker.QueueArguments(queueType, deadLetter)
			if _, ok := args["x-queue-mode"]; ok {
				t.Errorf("QueueArguments(%s, %v) = %v, with x-queue-mode", queueType, deadLetter, args)
			}
			if args["x-queue-type"] != queueType {
				t.Errorf("QueueArguments(%s, %v) = %v, want x-queue-type %s", queueType, deadLetter, args, queueType)
			}
		}
	}
}

func TestTheErrorQueueKeepsAMessageReturnedMoreOftenThanAnyDefaultLimit(t *testing.T) {
	t.Parallel()
	topo := newConsumerTopology(t, true)
	topo.queueType = broker.QueueQuorum
	startSupervisor(t, broker.Config{URL: topo.url}, topo.declare, true)
	withChannel(t, topo.url, func(ch *amqp.Channel) {
		if err := ch.Publish("", topo.errorQueue, false, false, amqp.Publishing{MessageId: "parked", Body: []byte("kept")}); err != nil {
			t.Fatal(err)
		}
	})
	// A nack with requeue is a return, as every errors list is; RabbitMQ
	// 4's default delivery limit would drop the message at the 21st.
	withChannel(t, topo.url, func(ch *amqp.Channel) {
		for i := range 3 * broker.DeliveryLimit {
			var d amqp.Delivery
			testenv.WaitFor(t, 5*time.Second, "the parked message back in the error queue", func() bool {
				got, ok, err := ch.Get(topo.errorQueue, false)
				if err != nil {
					t.Fatalf("get %d: %v", i, err)
				}
				d = got
				return ok
			})
			if err := d.Nack(false, true); err != nil {
				t.Fatalf("nack %d: %v", i, err)
			}
		}
	})
	testenv.WaitFor(t, 5*time.Second, "the parked message in the error queue", func() bool {
		return depth(t, topo.url, topo.errorQueue) == 1
	})
}
