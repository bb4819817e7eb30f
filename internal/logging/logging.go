// Package logging makes the JSON logger both services write to stdout.
// Every line logged with a context that carries a correlation id names it,
// so one payment can be followed from pay's HTTP request through the outbox
// and the broker to trade's consumer.
package logging

import (
	"context"
	"io"
	"log/slog"

	"go.opentelemetry.io/otel/trace"

	"github.com/paytrade/paytrade/internal/correlation"
)

// New returns a JSON logger at level whose every line names service, and
// the correlation id and trace id of the context it is given, if any.
func New(w io.Writer, level slog.Level, service string) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})
	return slog.New(correlated{h}).With("service", service)
}

// correlated adds correlation_id, and trace_id and span_id when tracing is
// on, from the record's context.
type correlated struct{ slog.Handler }

func (h correlated) Handle(ctx context.Context, r slog.Record) error {
	if id := correlation.ID(ctx); id != "" {
		r.AddAttrs(slog.String("correlation_id", id))
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h correlated) WithAttrs(attrs []slog.Attr) slog.Handler {
	return correlated{h.Handler.WithAttrs(attrs)}
}

func (h correlated) WithGroup(name string) slog.Handler {
	return correlated{h.Handler.WithGroup(name)}
}

// WarnUnsafe says loudly, once at start-up, when a process runs with
// settings that only belong in a test or on a laptop: armed crash points
// (as crashpoint.Set.String lists them), development mode (PAYTRADE_DEV=1,
// which accepts the published development keys), and
// the seed-style wiring that make bench and make chaos UNSAFE=1 compare
// against (each as NAME=value).
func WarnUnsafe(log *slog.Logger, crashPoints string, dev bool, seedStyle []string) {
	if crashPoints != "" {
		log.Warn("crash points armed: this process will kill itself on purpose", "points", crashPoints)
	}
	if dev {
		log.Warn("PAYTRADE_DEV=1: development mode accepts the published development keys and listens on loopback only; never set it anywhere but a laptop")
	}
	if len(seedStyle) > 0 {
		log.Warn("UNSAFE seed-style wiring: messages can be lost or applied twice; for demonstrations only", "settings", seedStyle)
	}
}
