package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"
)

// Handler processes one delivery; nil means done (the consumer acks).
type Handler func(ctx context.Context, d amqp.Delivery) error

// malformedError is a handler error that retrying cannot cure.
type malformedError struct{ err error }

func (e *malformedError) Error() string { return "malformed message: " + e.err.Error() }
func (e *malformedError) Unwrap() error { return e.err }

// Malformed marks err as a message that can never be processed (undecodable, invalid values): it is parked at once, never retried. Malformed(nil) is nil.
func Malformed(err error) error {
	if err == nil {
		return nil
	}
	return &malformedError{err: err}
}

// IsMalformed reports whether err (wrapped or not) came from Malformed.
func IsMalformed(err error) bool {
	var m *malformedError
	return errors.As(err, &m)
}

// Recoverer says what happens to a message whose handler failed every attempt.
type Recoverer string

// The recoverers, named as the TRADE_RECOVERER setting spells them.
const (
	RecoverRepublish Recoverer = "republish" // publish to the error exchange (confirmed), then ack the original
	RecoverReject    Recoverer = "reject"    // reject without requeue: dead-lettered to the error queue by a queue Declaration declares, dropped by one without a dead-letter route; logged at error level
	RecoverRequeue   Recoverer = "requeue"   // nack with requeue: back to the queue
)

// ParseRecoverer parses "republish" | "reject" | "requeue".
func ParseRecoverer(s string) (Recoverer, error) {
	switch r := Recoverer(s); r {
	case RecoverRepublish, RecoverReject, RecoverRequeue:
		return r, nil
	default:
		return "", fmt.Errorf("unknown recoverer %q: want republish, reject or requeue", s)
	}
}

// Retry is local, in-process retry of a failed handler, like
// spring.rabbitmq.listener.simple.retry.*. Zero fields take the defaults in
// brackets; a Multiplier below 1 takes the default too.
type Retry struct {
	MaxAttempts     int           // attempts in all, the first included [3]
	InitialInterval time.Duration // wait before the second attempt [1s]
	Multiplier      float64       // each wait is the previous times this [2]
	MaxInterval     time.Duration // cap on one wait [10s]
}

// ConsumerConfig tells a Consumer what to consume and what to do with
// failures. Zero fields take the defaults in brackets.
type ConsumerConfig struct {
	Queue           string
	Prefetch        int // basic.qos prefetch count, and the number of concurrent handlers [10]
	Retry           Retry
	Recoverer       Recoverer // [RecoverRepublish]
	ErrorExchange   string    // where malformed and (with RecoverRepublish) exhausted messages are parked
	ErrorRoutingKey string
	Publisher       *Publisher // confirmed publisher used to park (required); ideally on its own Supervisor/connection
	// Sender, if set, is the only broker user whose messages reach the
	// handler: RabbitMQ checks a message's user_id against the user that
	// published it, so one from anyone else (or without a user_id) is
	// parked at once as a forbidden sender, never handled.
	Sender string
	// Unavailable reports that an error is the world's fault (the database
	// refused, is down or did not answer), not the message's: consumption
	// pauses instead of retrying and parking.
	Unavailable func(error) bool // [never]
	// AttemptTimeout bounds each handler attempt and each Probe: a
	// dependency that stops answering without closing the connection
	// must hang neither the workers nor shutdown. An attempt that runs out
	// of it counts as Unavailable. [10s]
	AttemptTimeout time.Duration
	// Probe is polled, with ProbeBackoff, while paused for an unavailable dependency; nil error resumes consumption.
	Probe        func(context.Context) error // [resume after one ProbeBackoff wait]
	ProbeBackoff Backoff                     // [250ms doubling to 5s]
	Logger       *slog.Logger                // [discard]
	// ackMode is manual acks; a faultinject build can switch it to
	// Spring's acknowledge-mode none (AutoAck), for make chaos UNSAFE=1.
	ackMode
}

// ConsumerStats counts what a Consumer did, since it was made.
type ConsumerStats struct {
	Delivered int64 // deliveries handed to the handler (redeliveries included)
	Acked     int64 // deliveries acked after the handler succeeded
	Retried   int64 // extra handler attempts
	Parked    int64 // copies the error exchange confirmed
	Rejected  int64 // deliveries dropped by RecoverReject
	Requeued  int64 // deliveries nacked back to the queue, for any reason
	Malformed int64 // handler errors marked Malformed
	Forbidden int64 // deliveries from a user other than Sender, parked unhandled
	Pauses    int64 // times consumption paused for an unavailable dependency
}

