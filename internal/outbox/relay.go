package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/trace"

	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/crashpoint"
	"github.com/paytrade/paytrade/internal/database"
	"github.com/paytrade/paytrade/internal/tracing"
)

// Publisher publishes a batch with publisher confirms and reports, per
// message, whether the broker took responsibility for it; WaitUnblocked
// waits while the broker blocks publishing (a memory or disk alarm).
type Publisher interface {
	PublishBatch(ctx context.Context, msgs []broker.Message) ([]broker.Outcome, error)
	WaitUnblocked(ctx context.Context) error
}

// RelayConfig tunes a Relay. Zero fields take the defaults in brackets.
type RelayConfig struct {
	AppID     string        // the AMQP app_id of every message
	BatchSize int           // events claimed and published together [100]
	Poll      time.Duration // how often to look without being woken [1s]
	// Retry spaces out re-publishing an event the broker nacked, returned as
	// unroutable or did not confirm in time [1s doubling to 30s].
	Retry  broker.Backoff
	Logger *slog.Logger
	Crash  crashpoint.Set
	// ObserveConfirm, if set, is told how long each batch took from
	// publishing to its last confirm: the broker's confirm latency.
	ObserveConfirm func(time.Duration)
	// Lease is how long a claimed batch is hidden from other relays: as
	// long as the publisher's default confirm timeout, which bounds a
	// batch's publish, and short, since the batch of a relay that died
	// goes out again only when it ends [5s]. A batch that outlives it may
	// be published by another relay too: at-least-once, as ever.
	Lease time.Duration
}

// Relay publishes outbox events. Several relays, in one process or many,
// can share one table: each claims its batch with FOR UPDATE SKIP LOCKED
// and a lease (the batch's available_at moved past the publish).
type Relay struct {
	pool *pgxpool.Pool
	pub  Publisher
	cfg  RelayConfig
	log  *slog.Logger
	wake chan struct{}

	published atomic.Int64
	returned  atomic.Int64
	nacked    atomic.Int64
	refused   atomic.Int64
}

// NewRelay returns a relay of the outbox in pool's database.
func NewRelay(pool *pgxpool.Pool, pub Publisher, cfg RelayConfig) *Relay {
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 100
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 5 * time.Second
	}
	if cfg.Retry.Initial <= 0 {
		cfg.Retry.Initial = time.Second
	}
	if cfg.Retry.Max <= 0 {
		cfg.Retry.Max = 30 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Relay{pool: pool, pub: pub, cfg: cfg, log: log.With("component", "outbox-relay"), wake: make(chan struct{}, 1)}
}

// Wake tells the relay that an event was just committed, so it publishes
// now instead of at the next poll. It never blocks.
func (r *Relay) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Stats counts what the relay has done since it started. Refused counts
// the attempts of events whose publishing made the broker close the channel.
type Stats struct {
	Published, Returned, Nacked, Refused int64
}

// Stats returns the relay's counters.
func (r *Relay) Stats() Stats {
	return Stats{Published: r.published.Load(), Returned: r.returned.Load(), Nacked: r.nacked.Load(), Refused: r.refused.Load()}
}

// Backlog returns how many events wait in the outbox and how long the
// oldest has waited: the first numbers to look at when the broker is away.
func (r *Relay) Backlog(ctx context.Context) (pending int64, oldest time.Duration, err error) {
	var seconds float64
	err = r.pool.QueryRow(ctx, `
		SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 FROM outbox_events`).Scan(&pending, &seconds)
	if err != nil {
		return 0, 0, fmt.Errorf("read outbox backlog: %w", err)
	}
	return pending, time.Duration(seconds * float64(time.Second)), nil
}

