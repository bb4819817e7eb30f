package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Message is one message to publish. Publishing.MessageId must be set and
// unique within a batch: returns are matched to messages by it.
type Message struct {
	Exchange   string
	RoutingKey string
	Publishing amqp.Publishing
}

// Outcome is what became of one published message.
type Outcome int

// The outcomes of a message. Only Acked means the broker took responsibility
// for it; every other outcome calls for publishing it again later.
const (
	Unconfirmed Outcome = iota // no confirm in time, or the channel failed (which makes a nack look the same)
	Acked                      // the broker routed it and confirmed it
	Nacked                     // the broker refused it
	Returned                   // no queue was bound for it (basic.return), even if then acked
)

// String returns the outcome's name, for logs and test failures.
func (o Outcome) String() string {
	switch o {
	case Unconfirmed:
		return "unconfirmed"
	case Acked:
		return "acked"
	case Nacked:
		return "nacked"
	case Returned:
		return "returned"
	default:
		return fmt.Sprintf("Outcome(%d)", int(o))
	}
}

// PublisherConfig tunes a Publisher. Zero fields take the defaults in brackets.
type PublisherConfig struct {
	ConfirmTimeout time.Duration // bounds a whole batch, from opening a channel to the last confirm [5s]
	// Impersonate keeps a message's own user_id, when it has one, instead
	// of the connection's: for sending a parked event again as the user
	// that first published it. The broker takes it only from a user tagged
	// impersonator, and closes the channel (406) for anyone else.
	Impersonate bool
	Logger      *slog.Logger // [discard]
}

// Publisher publishes batches of mandatory messages with publisher confirms
// on the supervisor's current connection.
type Publisher struct {
	sup *Supervisor
	cfg PublisherConfig
	log *slog.Logger

	// mu serialises batches: returns carry no delivery tag, so they can
	// only be matched to a message by MessageId within one batch at a time.
	mu     sync.Mutex
	ch     *confirmChannel
	closed bool
}

// confirmChannel is a channel in confirm mode with its listeners.
type confirmChannel struct {
	conn    *amqp.Connection
	ch      *amqp.Channel
	returns chan amqp.Return
	closes  chan *amqp.Error
}

// minReturnsBuffer keeps small batches of varying size from forcing a new
// channel each time the batch grows by one.
const minReturnsBuffer = 128

var errPublisherClosed = errors.New("broker: publisher closed")