// maxExceptionMessage bounds the x-exception-message header: a header is
// held in memory with every copy of the message, and a runaway error text
// must not make the parked copy unpublishable.
const maxExceptionMessage = 1000

// resubscribeBackoff spaces attempts to consume again after a channel is
// lost; the supervisor already spaces reconnects, so this mostly matters
// when the queue itself is missing.
var resubscribeBackoff = Backoff{Initial: 250 * time.Millisecond, Max: 5 * time.Second}

// Consumer consumes one queue with manual acks and decides, for each
// delivery, between ack, retry, park, reject and requeue.
type Consumer struct {
	sup     *Supervisor
	cfg     ConsumerConfig
	handler Handler
	retry   Backoff
	log     *slog.Logger
	started atomic.Bool

	delivered, acked, retried, parked, rejected, requeued, malformed, forbidden, pauses atomic.Int64
}

// NewConsumer returns a consumer of cfg.Queue on s's connections that
// passes every delivery to h.
func NewConsumer(s *Supervisor, cfg ConsumerConfig, h Handler) *Consumer {
	if cfg.Prefetch <= 0 {
		cfg.Prefetch = 10
	}
	if cfg.Retry.MaxAttempts <= 0 {
		cfg.Retry.MaxAttempts = 3
	}
	if cfg.Retry.InitialInterval <= 0 {
		cfg.Retry.InitialInterval = time.Second
	}
	if cfg.Retry.Multiplier < 1 {
		cfg.Retry.Multiplier = 2
	}
	if cfg.Retry.MaxInterval <= 0 {
		cfg.Retry.MaxInterval = 10 * time.Second
	}
	if cfg.Recoverer == "" {
		cfg.Recoverer = RecoverRepublish
	}
	if cfg.Unavailable == nil {
		cfg.Unavailable = func(error) bool { return false }
	}
	if cfg.Probe == nil {
		cfg.Probe = func(context.Context) error { return nil }
	}
	if cfg.AttemptTimeout <= 0 {
		cfg.AttemptTimeout = 10 * time.Second
	}
	if cfg.ProbeBackoff.Initial <= 0 {
		cfg.ProbeBackoff.Initial = 250 * time.Millisecond
	}
	if cfg.ProbeBackoff.Max <= 0 {
		cfg.ProbeBackoff.Max = 5 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Consumer{
		sup:     s,
		cfg:     cfg,
		handler: h,
		retry: Backoff{
			Initial:    cfg.Retry.InitialInterval,
			Max:        cfg.Retry.MaxInterval,
			Multiplier: cfg.Retry.Multiplier,
		},
		log: log.With("component", "broker-consumer", "queue", cfg.Queue),
	}
}

// Run consumes until ctx ends; then it cancels the consumer (basic.cancel),
// waits for in-flight handlers to finish and ack, closes its channel and
// returns nil. Call it once. Its only error is a configuration it cannot
// run with, returned at once. The supervisor must outlive Run, or the last
// acks have no connection to go out on (their messages are then redelivered).
func (c *Consumer) Run(ctx context.Context) error {
	if !c.started.CompareAndSwap(false, true) {
		return errors.New("broker: consumer already running")
	}
	if err := c.validate(); err != nil {
		return err
	}
	var delay, probeDelay time.Duration
	for {
		conn, err := c.sup.Connection(ctx)
		if err != nil {
			return nil // only ctx ending stops the wait
		}
		started := time.Now()
		consumed, pauseErr, err := c.consume(ctx, conn)
		if ctx.Err() != nil {
			return nil
		}
		if pauseErr != nil {
			delay = 0
			// A dependency that passes the probe yet fails the work again
			// at once (a database that answers but refuses writes) is
			// probed ever less often, not in a tight loop.
			if time.Since(started) > c.cfg.ProbeBackoff.Max {
				probeDelay = 0
			}
			var resumed bool
			if probeDelay, resumed = c.awaitDependency(ctx, pauseErr, probeDelay); !resumed {
				return nil
			}
			continue
		}
		if consumed {
			delay = 0
		}
		delay = resubscribeBackoff.Next(delay)
		c.log.Warn("consumption interrupted; subscribing again after a wait", "err", err, "retry_in", delay)
		if !sleep(ctx, delay) {
			return nil
		}
	}
}

func (c *Consumer) validate() error {
	if c.cfg.Queue == "" {
		return errors.New("broker: consumer needs a queue")
	}
	if c.handler == nil {
		return errors.New("broker: consumer needs a handler")
	}
	if c.cfg.Prefetch > math.MaxUint16 {
		return fmt.Errorf("broker: consumer prefetch %d is above the protocol's %d", c.cfg.Prefetch, math.MaxUint16)
	}
	if c.cfg.Publisher == nil {
		// Malformed messages are parked whatever the recoverer.
		return errors.New("broker: consumer needs a publisher to park messages")
	}
	if _, err := ParseRecoverer(string(c.cfg.Recoverer)); err != nil {
		return fmt.Errorf("broker: consumer: %w", err)
	}
	return nil
}

// Stats returns the consumer's counters.
func (c *Consumer) Stats() ConsumerStats {
	return ConsumerStats{
		Delivered: c.delivered.Load(),
		Acked:     c.acked.Load(),
		Retried:   c.retried.Load(),
		Parked:    c.parked.Load(),
		Rejected:  c.rejected.Load(),
		Requeued:  c.requeued.Load(),
		Malformed: c.malformed.Load(),
		Forbidden: c.forbidden.Load(),
		Pauses:    c.pauses.Load(),
	}
}

// awaitDependency polls Probe, spaced by ProbeBackoff from after delay,
// until it succeeds (true) or ctx ends (false), and returns the last wait.
// The first poll waits too: the dependency has just been seen down.
func (c *Consumer) awaitDependency(ctx context.Context, cause error, delay time.Duration) (time.Duration, bool) {
	c.log.Warn("dependency unavailable: consumption paused until it answers", "err", cause)
	start := time.Now()
	for {
		delay = c.cfg.ProbeBackoff.Next(delay)
		if !sleep(ctx, delay) {
			return delay, false
		}
		pctx, cancel := context.WithTimeout(ctx, c.cfg.AttemptTimeout)
		err := c.cfg.Probe(pctx)
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return delay, false
		}
		c.log.Debug("dependency still unavailable", "err", err)
	}
	c.log.Info("dependency available again: consumption resumed", "paused_for", time.Since(start).Round(time.Millisecond))
	return delay, true
}