// Run publishes events until ctx ends. A batch in flight when ctx ends is
// finished — its confirms awaited and recorded — before Run returns, so a
// graceful shutdown leaves nothing published but unrecorded.
func (r *Relay) Run(ctx context.Context) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		case <-r.wake:
		}
		// While the broker blocks publishing, nothing is claimed: no
		// transaction stays open, no row is charged an attempt, and the
		// relay goes on the moment the alarm clears.
		if err := r.pub.WaitUnblocked(ctx); err != nil {
			return nil
		}
		// A batch already claimed is finished even if ctx ends meanwhile;
		// the publisher's confirm timeout and batchTimeout bound how long.
		batchCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), batchTimeout)
		n, err := r.RelayBatch(batchCtx)
		cancel()
		switch {
		case errors.Is(err, broker.ErrNotConnected):
			r.log.Debug("broker not connected; events wait in the outbox")
		case errors.Is(err, broker.ErrBlocked):
			r.log.Debug("broker blocks publishing; events wait in the outbox until it unblocks")
			timer.Reset(0) // WaitUnblocked holds the next batch until then
			continue
		case err != nil:
			r.log.Warn("relay batch failed; events stay pending", "err", err)
		case n == r.cfg.BatchSize:
			timer.Reset(0) // more may be waiting
			continue
		}
		timer.Reset(r.cfg.Poll)
	}
}

// batchTimeout bounds one batch: claim, publish, confirms and bookkeeping.
const batchTimeout = 30 * time.Second

type claimed struct {
	id       uuid.UUID
	attempts int
	creation trace.SpanContext // the span that wrote the event
}

// RelayBatch claims up to one batch of due events, publishes them, deletes
// the ones the broker confirmed and schedules the rest for a later attempt.
// It returns how many events it claimed.
//
// Two round trips to PostgreSQL and the publish: the claim, a statement
// that commits on its own and so is also the replication barrier (see
// claim), and the bookkeeping, one statement. A relay that dies between
// the two leaves its batch to the next claim once the lease ends: the
// events go out again with the same message ids.
func (r *Relay) RelayBatch(ctx context.Context) (int, error) {
	events, msgs, err := r.claim(ctx)
	if err != nil || len(events) == 0 {
		// Claimed but not known to be on the synchronous standby: nothing
		// is published; the events wait for a later claim.
		return 0, err
	}
	spans := make([]trace.Span, len(events))
	for i, ev := range events {
		spans[i] = tracing.Publish(ev.creation, &msgs[i].Publishing, msgs[i].Exchange, msgs[i].RoutingKey)
	}
	published := time.Now()
	outcomes, pubErr := r.pub.PublishBatch(ctx, msgs)
	endPublishSpans(spans, outcomes, pubErr)
	if r.cfg.ObserveConfirm != nil && outcomes != nil {
		r.cfg.ObserveConfirm(time.Since(published))
	}
	if outcomes == nil {
		// Nothing was published: the events are due again at once.
		if err := r.release(ctx, events); err != nil {
			return len(events), errors.Join(pubErr, err)
		}
		return len(events), pubErr
	}
	r.cfg.Crash.Hit(crashpoint.RelayAfterConfirm)

	// An event the broker closed the channel over is found and recorded,
	// so that it neither blocks the others nor goes unnoticed.
	refused := make([]string, len(events))
	if refusal, ok := broker.Refusal(pubErr); ok {
		pubErr = r.narrow(ctx, msgs, unconfirmed(outcomes), refusal, outcomes, refused)
	}

	var done []uuid.UUID
	var returned, nacked, refusals int64
	var retryIDs, releaseIDs []uuid.UUID
	var retryDelays []int64
	var retryReasons []string
	for i, ev := range events {
		reason := ""
		switch outcomes[i] {
		case broker.Acked:
			done = append(done, ev.id)
			continue
		case broker.Returned:
			returned++
			reason = "returned by the broker: unroutable, no queue bound to the routing key"
			r.log.Error("event unroutable: the broker has no queue for it; kept in the outbox and retried",
				"message_id", ev.id, "exchange", msgs[i].Exchange, "routing_key", msgs[i].RoutingKey, "attempts", ev.attempts+1)
		case broker.Nacked:
			nacked++
			reason = "nacked by the broker"
			r.log.Warn("event nacked; kept in the outbox and retried", "message_id", ev.id, "attempts", ev.attempts+1)
		case broker.Unconfirmed:
			if refused[i] != "" {
				refusals++
				reason = refused[i]
				r.log.Error("event refused by the broker; kept in the outbox and retried with backoff",
					"message_id", ev.id, "exchange", msgs[i].Exchange, "routing_key", msgs[i].RoutingKey,
					"reason", reason, "attempts", ev.attempts+1)
				break
			}
			if pubErr != nil {
				// The connection failed under the batch, not the event:
				// retry it as soon as the broker is back.
				releaseIDs = append(releaseIDs, ev.id)
				continue
			}
			reason = "no confirm within the timeout"
		}
		retryIDs = append(retryIDs, ev.id)
		retryDelays = append(retryDelays, r.retryDelay(ev.attempts).Milliseconds())
		retryReasons = append(retryReasons, reason)
	}

	err = database.Statement(ctx, r.pool, func(conn *pgxpool.Conn) error {
		_, err := conn.Exec(ctx, `
			WITH published AS (
				DELETE FROM outbox_events WHERE id = ANY($1)
			), retried AS (
				UPDATE outbox_events AS o
				SET attempts = o.attempts + 1,
				    available_at = now() + u.delay_ms * interval '1 millisecond',
				    last_error = u.reason
				FROM unnest($2::uuid[], $3::bigint[], $4::text[]) AS u(id, delay_ms, reason)
				WHERE o.id = u.id
			)
			UPDATE outbox_events SET available_at = now() WHERE id = ANY($5)`,
			done, retryIDs, retryDelays, retryReasons, releaseIDs)
		return err
	})
	if err != nil {
		return len(events), fmt.Errorf("record relay batch: %w", err)
	}
	// Counted only once committed, so the counters never run ahead of the table.
	r.published.Add(int64(len(done)))
	r.returned.Add(returned)
	r.nacked.Add(nacked)
	r.refused.Add(refusals)
	return len(events), pubErr
}

