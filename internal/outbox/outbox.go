// Package outbox is a transactional outbox: an event is written in the same
// database transaction as the change it announces, and a relay publishes it
// to RabbitMQ afterwards, deleting it only once the broker has confirmed it.
// So a change is never committed without its event, nor an event published
// for a change that rolled back; the price is at-least-once delivery, which
// consumers absorb by deduplicating on the message id.
//
// The table it needs (outbox_events) is created by each database's migrations.
package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/trace"

	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/tracing"
)

// Event is one message waiting to be published. Its ID becomes the AMQP
// message_id and stays the same however often the event is re-published.
type Event struct {
	ID            uuid.UUID
	Exchange      string
	RoutingKey    string
	Type          string
	Payload       []byte
	CorrelationID string
	// Creation is the span that wrote the event, as its W3C trace context
	// stored beside it: the relay's publish continues its trace.
	Creation trace.SpanContext
}

// NewEvent returns an event with a fresh time-ordered ID and body as its JSON payload.
func NewEvent(exchange, routingKey, typ string, body any, correlationID string) (Event, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return Event{}, fmt.Errorf("new event id: %w", err)
	}
	payload, err := json.Marshal(body)
	if err != nil {
		return Event{}, fmt.Errorf("encode %s event: %w", typ, err)
	}
	return Event{ID: id, Exchange: exchange, RoutingKey: routingKey, Type: typ, Payload: payload, CorrelationID: correlationID}, nil
}

// Message is ev as published: persistent, JSON, with the event's ID as its
// message_id, so every copy of it is recognisably the same message.
func (ev Event) Message(appID string, createdAt time.Time) broker.Message {
	return broker.Message{
		Exchange:   ev.Exchange,
		RoutingKey: ev.RoutingKey,
		Publishing: amqp.Publishing{
			ContentType:   "application/json",
			DeliveryMode:  amqp.Persistent,
			MessageId:     ev.ID.String(),
			Type:          ev.Type,
			AppId:         appID,
			Timestamp:     createdAt,
			CorrelationId: ev.CorrelationID,
			Body:          ev.Payload,
		},
	}
}

// insertSQL writes an event with its trace context.
const insertSQL = `
	INSERT INTO outbox_events (id, exchange, routing_key, message_type, payload, correlation_id, traceparent, tracestate)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`

// Args are the arguments of Insert's statement (and of InsertFrom's) for
// ev, with the trace context of ctx's span (empty with tracing off).
func Args(ctx context.Context, ev Event) []any {
	traceparent, tracestate := tracing.Context(ctx)
	return []any{ev.ID, ev.Exchange, ev.RoutingKey, ev.Type, ev.Payload, ev.CorrelationID, traceparent, tracestate}
}

// Insert adds ev to the outbox inside tx, the transaction of the change it
// announces, with the trace context of ctx's span (empty with tracing off).
func Insert(ctx context.Context, tx pgx.Tx, ev Event) error {
	if _, err := tx.Exec(ctx, insertSQL, Args(ctx, ev)...); err != nil {
		return fmt.Errorf("insert outbox event %s: %w", ev.ID, err)
	}
	return nil
}

// InsertFrom is Insert as the body of a data-modifying WITH query of a
// larger statement: it adds the event once for each row of from (a query
// of the statement that holds one row when the change was made, none when
// not), with its arguments numbered from $first on, as Args gives them.
// The change and its event are then one statement, one round trip.
func InsertFrom(from string, first int) string {
	return fmt.Sprintf(`INSERT INTO outbox_events (id, exchange, routing_key, message_type, payload, correlation_id, traceparent, tracestate)
		SELECT $%[1]d::uuid, $%[2]d::text, $%[3]d::text, $%[4]d::text, $%[5]d::bytea, $%[6]d::text, $%[7]d::text, $%[8]d::text FROM %[9]s`,
		first, first+1, first+2, first+3, first+4, first+5, first+6, first+7, from)
}

// Queue adds Insert's statement to b, a batch of the transaction of the
// change ev announces; its result is read like any other of the batch.
func Queue(ctx context.Context, b *pgx.Batch, ev Event) {
	b.Queue(insertSQL, Args(ctx, ev)...)
}
