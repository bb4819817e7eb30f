-- The W3C trace context (traceparent, tracestate) of the span that wrote
-- each event, so the relay's publish continues that trace; empty when
-- tracing is off.
ALTER TABLE outbox_events
    ADD COLUMN traceparent text NOT NULL DEFAULT '',
    ADD COLUMN tracestate  text NOT NULL DEFAULT '';
