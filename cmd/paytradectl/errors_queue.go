package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/broker"
)

// parkedQueue is an error queue opened on a connection of its own, with
// the channel that takes its messages.
type parkedQueue struct {
	name  string
	depth int // ready messages when it was opened
	conn  *amqp.Connection
	ch    *amqp.Channel
	stop  func() bool // stops closing conn when ctx ends
}

// openQueue connects to the broker and opens queue, which must exist:
// declaring it here could create it with other arguments than trade's.
func openQueue(ctx context.Context, cfg broker.Config, queue string) (*parkedQueue, error) {
	conn, err := broker.Dial(cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to broker: %w", err)
	}
	// Cancelling ctx (Ctrl-C) closes the connection, which ends any call
	// on it and gives every message taken back to the queue.
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		stop()
		_ = conn.Close()
		return nil, fmt.Errorf("open channel: %w", err)
	}
	info, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		stop()
		_ = conn.Close()
		if amqpErr, ok := errors.AsType[*amqp.Error](err); ok && amqpErr.Code == amqp.NotFound {
			return nil, fmt.Errorf("queue %q does not exist on broker %s", queue, broker.Redact(cfg.URL))
		}
		return nil, fmt.Errorf("open queue %q: %w", queue, err)
	}
	return &parkedQueue{name: queue, depth: info.Messages, conn: conn, ch: ch, stop: stop}, nil
}

// fetch takes up to n messages from the head of the queue, unacked: they
// stay the broker's until acked, and go back if this process dies.
func (q *parkedQueue) fetch(n int) ([]amqp.Delivery, error) {
	msgs := make([]amqp.Delivery, 0, n)
	for len(msgs) < n {
		d, ok, err := q.ch.Get(q.name, false)
		if err != nil {
			return nil, fmt.Errorf("get message %d of queue %q: %w", len(msgs)+1, q.name, err)
		}
		if !ok {
			break // someone else took some since the queue was opened
		}
		msgs = append(msgs, d)
	}
	return msgs, nil
}

// release gives back every message taken and not acked, each to its
// place, by closing the channel, and waits until the queue holds them again
// (its depth at opening less the acked messages): a quorum queue applies
// the return after the close has been answered, and a listing or replay
// right after this one must find them. Its error says they are not all
// back within releaseWait: the broker dropped or dead-lettered some (a
// delivery limit on a queue declared by other means than trade), another
// client took them meanwhile, or the broker could not be asked.
func (q *parkedQueue) release(acked int) error {
	if err := q.ch.Close(); err != nil && !errors.Is(err, amqp.ErrClosed) {
		return fmt.Errorf("give the messages back to queue %q: %w (the broker takes them back when the connection closes)", q.name, err)
	}
	ch, err := q.conn.Channel()
	if err != nil {
		return fmt.Errorf("check that queue %q holds its messages again: %w", q.name, err)
	}
	defer func() { _ = ch.Close() }()
	want := q.depth - acked
	deadline := time.Now().Add(releaseWait)
	for {
		info, err := ch.QueueDeclarePassive(q.name, true, false, false, false, nil)
		if err != nil {
			return fmt.Errorf("check that queue %q holds its messages again: %w", q.name, err)
		}
		if info.Messages >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("queue %q holds %d messages after %v, %d fewer than it should: "+
				"the broker dropped or dead-lettered them (a delivery limit?), or another client took them", q.name, info.Messages, releaseWait, want-info.Messages)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// releaseWait bounds how long release waits to see its messages back.
const releaseWait = 5 * time.Second

// close closes the connection; any message still unacked goes back to the queue.
func (q *parkedQueue) close() {
	q.stop()
	_ = q.conn.Close()
}
