package tracing

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/go-chi/chi/v5"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace/noop"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// BenchmarkPaymentTracing measures what tracing adds to one payment's way
// through both services, without the database and the broker whose cost it
// is added to: the request served (a server span), the event's trace
// context taken for the outbox row, the relay's publish span with the
// context written into the message's headers, and the consumer's process
// span continuing it. "off" is the default (OTEL_TRACES_EXPORTER unset);
// "otlp" exports every span, batched, over OTLP/HTTP to a receiver in the
// test that reads and drops each request.
func BenchmarkPaymentTracing(b *testing.B) {
	b.Cleanup(func() {
		otel.SetTracerProvider(noop.NewTracerProvider())
		otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator())
	})
	var spans, exported atomic.Int64
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req collectortrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				spans.Add(int64(len(ss.Spans)))
			}
		}
		exported.Add(int64(len(body)))
	}))
	b.Cleanup(receiver.Close)

	for _, c := range []Config{
		{Exporter: ExporterNone, Service: "pay"},
		{Exporter: ExporterOTLP, Endpoint: receiver.URL + "/v1/traces", Service: "pay"},
	} {
		b.Run(c.Exporter, func(b *testing.B) {
			stop, err := Start(c, io.Discard, slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			spans.Store(0)
			exported.Store(0)
			router := chi.NewRouter()
			router.Use(Handler)
			var event amqp.Publishing
			router.Post("/pay-orders/{id}", func(w http.ResponseWriter, r *http.Request) {
				traceparent, tracestate := Context(r.Context())
				event = amqp.Publishing{MessageId: "m", Headers: amqp.Table{}, Body: []byte(traceparent + tracestate)}
				creation := FromContext(traceparent, tracestate)
				span := Publish(creation, &event, "pay.topic", "pay.success")
				End(span, nil)
			})
			w := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodPost, "/pay-orders/45", nil)
			b.ReportAllocs()
			for b.Loop() {
				router.ServeHTTP(w, req)
				_, span := Process(context.Background(), "mark.order.pay.queue", amqp.Delivery{Headers: event.Headers, MessageId: "m"})
				End(span, nil)
			}
			b.StopTimer()
			stop()
			if c.Enabled() {
				// Three spans a payment; fewer arrive when the bounded
				// queue dropped some rather than hold the loop up.
				b.ReportMetric(float64(spans.Load())/float64(b.N), "spans-exported/op")
				b.ReportMetric(float64(exported.Load())/float64(b.N), "exported-B/op")
			}
		})
	}
}