// session is consumption on one channel, from basic.consume until it stops
// for shutdown, a pause or the loss of the channel.
type session struct {
	// ctx ends when the session stops: workers take no more deliveries and
	// retry waits are cut short.
	ctx    context.Context
	cancel context.CancelFunc

	once     sync.Once
	pauseErr error // why the session paused; written before ctx ends
}

// halt stops the session, for a pause if pauseErr is not nil. Only the
// first call counts; it reports whether this was it.
func (s *session) halt(pauseErr error) bool {
	first := false
	s.once.Do(func() {
		first = true
		s.pauseErr = pauseErr
		s.cancel()
	})
	return first
}

func (s *session) stopping() bool {
	return s.ctx.Err() != nil
}

// consume runs one session on a new channel of conn. It reports whether
// consumption started, the error that paused it, if any, and otherwise
// why the channel could not be used or was lost.
func (c *Consumer) consume(ctx context.Context, conn *amqp.Connection) (consumed bool, pauseErr, err error) {
	ch, err := conn.Channel()
	if err != nil {
		return false, nil, fmt.Errorf("open consumer channel: %w", err)
	}
	defer c.closeChannel(ch)
	// Buffered, because amqp091 holds the connection's reader goroutine
	// until a listener takes the notice or a timeout passes.
	closes := ch.NotifyClose(make(chan *amqp.Error, 1))
	cancels := ch.NotifyCancel(make(chan string, 1))
	if err := ch.Qos(c.cfg.Prefetch, 0, false); err != nil {
		return false, nil, fmt.Errorf("set prefetch to %d: %w", c.cfg.Prefetch, err)
	}
	tag := "ctag-" + uuid.NewString()
	deliveries, err := ch.Consume(c.cfg.Queue, tag, c.cfg.autoAck(), false, false, false, nil)
	if err != nil {
		return false, nil, fmt.Errorf("consume %s: %w", c.cfg.Queue, err)
	}
	c.log.Info("consuming", "prefetch", c.cfg.Prefetch, "consumer_tag", tag)

	sctx, cancel := context.WithCancel(ctx)
	s := &session{ctx: sctx, cancel: cancel}
	var workers sync.WaitGroup
	for range c.cfg.Prefetch {
		workers.Go(func() { c.work(ctx, s, deliveries) })
	}
	workersDone := make(chan struct{})
	go func() {
		workers.Wait()
		close(workersDone)
	}()

	select {
	case <-ctx.Done():
	case <-sctx.Done(): // a pause, or ctx ending
	case amqpErr, ok := <-closes:
		err = closeReason(amqpErr, ok)
	case cancelled, ok := <-cancels:
		if ok {
			err = cancelReason(cancelled)
		} else {
			err = lossReason(closes, nil)
		}
	case <-workersDone:
		// The deliveries chan closed, which only the channel closing or a
		// cancel does; the notice of which may be a moment behind.
		err = lossReason(closes, cancels)
	}
	s.halt(nil)
	if ctx.Err() != nil {
		// The broker stops sending; what it already sent and nobody took
		// goes back to the queue when the channel closes.
		if err := ch.Cancel(tag, false); err != nil {
			c.log.Debug("cancel consumer on shutdown", "consumer_tag", tag, "err", err)
		}
	}
	<-workersDone
	return true, s.pauseErr, err
}

