package tracing

import (
	"context"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// headers carries trace context in a message's AMQP headers.
type headers amqp.Table

func (h headers) Get(key string) string {
	v, _ := h[key].(string)
	return v
}

func (h headers) Set(key, value string) { h[key] = value }

func (h headers) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

// Publish starts the span of publishing one outbox event: a child of the
// span that wrote the event (creation, as stored beside it) and linked to
// it, so the trace goes on from the transaction to the broker. It writes
// the span's context into msg's headers (traceparent, tracestate) for the
// consumer. With tracing off, or an event written outside any span, it
// leaves msg as it is.
func Publish(creation trace.SpanContext, msg *amqp.Publishing, exchange, routingKey string) trace.Span {
	if !creation.IsValid() {
		return trace.SpanFromContext(context.Background())
	}
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), creation)
	ctx, span := tracer().Start(ctx, "publish "+exchange,
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithLinks(trace.Link{SpanContext: creation, Attributes: []attribute.KeyValue{attribute.String("link.reason", "outbox write")}}),
		trace.WithAttributes(
			semconv.MessagingSystemRabbitMQ,
			semconv.MessagingOperationTypeSend,
			semconv.MessagingOperationName("publish"),
			semconv.MessagingDestinationName(exchange),
			semconv.MessagingRabbitMQDestinationRoutingKey(routingKey),
			semconv.MessagingMessageID(msg.MessageId),
			semconv.MessagingMessageConversationID(msg.CorrelationId),
		))
	h := make(amqp.Table, len(msg.Headers)+2)
	for k, v := range msg.Headers {
		h[k] = v
	}
	otel.GetTextMapPropagator().Inject(ctx, headers(h))
	msg.Headers = h
	return span
}

// Process starts the span of processing delivery d from queue, continuing
// the trace its headers carry: a redelivered copy lands in the same trace.
func Process(ctx context.Context, queue string, d amqp.Delivery) (context.Context, trace.Span) {
	ctx = otel.GetTextMapPropagator().Extract(ctx, headers(d.Headers))
	return tracer().Start(ctx, "process "+queue,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			semconv.MessagingSystemRabbitMQ,
			semconv.MessagingOperationTypeProcess,
			semconv.MessagingOperationName("process"),
			semconv.MessagingDestinationName(d.Exchange),
			semconv.MessagingRabbitMQDestinationRoutingKey(d.RoutingKey),
			semconv.MessagingConsumerGroupName(queue),
			semconv.MessagingMessageID(d.MessageId),
			semconv.MessagingMessageConversationID(d.CorrelationId),
			attribute.Bool("messaging.rabbitmq.message.redelivered", d.Redelivered),
		))
}

// End ends span, marking it failed with err if there is one.
func End(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