// unconfirmed returns the indexes of the messages with no confirm.
func unconfirmed(outcomes []broker.Outcome) []int {
	var idx []int
	for i, o := range outcomes {
		if o == broker.Unconfirmed {
			idx = append(idx, i)
		}
	}
	return idx
}

// narrow finds the message of msgs[suspects] that made the broker close the
// channel with refusal: one suspect is it; more are published again in two
// halves, each half that is refused again narrowed in turn. A refused
// batch of n costs about 2·log2(n) more batches, and only the messages it
// did not confirm are sent again. The outcome of every message published
// again replaces its earlier one; refused[i] gets the reason of the one (or
// ones) found. A failure that is not a refusal (the connection lost) stops
// the search and is returned.
func (r *Relay) narrow(ctx context.Context, msgs []broker.Message, suspects []int, refusal *amqp.Error,
	outcomes []broker.Outcome, refused []string) error {
	if len(suspects) == 1 {
		refused[suspects[0]] = fmt.Sprintf("refused by the broker: %d %s", refusal.Code, refusal.Reason)
		return nil
	}
	half := len(suspects) / 2
	for _, part := range [][]int{suspects[:half], suspects[half:]} {
		if len(part) == 0 {
			continue
		}
		group := make([]broker.Message, len(part))
		for j, i := range part {
			group[j] = msgs[i]
		}
		got, err := r.pub.PublishBatch(ctx, group)
		if got == nil {
			return err
		}
		for j, i := range part {
			outcomes[i] = got[j]
		}
		again, ok := broker.Refusal(err)
		if !ok {
			if err != nil {
				return err
			}
			continue
		}
		var rest []int
		for _, i := range part {
			if outcomes[i] == broker.Unconfirmed {
				rest = append(rest, i)
			}
		}
		if err := r.narrow(ctx, msgs, rest, again, outcomes, refused); err != nil {
			return err
		}
	}
	return nil
}

