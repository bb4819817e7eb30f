package broker

import (
	"fmt"
	"math"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The queue types MQ_QUEUE_TYPE accepts.
const (
	QueueQuorum  = "quorum"  // replicated on every node of a cluster, the default
	QueueClassic = "classic" // one node's queue
)

// DeliveryLimit is how often a quorum queue a service consumes hands out a
// message before it gives up on it and dead-letters it to the error
// exchange. Every redelivery counts: after a nack with requeue, a crash, a
// lost connection, a consumer pause — and on RabbitMQ 4.x a channel closed
// with the message unacked. It is RabbitMQ 4's default, declared explicitly
// so 3.x and 4.x behave alike.
const DeliveryLimit = 20

// parkingDeliveryLimit is the error queue's delivery limit: none that any
// number of inspections reaches. Declaring no limit is not enough (RabbitMQ
// 4.0 and later then apply 20, and every `errors list` is a delivery), and
// -1, which 4.x reads as "no limit", makes 3.x drop every message at its
// first return.
const parkingDeliveryLimit = math.MaxInt32

// ValidQueueType checks that t is a queue type MQ_QUEUE_TYPE accepts.
func ValidQueueType(t string) error {
	if t != QueueQuorum && t != QueueClassic {
		return fmt.Errorf("queue type %q: want %q or %q", t, QueueQuorum, QueueClassic)
	}
	return nil
}

// Exchange is a durable exchange to declare.
type Exchange struct {
	Name string
	Kind string // amqp.ExchangeTopic, amqp.ExchangeDirect…
}

// Queue is a durable queue to declare, with the bindings that feed it.
type Queue struct {
	Name     string
	Bindings []Binding
}

// Binding routes the messages of Exchange with Key to a queue.
type Binding struct {
	Exchange string
	Key      string
}

// Declaration is what one service declares on the broker: its exchanges,
// then its queues of one type with their bindings. Both services build one
// and declare it through Declare, so every queue gets its arguments from
// QueueArguments.
type Declaration struct {
	QueueType string // QueueQuorum or QueueClassic
	Exchanges []Exchange
	Queues    []Queue
	// DeadLetter is where a queue sends a message it gives up on: the error
	// exchange and key. The queue bound to it is the error queue, which
	// gives up on nothing.
	DeadLetter Binding
}

// Declare declares d idempotently: a supervisor calls it on every new
// connection, so a broker that lost its definitions gets them back.
func (d Declaration) Declare(ch *amqp.Channel) error {
	for _, e := range d.Exchanges {
		if err := ch.ExchangeDeclare(e.Name, e.Kind, true, false, false, false, nil); err != nil {
			return fmt.Errorf("declare exchange %s: %w", e.Name, err)
		}
	}
	for _, q := range d.Queues {
		deadLetter := &d.DeadLetter
		for _, b := range q.Bindings {
			if b == d.DeadLetter {
				deadLetter = nil
			}
		}
		if err := DeclareQueue(ch, q.Name, d.QueueType, deadLetter); err != nil {
			return err
		}
		for _, b := range q.Bindings {
			if err := ch.QueueBind(q.Name, b.Key, b.Exchange, false, nil); err != nil {
				return fmt.Errorf("declare binding %s ← %s %s: %w", q.Name, b.Exchange, b.Key, err)
			}
		}
	}
	return nil
}

// DeclareQueue declares the durable queue name of type queueType with
// QueueArguments: every queue of the services is declared here.
func DeclareQueue(ch *amqp.Channel, name, queueType string, deadLetter *Binding) error {
	if _, err := ch.QueueDeclare(name, true, false, false, false, QueueArguments(queueType, deadLetter)); err != nil {
		// PRECONDITION_FAILED: the queue exists with another type or
		// arguments, declared by an earlier version. It has to be drained
		// and deleted by a human (docs/operations.md).
		return fmt.Errorf("declare queue %s: %w", name, err)
	}
	return nil
}

// QueueArguments are the arguments of a queue of queueType, valid on
// RabbitMQ 3.10 through 4.3. deadLetter is where a queue a service consumes
// sends a message the broker gives up on (rejected without requeue, or
// past DeliveryLimit), with the reason in its x-death header; nil means the
// error queue itself, which never gives up on a message.
//
// A quorum queue dead-letters at least once: the broker keeps the message
// until the error queue has confirmed it, which needs the reject-publish
// overflow (no length limit is set, so no publish is ever refused for it).
// No x-queue-mode: RabbitMQ 4.3 refuses it, and classic queues have paged
// messages to disk without it since 3.12.
func QueueArguments(queueType string, deadLetter *Binding) amqp.Table {
	args := amqp.Table{"x-queue-type": queueType}
	if deadLetter != nil {
		args["x-dead-letter-exchange"] = deadLetter.Exchange
		args["x-dead-letter-routing-key"] = deadLetter.Key
	}
	if queueType != QueueQuorum {
		return args
	}
	if deadLetter == nil {
		args["x-delivery-limit"] = int64(parkingDeliveryLimit)
		return args
	}
	args["x-delivery-limit"] = int64(DeliveryLimit)
	args["x-dead-letter-strategy"] = "at-least-once"
	args["x-overflow"] = "reject-publish"
	return args
}
