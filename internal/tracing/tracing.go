// Package tracing follows one payment, or one refund, across both services
// with OpenTelemetry: a span for each HTTP request served or sent, for each
// event published from the outbox and for each delivery processed, joined
// into one trace by W3C trace context — in HTTP headers, in the outbox row
// beside the event, and in the message's headers. It is off unless the
// standard OTEL_TRACES_EXPORTER asks for it; then spans leave the process
// from a bounded queue in the background, so a collector that is slow or
// gone drops spans and never holds up a payment.
package tracing

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// The exporters OTEL_TRACES_EXPORTER names.
const (
	ExporterNone    = "none"
	ExporterOTLP    = "otlp"
	ExporterConsole = "console"
)

// Config is what the OTEL_* variables say.
type Config struct {
	Exporter string // none, otlp or console [none]
	// Endpoint is the collector's OTLP/HTTP traces URL.
	Endpoint string
	Service  string // service.name
}

// ReadConfig reads OTEL_TRACES_EXPORTER, OTEL_EXPORTER_OTLP_ENDPOINT (or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, the full URL) and OTEL_SERVICE_NAME,
// with service as the default name. Tracing is off unless asked for.
func ReadConfig(getenv func(string) string, service string) (Config, error) {
	c := Config{Exporter: strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")), Service: getenv("OTEL_SERVICE_NAME")}
	if c.Exporter == "" {
		c.Exporter = ExporterNone
	}
	if c.Service == "" {
		c.Service = service
	}
	switch c.Exporter {
	case ExporterNone, ExporterConsole:
	case ExporterOTLP:
		if p := getenv("OTEL_EXPORTER_OTLP_PROTOCOL"); p != "" && p != "http/protobuf" {
			return c, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%q: only http/protobuf is built in", p)
		}
		c.Endpoint = getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
		if c.Endpoint == "" {
			base := getenv("OTEL_EXPORTER_OTLP_ENDPOINT")
			if base == "" {
				base = "http://localhost:4318"
			}
			c.Endpoint = strings.TrimRight(base, "/") + "/v1/traces"
		}
	default:
		return c, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: want %s, %s or %s", c.Exporter, ExporterOTLP, ExporterConsole, ExporterNone)
	}
	return c, nil
}

// Enabled reports whether c exports spans.
func (c Config) Enabled() bool { return c.Exporter != ExporterNone }

// exportTimeout bounds one export; a collector that does not answer costs
// the background exporter this long, never a request.
const exportTimeout = 5 * time.Second

// flushTimeout bounds the flush at shutdown: a collector that is gone
// delays a stop by this much at most.
const flushTimeout = 2 * time.Second

// Start installs c's tracer provider and the W3C propagator for the
// process, and returns what flushes and stops them at shutdown, telling log
// of spans it could not flush. With tracing off it installs nothing: spans
// are then the API's no-ops and nothing is injected into headers or outbox
// rows.
func Start(c Config, console io.Writer, log *slog.Logger) (stop func(), err error) {
	if !c.Enabled() {
		return func() {}, nil
	}
	var exporter sdktrace.SpanExporter
	switch c.Exporter {
	case ExporterOTLP:
		exporter, err = otlptracehttp.New(context.Background(),
			otlptracehttp.WithEndpointURL(c.Endpoint), otlptracehttp.WithTimeout(exportTimeout))
	case ExporterConsole:
		exporter, err = stdouttrace.New(stdouttrace.WithWriter(console))
	}
	if err != nil {
		return nil, fmt.Errorf("tracing exporter %s: %w", c.Exporter, err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(c.Service)))
	if err != nil {
		return nil, fmt.Errorf("tracing resource: %w", err)
	}
	// The batcher's queue is bounded and drops when full: the callers of
	// span.End never wait for the exporter.
	provider := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter), sdktrace.WithResource(res))
	otel.SetTracerProvider(provider)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
		defer cancel()
		if err := provider.Shutdown(ctx); err != nil {
			log.Warn("spans lost at shutdown", "err", err)
		}
	}, nil
}

// tracer is the project's tracer, from whichever provider is installed.
func tracer() trace.Tracer { return otel.Tracer("github.com/paytrade/paytrade") }

// Context is the W3C trace context of ctx's span (traceparent, tracestate),
// to store beside an event; empty when tracing is off or ctx has no span.
func Context(ctx context.Context) (traceparent, tracestate string) {
	carrier := propagation.MapCarrier{}
	otel.GetTextMapPropagator().Inject(ctx, carrier)
	return carrier["traceparent"], carrier["tracestate"]
}

// FromContext is the span context that traceparent and tracestate name,
// as stored beside an event.
func FromContext(traceparent, tracestate string) trace.SpanContext {
	if traceparent == "" {
		return trace.SpanContext{}
	}
	ctx := propagation.TraceContext{}.Extract(context.Background(),
		propagation.MapCarrier{"traceparent": traceparent, "tracestate": tracestate})
	return trace.SpanContextFromContext(ctx)
}