func closeReason(amqpErr *amqp.Error, ok bool) error {
	if !ok || amqpErr == nil {
		return fmt.Errorf("consumer channel closed: %w", amqp.ErrClosed)
	}
	return fmt.Errorf("consumer channel closed: %w", amqpErr)
}

func cancelReason(tag string) error {
	return fmt.Errorf("broker cancelled consumer %s (queue deleted or its node down)", tag)
}

// lossReason explains the end of the deliveries chan by the notice that
// came with it, if it has come. The close notice is looked at first: a
// closing channel closes the cancel notices too, without a tag.
func lossReason(closes <-chan *amqp.Error, cancels <-chan string) error {
	select {
	case amqpErr, ok := <-closes:
		return closeReason(amqpErr, ok)
	default:
	}
	select {
	case tag, ok := <-cancels:
		if ok {
			return cancelReason(tag)
		}
	default:
	}
	return errors.New("consumer deliveries ended")
}

// closeChannel closes ch, which requeues every delivery on it not yet acked.
func (c *Consumer) closeChannel(ch *amqp.Channel) {
	if err := ch.Close(); err != nil && !errors.Is(err, amqp.ErrClosed) {
		c.log.Debug("close consumer channel", "err", err)
	}
}

// work hands deliveries to the handler, one at a time, until the session
// stops or the deliveries end.
func (c *Consumer) work(ctx context.Context, s *session, deliveries <-chan amqp.Delivery) {
	for {
		select {
		case <-s.ctx.Done():
			return
		case d, ok := <-deliveries:
			if !ok {
				return
			}
			// Both cases may have been ready. A delivery left unacked
			// goes back to the queue when the channel closes.
			if s.stopping() {
				return
			}
			c.process(ctx, s, d)
		}
	}
}

// process runs the handler on d, retrying as Retry allows, and settles d
// on its own channel.
func (c *Consumer) process(ctx context.Context, s *session, d amqp.Delivery) {
	c.delivered.Add(1)
	c.cfg.settleAutomatically(&d)
	log := c.log.With("message_id", d.MessageId, "delivery_tag", d.DeliveryTag, "redelivered", d.Redelivered)
	// A handler that has begun is let finish, even on shutdown, so that
	// its work is acked rather than redone after a redelivery.
	hctx := context.WithoutCancel(ctx)
	if err := c.checkSender(d); err != nil {
		c.forbidden.Add(1)
		c.park(ctx, s, log, d, ExceptionForbiddenSender, 1, err)
		return
	}
	var wait time.Duration
	for attempt := 1; ; attempt++ {
		err := c.call(hctx, log, d)
		switch {
		case err == nil:
			if c.settled(log, "ack", d.Ack(false)) {
				c.acked.Add(1)
			}
			return
		case IsMalformed(err):
			c.malformed.Add(1)
			c.park(ctx, s, log, d, "malformed", attempt, err)
			return
		case c.cfg.Unavailable(err) || errors.Is(err, errAttemptTimeout):
			// Retrying or parking would spend the message on an outage;
			// the whole consumer waits for the dependency instead.
			if s.halt(err) {
				c.pauses.Add(1)
			}
			log.Debug("dependency unavailable; message requeued", "attempt", attempt, "err", err)
			c.requeue(log, d)
			return
		case s.stopping():
			// The channel is closing or the consumer pausing: a retry
			// would wait on nothing, and the recoverer must not judge a
			// message by attempts cut short.
			log.Warn("handler failed while the consumer stopped; message requeued", "attempt", attempt, "err", err)
			c.requeue(log, d)
			return
		case attempt >= c.cfg.Retry.MaxAttempts:
			c.exhausted(ctx, s, log, d, attempt, err)
			return
		}
		wait = c.retry.Next(wait)
		log.Warn("handler failed; retrying", "attempt", attempt, "max_attempts", c.cfg.Retry.MaxAttempts, "retry_in", wait, "err", err)
		if !sleep(s.ctx, wait) {
			log.Info("consumer stopped during a retry wait; message requeued", "attempt", attempt)
			c.requeue(log, d)
			return
		}
		c.retried.Add(1)
	}
}