// NewPublisher returns a publisher using s's connections.
func NewPublisher(s *Supervisor, cfg PublisherConfig) *Publisher {
	if cfg.ConfirmTimeout <= 0 {
		cfg.ConfirmTimeout = 5 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Publisher{sup: s, cfg: cfg, log: log.With("component", "broker-publisher")}
}

// PublishBatch publishes msgs, mandatory, on a confirm-mode channel, waits
// for their confirms and returns one Outcome per message, in order. Each
// message's user_id is set to the connection's user (msgs is changed),
// unless the publisher impersonates.
//
// Without a live connection it returns ErrNotConnected at once and nil
// outcomes; nil outcomes always mean nothing was published. If publishing
// fails, the channel closes or ctx ends mid-batch, the messages not
// confirmed are Unconfirmed and the error is returned. ConfirmTimeout
// bounds the batch from start to last confirm (only a TCP write the broker
// does not read can hold it longer); running out of it is not an error:
// the messages still waiting are Unconfirmed.
func (p *Publisher) PublishBatch(ctx context.Context, msgs []Message) ([]Outcome, error) {
	if len(msgs) == 0 {
		return []Outcome{}, nil
	}
	byID, err := indexByMessageID(msgs)
	if err != nil {
		return nil, err
	}
	// RabbitMQ refuses a user_id that is not the connection's user, so
	// the consumer can trust it to name who published: every message
	// says it, a parked or replayed copy included.
	user := p.sup.User()
	for i := range msgs {
		if !p.cfg.Impersonate || msgs[i].Publishing.UserId == "" {
			msgs[i].Publishing.UserId = user
		}
	}

	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("publish batch: %w", err)
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errPublisherClosed
	}
	// Publishing on a blocked connection would stall in TCP writes and
	// wait out the confirm timeout for nothing.
	blocked, _ := p.sup.Flow()
	select {
	case <-blocked:
		return nil, ErrBlocked
	default:
	}
	timeout := time.NewTimer(p.cfg.ConfirmTimeout)
	defer timeout.Stop()
	cc, err := p.channel(ctx, len(msgs), timeout.C)
	if err != nil {
		return nil, err
	}

	b := &batch{
		msgs:     msgs,
		byID:     byID,
		cc:       cc,
		blocked:  blocked,
		log:      p.log,
		outcomes: make([]Outcome, len(msgs)),
		returned: make([]bool, len(msgs)),
	}
	err = b.publish(ctx)
	if err == nil {
		err = b.await(ctx, timeout.C)
	} else if cc.ch.IsClosed() {
		// The broker closed the channel under the publishing; its reason
		// is on its way to closes and says whose fault it was.
		err = b.closedError(timeout.C)
	}
	b.settle()
	if refusal, ok := Refusal(err); ok {
		// A channel exception about what was published: 404 when the
		// exchange is gone, 403, 406. The topology is declared again, so
		// an exchange the broker lost exists for the next batch.
		p.log.Warn("broker closed the publisher channel over a message it refused; topology declared again",
			"code", refusal.Code, "reason", refusal.Reason)
		if derr := p.redeclare(timeout.C); derr != nil {
			p.log.Warn("declare topology after a channel error", "err", derr)
		}
	}

	timedOut := errors.Is(err, errConfirmTimeout)
	if err != nil {
		// Whatever the channel still owes this batch — confirms, returns —
		// must not reach the next one, so it is not reused.
		p.discard()
	}
	if timedOut {
		p.log.Warn("publisher confirms timed out; channel discarded",
			"timeout", p.cfg.ConfirmTimeout, "unconfirmed", b.count(Unconfirmed), "batch", len(msgs))
		err = nil
	}
	return b.outcomes, err
}

// WaitUnblocked returns at once unless the broker blocks publishing on the
// connection; then it waits until the broker unblocks it or ctx ends.
func (p *Publisher) WaitUnblocked(ctx context.Context) error {
	_, unblocked := p.sup.Flow()
	select {
	case <-unblocked:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// redeclare declares the supervisor's topology again, giving up at timeout
// on a broker that does not answer.
func (p *Publisher) redeclare(timeout <-chan time.Time) error {
	done := make(chan error, 1)
	go func() { done <- p.sup.Redeclare() }()
	select {
	case err := <-done:
		return err
	case <-timeout:
		return errors.New("no answer from the broker within the confirm timeout")
	}
}

// channel returns the confirm channel to publish n messages on, opening
// one on the current connection if there is none fit for use. Opening is
// a round trip to the broker, so it gives up when ctx ends or timeout fires.
func (p *Publisher) channel(ctx context.Context, n int, timeout <-chan time.Time) (*confirmChannel, error) {
	conn := p.sup.Current()
	if conn == nil {
		p.discard()
		return nil, ErrNotConnected
	}
	if cc := p.ch; cc != nil {
		if cc.conn == conn && !cc.ch.IsClosed() && cap(cc.returns) >= n {
			return cc, nil
		}
		p.discard()
	}

	type opened struct {
		cc  *confirmChannel
		err error
	}
	res := make(chan opened, 1)
	go func() {
		cc, err := openConfirmChannel(conn, max(n, minReturnsBuffer))
		res <- opened{cc, err}
	}()
	var err error
	select {
	case r := <-res:
		if r.err != nil {
			if conn.IsClosed() {
				return nil, ErrNotConnected
			}
			return nil, r.err
		}
		p.ch = r.cc
		return r.cc, nil
	case <-timeout:
		err = errors.New("open publisher channel: no answer from the broker within the confirm timeout")
	case <-ctx.Done():
		err = fmt.Errorf("open publisher channel: %w", ctx.Err())
	}
	// The broker may still answer, on a network that stalled rather than
	// failed; the channel it then opens is not wanted.
	go func() {
		if r := <-res; r.cc != nil {
			_ = r.cc.ch.Close()
		}
	}()
	return nil, err
}

// openConfirmChannel opens a channel on conn in confirm mode, with room
// for returns buffered returns.
func openConfirmChannel(conn *amqp.Connection, returns int) (*confirmChannel, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open publisher channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("put publisher channel in confirm mode: %w", err)
	}
	return &confirmChannel{
		conn: conn,
		ch:   ch,
		// amqp091 delivers a return on the connection's reader goroutine
		// before the ack of the same message, and gives up after 5s if
		// this chan is full: with room for a whole batch no return is
		// lost and no ack is held up while the batch is being published.
		returns: ch.NotifyReturn(make(chan amqp.Return, returns)),
		closes:  ch.NotifyClose(make(chan *amqp.Error, 1)),
	}, nil
}

// discard forgets the current channel and closes it in the background:
// closing waits for the broker's close-ok, which a stalled connection
// never sends, and nothing the channel still delivers is read again.
func (p *Publisher) discard() {
	cc := p.ch
	if cc == nil {
		return
	}
	p.ch = nil
	go func() { _ = cc.ch.Close() }()
}

// Close closes the publisher's channel, waiting at most ConfirmTimeout for
// the broker to agree; later batches fail.
func (p *Publisher) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	cc := p.ch
	p.ch = nil
	if cc == nil {
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- cc.ch.Close() }()
	t := time.NewTimer(p.cfg.ConfirmTimeout)
	defer t.Stop()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, amqp.ErrClosed) {
			return fmt.Errorf("close publisher channel: %w", err)
		}
		return nil
	case <-t.C:
		return errors.New("close publisher channel: no answer from the broker within the confirm timeout")
	}
}

