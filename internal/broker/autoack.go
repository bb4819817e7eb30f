//go:build faultinject

package broker

import (
	"errors"
	"log/slog"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ackMode holds the consumer's acknowledge mode. Only a faultinject build
// has a choice: the shipped binaries ack manually and nothing else.
type ackMode struct {
	// AutoAck is Spring's acknowledge-mode none: the broker forgets each
	// message as it sends it, and ignores the prefetch, so it sends every
	// ready message at once. A message whose handler fails for want of
	// its database is lost, and so is every message already sent when the
	// consumer pauses, its channel drops or its process dies — only the
	// first is logged. For make chaos UNSAFE=1 only.
	AutoAck bool
}

func (m ackMode) autoAck() bool { return m.AutoAck }

// settleAutomatically gives d, when the broker forgot it as it sent it, an
// acknowledger that tells the broker nothing.
func (m ackMode) settleAutomatically(d *amqp.Delivery) {
	if m.AutoAck {
		d.Acknowledger = autoAcked{}
	}
}

// lostWhenSent reports, and logs, a nack of a delivery the broker forgot
// when it sent it: the message cannot go back.
func lostWhenSent(log *slog.Logger, err error) bool {
	if !errors.Is(err, errAutoAcked) {
		return false
	}
	log.Error("MESSAGE LOST: with acknowledge mode none the broker forgot it when it sent it; it cannot go back, nor can any other message already sent to this consumer")
	return true
}

var errAutoAcked = errors.New("broker: delivery was acknowledged when it was sent")

// autoAcked settles deliveries of an AutoAck consumer: there is nothing to
// tell the broker, which forgot them already, and nothing to give back.
type autoAcked struct{}

func (autoAcked) Ack(uint64, bool) error        { return nil }
func (autoAcked) Nack(uint64, bool, bool) error { return errAutoAcked }
func (autoAcked) Reject(uint64, bool) error     { return nil }
