//go:build faultinject

package broker

import (
	"context"
	"fmt"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"
)

// InlinePublisher publishes one message from the caller's own goroutine, as
// the course's seed code does with RabbitTemplate.convertAndSend inside the
// request, after the commit. It exists to be measured and broken against the
// outbox (make bench, make chaos UNSAFE=1), not to be used: whatever happens
// between the caller's commit and this call — a crash, a broker outage, a
// cut connection — loses the message, and nothing ever publishes it again.
type InlinePublisher struct {
	sup     *Supervisor
	confirm bool
	// confirmed is a pool of confirming publishers, as Spring caches
	// channels: each caller waits for its own confirm on a channel of its
	// own, not behind everyone else's.
	confirmed chan *Publisher

	mu     sync.Mutex
	plain  *amqp.Channel // without confirms: one channel, shared
	closed bool
}

// InlinePublisherConfig tunes an InlinePublisher.
type InlinePublisherConfig struct {
	// Confirm makes each Publish wait for the broker's confirm of its
	// message; without it Publish returns once the frame is written, and a
	// message the broker never got is never noticed.
	Confirm   bool
	Channels  int // confirming channels in the pool [25, Spring's channel cache size]
	Publisher PublisherConfig
}

// NewInlinePublisher returns an inline publisher using s's connections.
func NewInlinePublisher(s *Supervisor, cfg InlinePublisherConfig) *InlinePublisher {
	if cfg.Channels <= 0 {
		cfg.Channels = 25
	}
	p := &InlinePublisher{sup: s, confirm: cfg.Confirm}
	if cfg.Confirm {
		p.confirmed = make(chan *Publisher, cfg.Channels)
		for range cfg.Channels {
			p.confirmed <- NewPublisher(s, cfg.Publisher)
		}
	}
	return p
}

// Publish publishes msg. With Confirm it is mandatory and waits for its
// confirm, and a message no queue takes is an error; without, it is fire
// and forget. An error means the message may not have reached the broker.
func (p *InlinePublisher) Publish(ctx context.Context, msg Message) error {
	if p.confirm {
		var pub *Publisher
		select {
		case pub = <-p.confirmed:
		case <-ctx.Done():
			return fmt.Errorf("publish %s: %w", msg.Publishing.MessageId, ctx.Err())
		}
		defer func() { p.confirmed <- pub }()
		outcomes, err := pub.PublishBatch(ctx, []Message{msg})
		if err != nil {
			return err
		}
		if outcomes[0] != Acked {
			return fmt.Errorf("publish %s: %s", msg.Publishing.MessageId, outcomes[0])
		}
		return nil
	}
	ch, err := p.channel()
	if err != nil {
		return err
	}
	// The seed style loses messages, but not their sender: consumers
	// apply only what names its publisher, as the confirmed path does.
	msg.Publishing.UserId = p.sup.User()
	if err := ch.PublishWithContext(ctx, msg.Exchange, msg.RoutingKey, false, false, msg.Publishing); err != nil {
		return fmt.Errorf("publish %s: %w", msg.Publishing.MessageId, err)
	}
	return nil
}

func (p *InlinePublisher) channel() (*amqp.Channel, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errPublisherClosed
	}
	if p.plain != nil && !p.plain.IsClosed() {
		return p.plain, nil
	}
	conn := p.sup.Current()
	if conn == nil {
		return nil, ErrNotConnected
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open publisher channel: %w", err)
	}
	p.plain = ch
	return ch, nil
}

// Close closes the publisher's channels; later calls to Publish fail.
func (p *InlinePublisher) Close() error {
	if p.confirm {
		// Each goes back closed, so a late Publish fails rather than waits.
		for range cap(p.confirmed) {
			pub := <-p.confirmed
			_ = pub.Close()
			p.confirmed <- pub
		}
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.plain != nil {
		return p.plain.Close()
	}
	return nil
}