func indexByMessageID(msgs []Message) (map[string]int, error) {
	byID := make(map[string]int, len(msgs))
	for i, m := range msgs {
		id := m.Publishing.MessageId
		if id == "" {
			return nil, fmt.Errorf("broker: message %d of the batch has no MessageId", i)
		}
		if j, dup := byID[id]; dup {
			return nil, fmt.Errorf("broker: messages %d and %d of the batch share MessageId %q", j, i, id)
		}
		byID[id] = i
	}
	return byID, nil
}

// errConfirmTimeout ends the wait for confirms; PublishBatch does not
// return it.
var errConfirmTimeout = errors.New("broker: confirm timeout")

// batch is one PublishBatch in progress.
type batch struct {
	msgs     []Message
	byID     map[string]int
	cc       *confirmChannel
	blocked  <-chan struct{} // closed if the broker blocks the connection
	log      *slog.Logger
	confirms []*amqp.DeferredConfirmation // one per message published so far
	settled  int                          // confirms[:settled] have their outcome
	outcomes []Outcome
	returned []bool
}

// publish sends every message, pipelined: confirms are awaited afterwards.
func (b *batch) publish(ctx context.Context) error {
	b.confirms = make([]*amqp.DeferredConfirmation, 0, len(b.msgs))
	for _, m := range b.msgs {
		dc, err := b.cc.ch.PublishWithDeferredConfirmWithContext(ctx, m.Exchange, m.RoutingKey, true, false, m.Publishing)
		if err != nil {
			return fmt.Errorf("publish message %s to %s with key %s: %w", m.Publishing.MessageId, m.Exchange, m.RoutingKey, err)
		}
		b.confirms = append(b.confirms, dc)
	}
	return nil
}

