package broker_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/config"
	"github.com/paytrade/paytrade/internal/testenv"
)

// A consumer trusts user_id because the broker does: every message the
// Publisher sends names the connection's user, the broker refuses a
// user_id that is not the connection's, and a consumer with a Sender hands
// its handler only what that user sent, parking the rest with the reason.
func TestOnlyTheAllowedBrokerUsersMessagesReachTheHandler(t *testing.T) {
	t.Parallel()
	testenv.NeedBrokerUsers(t)
	topo := newConsumerTopology(t, true)
	everything := broker.Exactly(topo.exchange, topo.queue, topo.errorExchange, topo.errorQueue)
	perms := broker.Permissions{Configure: everything, Write: everything, Read: everything}
	users := testenv.NewBrokerUsers(t, topo.url, nil, map[string]broker.Permissions{"sender": perms, "other": perms})
	sender, other := users["sender"], users["other"]

	env := newConsumerEnv(t, topo, topo.url) // declares the topology
	t.Run("the broker refuses a user_id that is not the connection's", func(t *testing.T) {
		conn, err := amqp.Dial(other.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		closed := ch.NotifyClose(make(chan *amqp.Error, 1))
		if err := ch.Publish(topo.exchange, topo.key, false, false, amqp.Publishing{MessageId: "forged", UserId: sender.Name, Body: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
		select {
		case e := <-closed:
			if e == nil || e.Code != amqp.PreconditionFailed {
				t.Fatalf("channel closed with %v, want 406 PRECONDITION_FAILED", e)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the broker took a message whose user_id names another user")
		}
	})

	cfg := env.config(t)
	cfg.Sender = sender.Name
	var mu sync.Mutex
	var handled []string
	c := startConsumer(t, env.sup, cfg, func(ctx context.Context, d amqp.Delivery) error {
		mu.Lock()
		defer mu.Unlock()
		handled = append(handled, d.MessageId+" from "+d.UserId)
		return nil
	})
	publishAs := func(t *testing.T, amqpURL string, msg broker.Message) {
		t.Helper()
		p := newPublisher(t, startSupervisor(t, broker.Config{URL: amqpURL}, topo.declare, true), broker.PublisherConfig{})
		outcomes, err := publish(t, p, []broker.Message{msg})
		if err != nil {
			t.Fatal(err)
		}
		wantOutcomes(t, outcomes, all(broker.Acked))
	}

	// Whatever user_id a caller sets, the publisher sends its own.
	fromSender := messages(1, topo.exchange, topo.key, testenv.Name(t, "sender"), 0)[0]
	fromSender.Publishing.UserId = other.Name
	publishAs(t, sender.URL, fromSender)
	testenv.WaitFor(t, 10*time.Second, "the sender's message handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) == 1
	})

	fromOther := messages(1, topo.exchange, topo.key, testenv.Name(t, "other"), 0)[0]
	sent := time.Now()
	publishAs(t, other.URL, fromOther)
	parked := takeOne(t, topo.url, topo.errorQueue)
	wantParkedCopy(t, parked, fromOther, broker.ExceptionForbiddenSender, 1, `published by broker user "`+other.Name+`"`, sent)
	if got := parked.Headers["x-original-user-id"]; got != other.Name {
		t.Errorf("x-original-user-id = %v, want %q", got, other.Name)
	}

	anonymous := messages(1, topo.exchange, topo.key, testenv.Name(t, "anonymous"), 0)[0]
	withChannel(t, topo.url, func(ch *amqp.Channel) {
		if err := ch.Publish(topo.exchange, topo.key, false, false, anonymous.Publishing); err != nil {
			t.Fatal(err)
		}
	})
	parked = takeOne(t, topo.url, topo.errorQueue)
	wantParkedCopy(t, parked, anonymous, broker.ExceptionForbiddenSender, 1, "without user_id", sent)

	c.stop(t)
	mu.Lock()
	defer mu.Unlock()
	if want := []string{fromSender.Publishing.MessageId + " from " + sender.Name}; strings.Join(handled, ",") != strings.Join(want, ",") {
		t.Errorf("handled %q, want only %q", handled, want)
	}
	st := c.Stats()
	if st.Forbidden != 2 || st.Parked != 2 || st.Acked != 1 {
		t.Errorf("stats %+v, want 2 forbidden and parked, 1 acked", st)
	}
}

// Outside development mode a consumer must be told whose events to take,
// and it may not be its own user: that would take them from anyone who
// holds the service's password, the service itself included.
func TestReadSenderRefusesNoneOrTheServicesOwnUserOutsideDevelopment(t *testing.T) {
	own := broker.Config{URL: "amqp://trade:secret@127.0.0.1:5672/"}
	for _, tc := range []struct {
		name, value string
		dev         bool
		want        string // "" for a refusal
	}{
		{"set, another user", "pay", false, "pay"},
		{"unset", "", false, ""},
		{"the service's own user", "trade", false, ""},
		{"unset in development: the service's own user, shared", "", true, "trade"},
		{"set in development", "pay", true, "pay"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := config.NewReader(func(k string) string {
				if k == "TRADE_MQ_PAY_USER" {
					return tc.value
				}
				return ""
			})
			got := broker.ReadSender(r, "TRADE_MQ_PAY_USER", own, tc.dev)
			err := r.Err()
			switch {
			case tc.want == "" && err == nil:
				t.Errorf("accepted %q, want a refusal", got)
			case tc.want == "" && !strings.Contains(err.Error(), "TRADE_MQ_PAY_USER"):
				t.Errorf("refusal %q does not name TRADE_MQ_PAY_USER", err)
			case tc.want != "" && (err != nil || got != tc.want):
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestEveryNodeOfAnAddressListIsReachedAsOneUser(t *testing.T) {
	r := config.NewReader(func(k string) string {
		if k == "AMQP_URL" {
			return "amqp://pay:a@n1:5672/,amqp://trade:b@n2:5672/"
		}
		return ""
	})
	broker.ReadConfig(r, "pay")
	if err := r.Err(); err == nil || !strings.Contains(err.Error(), "node 2 of 2") || strings.Contains(err.Error(), ":b@") {
		t.Errorf("err = %v, want a refusal naming node 2 and no password", err)
	}
}
