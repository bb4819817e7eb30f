package broker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/testenv"
)

func TestSupervisorReconnectsAndRedeclaresAfterConnectionCut(t *testing.T) {
	topo := newTopology(t)
	proxy := testenv.NewProxy(t, testenv.HostPort(t, topo.url))
	sup := startSupervisor(t, broker.Config{URL: proxy.RewriteURL(t, topo.url)}, topo.declare, true)
	pub := newPublisher(t, sup, broker.PublisherConfig{})

	outcomes, err := publish(t, pub, messages(10, topo.exchange, topo.key, "before", 0))
	if err != nil {
		t.Fatalf("publish before the cut: %v", err)
	}
	wantOutcomes(t, outcomes, all(broker.Acked))
	first := sup.Current()

	// Down cuts every connection; while it is down the broker loses the
	// topology, so only a re-declare can make the next batch routable.
	proxy.SetDown(true)
	testenv.WaitFor(t, 10*time.Second, "supervisor notices the cut", func() bool { return !sup.Connected() })
	topo.remove(t)
	proxy.SetDown(false)
	testenv.WaitFor(t, 10*time.Second, "supervisor reconnects", func() bool { return sup.Connected() })

	if got := sup.Reconnects(); got != 1 {
		t.Errorf("Reconnects() = %d, want 1", got)
	}
	if got := topo.declares.Load(); got != 2 {
		t.Errorf("declare called %d times, want 2 (once per connection)", got)
	}
	if sup.Current() == first {
		t.Errorf("Current() is still the connection that was cut")
	}
	outcomes, err = publish(t, pub, messages(10, topo.exchange, topo.key, "after", 0))
	if err != nil {
		t.Fatalf("publish after the reconnect: %v", err)
	}
	wantOutcomes(t, outcomes, all(broker.Acked))
	if got := topo.queued(t); got != 10 {
		t.Errorf("queue holds %d messages, want the 10 published after the reconnect", got)
	}
}

func TestSupervisorConnectsOnceBrokerComesUp(t *testing.T) {
	topo := newTopology(t)
	proxy := testenv.NewProxy(t, testenv.HostPort(t, topo.url))
	proxy.SetDown(true)
	sup := startSupervisor(t, broker.Config{URL: proxy.RewriteURL(t, topo.url)}, topo.declare, false)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := sup.Connection(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Connection() while the broker is down: err %v, want deadline exceeded", err)
	}

	proxy.SetDown(false)
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := sup.Connection(ctx); err != nil {
		t.Fatalf("Connection() after the broker came up: %v", err)
	}
	if got := sup.Reconnects(); got != 0 {
		t.Errorf("Reconnects() = %d, want 0: failed attempts are not connections", got)
	}
	if got := topo.declares.Load(); got != 1 {
		t.Errorf("declare called %d times, want 1", got)
	}
}

func TestSupervisorRetriesWhenDeclareFails(t *testing.T) {
	topo := newTopology(t)
	failures := 2
	declare := func(ch *amqp.Channel) error {
		if failures > 0 {
			failures--
			return errors.New("declare refused on purpose")
		}
		return topo.declare(ch)
	}
	sup := startSupervisor(t, broker.Config{URL: topo.url}, declare, true)
	if got := sup.Reconnects(); got != 0 {
		t.Errorf("Reconnects() = %d, want 0: a connection whose declare failed does not count", got)
	}
	if got := topo.declares.Load(); got != 1 {
		t.Errorf("successful declares = %d, want 1", got)
	}
}