// claim takes up to a batch of due events for the lease, in the order they
// fell due, in one statement that commits on its own. Its commit is the
// replication barrier: a commit can be visible on the primary and not on
// the synchronous standby (its wait for the standby was canceled by an
// operator or a statement timeout, or the standby fell behind), and its
// event, published, would be a ghost once a failover promotes the
// standby: an announced payment that never happened. PostgreSQL
// acknowledges the claim's commit only once the standby has flushed it,
// and with it every commit before it in the WAL: every commit whose event
// the claim saw. A claim whose own wait was canceled is an error, and its
// events are published by a later claim.
func (r *Relay) claim(ctx context.Context) ([]claimed, []broker.Message, error) {
	var (
		events []claimed
		msgs   []broker.Message
	)
	err := database.Statement(ctx, r.pool, func(conn *pgxpool.Conn) error {
		events, msgs = nil, nil
		rows, err := conn.Query(ctx, `
			WITH due AS (
				SELECT id, available_at FROM outbox_events
				WHERE available_at <= now()
				ORDER BY available_at
				LIMIT $1
				FOR UPDATE SKIP LOCKED
			), leased AS (
				UPDATE outbox_events AS o SET available_at = now() + $2::interval
				FROM due WHERE o.id = due.id
				RETURNING o.id, o.exchange, o.routing_key, o.message_type, o.payload, o.correlation_id, o.created_at,
					o.attempts, o.traceparent, o.tracestate, due.available_at AS due_at
			)
			SELECT id, exchange, routing_key, message_type, payload, correlation_id, created_at, attempts, traceparent, tracestate
			FROM leased ORDER BY due_at`, r.cfg.BatchSize, r.cfg.Lease)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				ev                      claimed
				e                       Event
				createdAt               time.Time
				traceparent, tracestate string
			)
			if err := rows.Scan(&ev.id, &e.Exchange, &e.RoutingKey, &e.Type, &e.Payload, &e.CorrelationID, &createdAt, &ev.attempts, &traceparent, &tracestate); err != nil {
				return fmt.Errorf("scan outbox event: %w", err)
			}
			e.ID, ev.creation = ev.id, tracing.FromContext(traceparent, tracestate)
			events = append(events, ev)
			msgs = append(msgs, e.Message(r.cfg.AppID, createdAt))
		}
		return rows.Err()
	})
	if err != nil {
		return nil, nil, fmt.Errorf("claim outbox events: %w", err)
	}
	return events, msgs, nil
}

// release makes claimed events due again at once.
func (r *Relay) release(ctx context.Context, events []claimed) error {
	ids := make([]uuid.UUID, len(events))
	for i, ev := range events {
		ids[i] = ev.id
	}
	if _, err := r.pool.Exec(ctx, `UPDATE outbox_events SET available_at = now() WHERE id = ANY($1)`, ids); err != nil {
		return fmt.Errorf("release unpublished events: %w", err)
	}
	return nil
}

// endPublishSpans ends the span of each event's publish with its outcome.
func endPublishSpans(spans []trace.Span, outcomes []broker.Outcome, pubErr error) {
	for i, span := range spans {
		var err error
		switch {
		case outcomes == nil || i >= len(outcomes):
			err = fmt.Errorf("not published: %w", pubErr)
		case outcomes[i] != broker.Acked:
			err = fmt.Errorf("not confirmed: %v", outcomes[i])
		}
		tracing.End(span, err)
	}
}

// retryDelay is how long an event that failed attempts times waits before
// its next attempt.
func (r *Relay) retryDelay(attempts int) time.Duration {
	d := r.cfg.Retry.Next(0)
	for range attempts {
		d = r.cfg.Retry.Next(d)
	}
	return d
}
