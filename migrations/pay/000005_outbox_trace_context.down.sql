ALTER TABLE outbox_events
    DROP COLUMN traceparent,
    DROP COLUMN tracestate;
