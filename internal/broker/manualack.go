//go:build !faultinject

package broker

import (
	"log/slog"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ackMode is manual acks, the only mode of this build: the acknowledge
// mode none exists in faultinject builds only.
type ackMode struct{}

func (ackMode) autoAck() bool                      { return false }
func (ackMode) settleAutomatically(*amqp.Delivery) {}
func lostWhenSent(*slog.Logger, error) bool        { return false }
