package broker_test

import (
	"context"
	"errors"
	"slices"
	"strings"
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

func TestSupervisorTriesTheNextNodeOnEveryReconnect(t *testing.T) {
	topo := newTopology(t)
	nodes := []*testenv.Proxy{
		testenv.NewProxy(t, testenv.HostPort(t, topo.url)),
		testenv.NewProxy(t, testenv.HostPort(t, topo.url)),
		testenv.NewProxy(t, testenv.HostPort(t, topo.url)),
	}
	var urls []string
	for _, n := range nodes {
		urls = append(urls, n.RewriteURL(t, topo.url))
	}
	sup := startSupervisor(t, broker.Config{URL: strings.Join(urls, ",")}, topo.declare, true)

	// Each node in turn is lost; the next connection is to the node after
	// it, and the round comes back to the first.
	for i, want := range []int{0, 1, 2, 0} {
		if i > 0 {
			lost := nodes[(want+2)%3]
			lost.SetDown(true)
			testenv.WaitFor(t, 10*time.Second, "a connection to the next node", func() bool {
				conn := sup.Current()
				return conn != nil && conn.RemoteAddr().String() != lost.Addr()
			})
			lost.SetDown(false)
		}
		if got := sup.Current().RemoteAddr().String(); got != nodes[want].Addr() {
			t.Fatalf("connection %d is to %s, want node %d at %s", i+1, got, want+1, nodes[want].Addr())
		}
	}
	if got := topo.declares.Load(); got != 4 {
		t.Errorf("declare called %d times, want once per connection (4)", got)
	}
}

func TestSupervisorConnectsToALiveNodeWhenTheFirstIsDown(t *testing.T) {
	topo := newTopology(t)
	dead := testenv.NewProxy(t, testenv.HostPort(t, topo.url))
	dead.SetDown(true)
	live := testenv.NewProxy(t, testenv.HostPort(t, topo.url))
	// A backoff long enough that only trying the next node at once, in the
	// same attempt, connects within the wait.
	cfg := broker.Config{
		URL:     dead.RewriteURL(t, topo.url) + ", " + live.RewriteURL(t, topo.url),
		Backoff: broker.Backoff{Initial: time.Minute, Max: time.Minute},
	}
	sup := startSupervisor(t, cfg, topo.declare, true)
	if got := sup.Current().RemoteAddr().String(); got != live.Addr() {
		t.Errorf("connected to %s, want the live node %s", got, live.Addr())
	}
}

func TestNodesSplitsAnAddressListButNotAPasswordWithAComma(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"amqp://guest:guest@127.0.0.1:5672/", []string{"amqp://guest:guest@127.0.0.1:5672/"}},
		{"amqp://u:p@n1:5701/, amqp://u:p@n2:5702/,amqps://u:p@n3:5703/",
			[]string{"amqp://u:p@n1:5701/", "amqp://u:p@n2:5702/", "amqps://u:p@n3:5703/"}},
		{"amqp://u:pa,ss@n1/,amqp://u:pa,ss@n2/", []string{"amqp://u:pa,ss@n1/", "amqp://u:pa,ss@n2/"}},
	}
	for _, tt := range tests {
		if got := broker.Nodes(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("Nodes(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestRedactHidesEveryNodesPassword(t *testing.T) {
	got := broker.Redact("amqp://u:secret1@n1:5701/,amqp://u:se,cret2@n2:5702/")
	if strings.Contains(got, "secret1") || strings.Contains(got, "cret2") || !strings.Contains(got, "n1:5701") || !strings.Contains(got, "n2:5702") {
		t.Errorf("Redact = %q, want both nodes without their passwords", got)
	}
}
