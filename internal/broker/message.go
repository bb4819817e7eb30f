package broker

import (
	"context"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/correlation"
)

// Identified returns ctx with d's correlation id, for the handler's logs and
// calls, or a Malformed error if d has no message_id: an event without one
// cannot be deduplicated, so no handler may apply it.
func Identified(ctx context.Context, d amqp.Delivery) (context.Context, error) {
	if d.CorrelationId != "" {
		ctx = correlation.WithID(ctx, d.CorrelationId)
	}
	if d.MessageId == "" {
		return ctx, Malformed(fmt.Errorf("%s without message_id cannot be deduplicated", d.Type))
	}
	return ctx, nil
}

// Handle returns the handler of one event type, with the prologue every
// event handler shares written once: the delivery identified (Identified),
// its body decoded, and a body that does not decode parked as Malformed.
// apply gets the decoded event and the delivery's context; its error is the
// handler's.
func Handle[E any](decode func(body []byte) (E, error), apply func(ctx context.Context, d amqp.Delivery, ev E) error) Handler {
	return func(ctx context.Context, d amqp.Delivery) error {
		ctx, err := Identified(ctx, d)
		if err != nil {
			return err
		}
		ev, err := decode(d.Body)
		if err != nil {
			return Malformed(err)
		}
		return apply(ctx, d, ev)
	}
}
