//go:build faultinject

package broker_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/testenv"
)

// newInlinePublisher returns an inline publisher on s, closed when the test ends.
func newInlinePublisher(tb testing.TB, s *broker.Supervisor, confirm bool) *broker.InlinePublisher {
	tb.Helper()
	p := broker.NewInlinePublisher(s, broker.InlinePublisherConfig{
		Confirm:   confirm,
		Publisher: broker.PublisherConfig{ConfirmTimeout: 10 * time.Second, Logger: testLogger(tb)},
	})
	tb.Cleanup(func() {
		if err := p.Close(); err != nil {
			tb.Errorf("close inline publisher: %v", err)
		}
	})
	return p
}

// inlineModes are the two ways pay can publish in the request.
var inlineModes = []struct {
	name    string
	confirm bool
}{
	{"confirmed", true},
	{"unconfirmed", false},
}

func TestInlinePublishDeliversAPersistentMessageToABoundQueue(t *testing.T) {
	for _, mode := range inlineModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			topo := newTopology(t)
			sup := startSupervisor(t, broker.Config{URL: topo.url}, topo.declare, true)
			pub := newInlinePublisher(t, sup, mode.confirm)

			msg := messages(1, topo.exchange, topo.key, testenv.Name(t, "m"), 0)[0]
			msg.Publishing.CorrelationId = "corr-1"
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := pub.Publish(ctx, msg); err != nil {
				t.Fatalf("Publish: %v", err)
			}

			want := msg.Publishing
			d, ok := topo.consume(t, 1)[want.MessageId]
			if !ok {
				t.Fatalf("message %s published but not in the queue", want.MessageId)
			}
			if d.DeliveryMode != amqp.Persistent || d.ContentType != want.ContentType || d.Type != want.Type || d.AppId != want.AppId ||
				d.CorrelationId != want.CorrelationId || !d.Timestamp.Equal(want.Timestamp) || string(d.Body) != string(want.Body) {
				t.Errorf("message arrived as {mode %d, content type %q, type %q, app %q, correlation %q, time %v, body %q}, want {mode %d, %q, %q, %q, %q, %v, %q}",
					d.DeliveryMode, d.ContentType, d.Type, d.AppId, d.CorrelationId, d.Timestamp, d.Body,
					amqp.Persistent, want.ContentType, want.Type, want.AppId, want.CorrelationId, want.Timestamp, want.Body)
			}
		})
	}
}

func TestInlinePublishWithoutConnectionFailsFastInsteadOfBlocking(t *testing.T) {
	for _, mode := range inlineModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			topo := newTopology(t)
			proxy := testenv.NewProxy(t, testenv.HostPort(t, topo.url))
			proxy.SetDown(true)
			sup := startSupervisor(t, broker.Config{URL: proxy.RewriteURL(t, topo.url)}, topo.declare, false)
			pub := newInlinePublisher(t, sup, mode.confirm)

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			err := pub.Publish(ctx, messages(1, topo.exchange, topo.key, testenv.Name(t, "m"), 0)[0])
			elapsed := time.Since(start)
			if !errors.Is(err, broker.ErrNotConnected) {
				t.Errorf("Publish with the broker down: err %v, want ErrNotConnected", err)
			}
			// The confirm timeout is 10 s: failing well inside it means
			// Publish did not wait for a connection or a confirm.
			if elapsed > time.Second {
				t.Errorf("Publish took %v to fail, want it at once", elapsed)
			}
		})
	}
}

func TestConcurrentInlinePublishesEachLandExactlyOnce(t *testing.T) {
	for _, mode := range inlineModes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			topo := newTopology(t)
			sup := startSupervisor(t, broker.Config{URL: topo.url}, topo.declare, true)
			pub := newInlinePublisher(t, sup, mode.confirm)

			// More callers than the pool's 25 confirming channels, so
			// some wait for a channel another has just used.
			const callers = 50
			msgs := messages(callers, topo.exchange, topo.key, testenv.Name(t, "m"), 0)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			errs := make([]error, callers)
			var wg sync.WaitGroup
			for i, m := range msgs {
				wg.Go(func() { errs[i] = pub.Publish(ctx, m) })
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("Publish of message %d: %v", i, err)
				}
			}

			if !mode.confirm {
				// Without confirms Publish returns before the broker has
				// the message: give the last ones time to arrive.
				testenv.WaitFor(t, 10*time.Second, fmt.Sprintf("%d messages in the queue", callers), func() bool {
					return topo.queued(t) >= callers
				})
			}
			// As many messages as callers, and every caller's among them:
			// each landed once.
			if got := topo.queued(t); got != callers {
				t.Errorf("queue holds %d messages once every Publish returned, want %d", got, callers)
			}
			got := topo.consume(t, callers)
			for _, m := range msgs {
				if _, ok := got[m.Publishing.MessageId]; !ok {
					t.Errorf("message %s never arrived", m.Publishing.MessageId)
				}
			}
		})
	}
}
