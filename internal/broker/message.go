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