// ExceptionForbiddenSender is the x-exception-type of a message parked
// because it came from a broker user not allowed to send it.
const ExceptionForbiddenSender = "forbidden_sender"

// checkSender refuses d unless Sender is unset or published it.
func (c *Consumer) checkSender(d amqp.Delivery) error {
	switch {
	case c.cfg.Sender == "" || d.UserId == c.cfg.Sender:
		return nil
	case d.UserId == "":
		return fmt.Errorf("%s without user_id: only broker user %q may send it", d.Type, c.cfg.Sender)
	default:
		return fmt.Errorf("%s published by broker user %q: only %q may send it", d.Type, d.UserId, c.cfg.Sender)
	}
}

// errAttemptTimeout marks a handler attempt that ran out of AttemptTimeout.
var errAttemptTimeout = errors.New("broker: handler attempt timed out")

// call runs the handler within AttemptTimeout, turning a panic into a
// failed attempt: a message that crashes the process would be redelivered
// to crash the next one, never reaching the error queue.
func (c *Consumer) call(ctx context.Context, log *slog.Logger, d amqp.Delivery) (err error) {
	actx, cancel := context.WithTimeoutCause(ctx, c.cfg.AttemptTimeout, errAttemptTimeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			log.Error("handler panicked", "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("handler panicked: %v", p)
		}
		if err != nil && context.Cause(actx) == errAttemptTimeout {
			err = fmt.Errorf("%w after %v: %w", errAttemptTimeout, c.cfg.AttemptTimeout, err)
		}
	}()
	return c.handler(actx, d)
}

// exhausted applies the Recoverer to d, whose handler failed every attempt.
func (c *Consumer) exhausted(ctx context.Context, s *session, log *slog.Logger, d amqp.Delivery, attempts int, err error) {
	switch c.cfg.Recoverer {
	case RecoverReject:
		if c.settled(log, "reject", d.Reject(false)) {
			c.rejected.Add(1)
			log.Error("handler failed every attempt; message rejected (to the queue's dead-letter exchange, if it has one)", "attempts", attempts, "err", err)
		}
	case RecoverRequeue:
		log.Warn("handler failed every attempt; message requeued", "attempts", attempts, "err", err)
		c.requeue(log, d)
	default:
		c.park(ctx, s, log, d, "retries_exhausted", attempts, err)
	}
}

// park publishes a copy of d to the error exchange and acks d once the
// broker confirms the copy. Otherwise d goes back to its queue, after a
// wait: the broker would hand it straight back, and an error queue that
// cannot take it would turn into a loop as fast as the network.
func (c *Consumer) park(ctx context.Context, s *session, log *slog.Logger, d amqp.Delivery, kind string, attempts int, cause error) {
	msg := parkedCopy(d, c.cfg.ErrorExchange, c.cfg.ErrorRoutingKey, kind, attempts, cause, time.Now())
	log = log.With("error_exchange", c.cfg.ErrorExchange, "error_routing_key", c.cfg.ErrorRoutingKey,
		"exception_type", kind, "attempts", attempts, "cause", cause)
	// Parking is bounded by the publisher's confirm timeout, and must
	// finish on shutdown as the handler did.
	outcomes, err := c.cfg.Publisher.PublishBatch(context.WithoutCancel(ctx), []Message{msg})
	outcome := Unconfirmed
	if len(outcomes) == 1 {
		outcome = outcomes[0]
	}
	switch {
	case err == nil && outcome == Acked:
		c.parked.Add(1)
		log.Warn("message parked in the error exchange")
		c.settled(log, "ack", d.Ack(false))
		return
	case err != nil:
		log.Error("could not park message; requeued", "err", err)
	case outcome == Returned:
		log.Error("could not park message: no queue is bound to the error exchange with this key; requeued")
	default:
		log.Error("could not park message: the broker did not confirm it; requeued", "outcome", outcome)
	}
	sleep(s.ctx, c.cfg.Retry.MaxInterval)
	c.requeue(log, d)
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// requeue gives d back to its queue.
func (c *Consumer) requeue(log *slog.Logger, d amqp.Delivery) {
	err := d.Nack(false, true)
	if lostWhenSent(log, err) {
		return
	}
	if c.settled(log, "nack", err) {
		c.requeued.Add(1)
	}
}

// settled reports whether an ack, nack or reject went out. One fails only
// when its channel is gone, and then the broker redelivers the message
// anyway: nothing to count, nothing to retry.
func (c *Consumer) settled(log *slog.Logger, what string, err error) bool {
	if err != nil {
		log.Debug(what+" failed: channel gone, the broker will redeliver", "err", err)
		return false
	}
	return true
}