// await waits for every confirm in publishing order, draining returns as
// they come, until all are in, the channel closes, the timeout fires or
// ctx ends. Returns are drained here rather than by a separate goroutine so
// that a return is always recorded in this goroutine before, or together
// with, the ack that follows it.
func (b *batch) await(ctx context.Context, timeout <-chan time.Time) error {
	returns, closes := b.cc.returns, b.cc.closes
	for b.settled < len(b.confirms) {
		select {
		case <-b.confirms[b.settled].Done():
			o := b.confirmed(b.settled)
			b.outcomes[b.settled] = o
			b.settled++
			if o == Unconfirmed {
				return b.closedError(timeout)
			}
		case r, ok := <-returns:
			if !ok {
				returns = nil // the channel is closing; closes says so next
				continue
			}
			b.markReturned(r)
		case amqpErr, ok := <-closes:
			if !ok || amqpErr == nil {
				return fmt.Errorf("publisher channel closed mid-batch: %w", amqp.ErrClosed)
			}
			return fmt.Errorf("publisher channel closed mid-batch: %w", amqpErr)
		case <-b.blocked:
			// Confirms stop until the alarm clears; the batch ends now
			// instead of holding its caller through the timeout.
			return ErrBlocked
		case <-timeout:
			return errConfirmTimeout
		case <-ctx.Done():
			return fmt.Errorf("wait for publisher confirms: %w", ctx.Err())
		}
	}
	return nil
}

// confirmed returns the outcome of message i, whose confirm is in.
func (b *batch) confirmed(i int) Outcome {
	switch {
	case b.confirms[i].Acked():
		return Acked
	case b.cc.ch.IsClosed():
		// amqp091 resolves every pending confirm as not acked when the
		// channel closes, so here a nack cannot be told from a loss.
		return Unconfirmed
	default:
		return Nacked
	}
}

// closedError explains a channel that closed mid-batch. amqp091 marks the
// channel closed, then sends the reason to NotifyClose (nothing, or a
// closed chan, when it closes without one), then resolves the confirms: so
// the reason comes at once, and is waited for only until timeout.
func (b *batch) closedError(timeout <-chan time.Time) error {
	select {
	case amqpErr, ok := <-b.cc.closes:
		if ok && amqpErr != nil {
			return fmt.Errorf("publisher channel closed mid-batch: %w", amqpErr)
		}
	case <-timeout:
	}
	return fmt.Errorf("publisher channel closed mid-batch: %w", amqp.ErrClosed)
}

// Refusal reports whether err is the broker closing a channel over what was
// sent on it — a channel exception such as 404 (no such exchange), 403
// (access refused) or 406 (precondition failed) — and returns the broker's
// error. Such a message fails again however often it is retried as is;
// a lost connection, by contrast, is no message's fault.
func Refusal(err error) (*amqp.Error, bool) {
	var amqpErr *amqp.Error
	if errors.As(err, &amqpErr) && amqpErr.Server && amqpErr.Recover {
		return amqpErr, true
	}
	return nil, false
}

// settle records, without waiting, the confirms that are in beyond those
// await saw — acks can come with multiple=true or out of order — then
// drains the returns: every return for a confirmed message was queued
// before its confirm, so after this none of them is missing.
func (b *batch) settle() {
	for i := b.settled; i < len(b.confirms); i++ {
		select {
		case <-b.confirms[i].Done():
			b.outcomes[i] = b.confirmed(i)
		default:
		}
	}
	b.settled = len(b.confirms)
	for {
		select {
		case r, ok := <-b.cc.returns:
			if !ok {
				b.applyReturns()
				return
			}
			b.markReturned(r)
		default:
			b.applyReturns()
			return
		}
	}
}

func (b *batch) markReturned(r amqp.Return) {
	i, ok := b.byID[r.MessageId]
	if !ok {
		b.log.Warn("basic.return for a message not in this batch",
			"exchange", r.Exchange, "routing_key", r.RoutingKey,
			"reply_code", r.ReplyCode, "reply_text", r.ReplyText, "message_id", r.MessageId)
		return
	}
	b.returned[i] = true
	b.log.Warn("message returned by the broker: unroutable",
		"exchange", r.Exchange, "routing_key", r.RoutingKey,
		"reply_code", r.ReplyCode, "reply_text", r.ReplyText, "message_id", r.MessageId)
}

// applyReturns makes Returned win over Acked: the broker acks an
// unroutable mandatory message after returning it, yet no queue holds it.
func (b *batch) applyReturns() {
	for i, returned := range b.returned {
		if returned {
			b.outcomes[i] = Returned
		}
	}
}

func (b *batch) count(o Outcome) int {
	n := 0
	for _, got := range b.outcomes {
		if got == o {
			n++
		}
	}
	return n
}
