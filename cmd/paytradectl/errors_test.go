// The tests of the errors subcommands are split as the command is: what
// both subcommands share here, with the broker fixture every test uses;
// list in errors_list_test.go, opening and giving back the queue in
// errors_queue_test.go, replay in errors_replay_test.go.

package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/testenv"
)

// brokerFixture is this test's piece of the broker: an error queue, and
// the exchange the parked messages failed from with a queue bound to it
// for pay.success, as trade's topology has.
type brokerFixture struct {
	amqpURL    string
	conn       *amqp.Connection
	pub        *amqp.Channel // in confirm mode, for parking
	errorQueue string
	exchange   string
	target     string // bound to exchange for pay.success
	env        func(string) string
}

func newBrokerFixture(tb testing.TB, queueType string) *brokerFixture {
	tb.Helper()
	f := &brokerFixture{
		amqpURL:    testenv.AMQPURL(tb),
		errorQueue: testenv.Name(tb, "error.queue"),
		exchange:   testenv.Name(tb, "pay.topic"),
		target:     testenv.Name(tb, "mark.order.pay.queue"),
	}
	f.env = env(map[string]string{"AMQP_URL": f.amqpURL, "MQ_ERROR_QUEUE": f.errorQueue})
	testenv.DeleteOnCleanup(tb, f.amqpURL, []string{f.exchange}, []string{f.errorQueue, f.target})
	conn, err := amqp.Dial(f.amqpURL)
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	f.conn = conn
	ch := f.channel(tb)
	if err := ch.Confirm(false); err != nil {
		tb.Fatalf("confirm mode: %v", err)
	}
	f.pub = ch
	// As trade declares it: the error queue is where dead letters end.
	if err := broker.DeclareQueue(ch, f.errorQueue, queueType, nil); err != nil {
		tb.Fatal(err)
	}
	if err := ch.ExchangeDeclare(f.exchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
		tb.Fatalf("declare %s: %v", f.exchange, err)
	}
	if _, err := ch.QueueDeclare(f.target, true, false, false, false, nil); err != nil {
		tb.Fatalf("declare %s: %v", f.target, err)
	}
	if err := ch.QueueBind(f.target, "pay.success", f.exchange, false, nil); err != nil {
		tb.Fatalf("bind %s: %v", f.target, err)
	}
	return f
}

func (f *brokerFixture) channel(tb testing.TB) *amqp.Channel {
	tb.Helper()
	ch, err := f.conn.Channel()
	if err != nil {
		tb.Fatalf("channel: %v", err)
	}
	return ch
}

var parkedAt = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

// parkedMessage is message id as internal/broker's consumer parks it
// after failing it three times: properties kept, failure in the headers.
func (f *brokerFixture) parkedMessage(id string) amqp.Publishing {
	return amqp.Publishing{
		Headers: amqp.Table{
			"x-exception-message":    "mark order paid: database on fire",
			"x-exception-type":       "retries_exhausted",
			"x-original-exchange":    f.exchange,
			"x-original-routing-key": "pay.success",
			"x-attempts":             int32(3),
			"x-failed-at":            parkedAt.Format(time.RFC3339),
			"x-tenant":               "kept as it was",
		},
		ContentType:   "application/json",
		DeliveryMode:  amqp.Persistent,
		CorrelationId: "corr-" + id,
		MessageId:     id,
		Timestamp:     parkedAt.Add(-time.Minute),
		Type:          "pay.success",
		AppId:         "pay",
		Body:          []byte(`{"bizOrderNo":123,"payOrderId":45,"userId":1,"amount":10000,"paidAt":"2026-11-21T10:00:00Z","id":"` + id + `"}`),
	}
}

// park puts msgs in the error queue, confirmed, in order.
func (f *brokerFixture) park(tb testing.TB, msgs ...amqp.Publishing) {
	tb.Helper()
	for _, m := range msgs {
		dc, err := f.pub.PublishWithDeferredConfirm("", f.errorQueue, true, false, m)
		if err != nil {
			tb.Fatalf("park %s: %v", m.MessageId, err)
		}
		if !dc.Wait() {
			tb.Fatalf("park %s: nacked", m.MessageId)
		}
	}
}

// peek returns what queue holds, in order, and leaves it there.
func (f *brokerFixture) peek(tb testing.TB, queue string) []amqp.Delivery {
	tb.Helper()
	ch := f.channel(tb)
	var got []amqp.Delivery
	for {
		d, ok, err := ch.Get(queue, false)
		if err != nil {
			tb.Fatalf("get from %s: %v", queue, err)
		}
		if !ok {
			break
		}
		got = append(got, d)
	}
	// Closing the channel gives them back in place (see runErrorsList);
	// a quorum queue applies that a moment after the close, so wait for
	// them, as release does, before the next step looks at the queue.
	if err := ch.Close(); err != nil {
		tb.Fatalf("give back the messages of %s: %v", queue, err)
	}
	check := f.channel(tb)
	defer check.Close()
	testenv.WaitFor(tb, 5*time.Second, "the messages back in "+queue, func() bool {
		info, err := check.QueueDeclarePassive(queue, true, false, false, false, nil)
		return err == nil && info.Messages >= len(got)
	})
	return got
}

// hasRow reports whether a line of out starts with prefix once its runs
// of spaces are squeezed, as a table row would.
func hasRow(out, prefix string) bool {
	for line := range strings.Lines(out) {
		if strings.HasPrefix(strings.Join(strings.Fields(line), " "), prefix) {
			return true
		}
	}
	return false
}

func ids(ds []amqp.Delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.MessageId)
	}
	return out
}

// wantQueue fails the test unless queue holds exactly the messages with
// these ids, in this order, with their bodies and headers unchanged.
func (f *brokerFixture) wantQueue(tb testing.TB, queue string, want ...amqp.Publishing) {
	tb.Helper()
	got := f.peek(tb, queue)
	var wantIDs []string
	for _, m := range want {
		wantIDs = append(wantIDs, m.MessageId)
	}
	if !slices.Equal(ids(got), wantIDs) {
		tb.Fatalf("queue %s holds %v, want %v", queue, ids(got), wantIDs)
	}
	for i, d := range got {
		if string(d.Body) != string(want[i].Body) {
			tb.Errorf("message %s body = %s, want %s", d.MessageId, d.Body, want[i].Body)
		}
		for k, v := range want[i].Headers {
			if d.Headers[k] != v {
				tb.Errorf("message %s header %s = %v, want %v", d.MessageId, k, d.Headers[k], v)
			}
		}
	}
}

func TestErrorsCommandsUseTheNextNodeWhenOneIsDown(t *testing.T) {
	t.Parallel()
	f := newBrokerFixture(t, "quorum")
	m1, m2 := f.parkedMessage("m1"), f.parkedMessage("m2")
	f.park(t, m1, m2)
	dead := testenv.NewProxy(t, testenv.HostPort(t, f.amqpURL))
	dead.SetDown(true)
	cluster := env(map[string]string{"AMQP_URL": dead.RewriteURL(t, f.amqpURL) + "," + f.amqpURL, "MQ_ERROR_QUEUE": f.errorQueue})

	stdout, stderr, err := runCtl(t, cluster, "errors", "list")
	if err != nil || !strings.Contains(stdout, "2 messages") {
		t.Fatalf("errors list with the first node down: %v, stdout %q, stderr %q", err, stdout, stderr)
	}
	if _, stderr, err := runCtl(t, cluster, "errors", "replay", "-id", "m1"); err != nil {
		t.Fatalf("errors replay with the first node down: %v, stderr %q", err, stderr)
	}
	f.wantQueue(t, f.errorQueue, m2)
	if got := ids(f.peek(t, f.target)); !slices.Equal(got, []string{"m1"}) {
		t.Errorf("%s holds %v, want the replay of m1", f.target, got)
	}
}

func TestErrorsListAndReplayTakeAMessageTheBrokerDeadLettered(t *testing.T) {
	t.Parallel()
	for _, queueType := range []string{"quorum", "classic"} {
		t.Run(queueType, func(t *testing.T) {
			t.Parallel()
			f := newBrokerFixture(t, queueType)
			// A queue a service consumes, declared as the services do,
			// dead-lettering into this test's error queue.
			work := testenv.Name(t, "mark.order.refund.queue")
			testenv.DeleteOnCleanup(t, f.amqpURL, nil, []string{work})
			ch := f.channel(t)
			if err := broker.DeclareQueue(ch, work, queueType, &broker.Binding{Exchange: "", Key: f.errorQueue}); err != nil {
				t.Fatal(err)
			}
			if err := ch.QueueBind(work, "refund.success", f.exchange, false, nil); err != nil {
				t.Fatal(err)
			}
			m := f.parkedMessage("dead")
			m.Headers = nil
			dc, err := f.pub.PublishWithDeferredConfirm(f.exchange, "refund.success", true, false, m)
			if err != nil || !dc.Wait() {
				t.Fatalf("publish to %s: %v", work, err)
			}
			var d amqp.Delivery
			testenv.WaitFor(t, 5*time.Second, "the message in "+work, func() bool {
				got, ok, err := ch.Get(work, false)
				d = got
				return err == nil && ok
			})
			if err := d.Reject(false); err != nil {
				t.Fatal(err)
			}
			testenv.WaitFor(t, 5*time.Second, "the message dead-lettered", func() bool { return len(f.peek(t, f.errorQueue)) == 1 })

			stdout, _, err := runCtl(t, f.env, "errors", "list")
			if err != nil {
				t.Fatalf("errors list: %v", err)
			}
			if !hasRow(stdout, "1 dead pay.success "+f.exchange+" / refund.success") || !strings.Contains(stdout, "dead-lettered: rejected in queue mark.order.refund.queue") {
				t.Errorf("errors list = %q, want the message with where it came from and why", stdout)
			}
			if _, _, err := runCtl(t, f.env, "errors", "replay", "-all"); err != nil {
				t.Fatalf("errors replay -all: %v", err)
			}
			back := f.peek(t, work)
			if len(back) != 1 || back[0].MessageId != "dead" || string(back[0].Body) != string(m.Body) {
				t.Fatalf("%s holds %v after the replay, want the message again", work, ids(back))
			}
			if _, ok := back[0].Headers["x-first-death-reason"]; ok {
				t.Errorf("replayed message keeps the headers of its death: %v", back[0].Headers)
			}
			f.wantQueue(t, f.errorQueue)
		})
	}
}

// The broker must not be needed to refuse a malformed command.
func TestErrorsCommandsCheckUsageBeforeConnecting(t *testing.T) {
	getenv := env(map[string]string{"AMQP_URL": "amqp://guest:guest@127.0.0.1:1/"})
	for _, args := range [][]string{
		{"errors", "replay"},
		{"errors", "replay", "-all", "-id", "m1"},
		{"errors", "list", "-limit", "-1"},
	} {
		_, _, err := runCtl(t, getenv, args...)
		if err == nil || strings.Contains(err.Error(), "127.0.0.1:1") {
			t.Errorf("run %v = %v, want a usage error, not a connection error", args, err)
		}
	}
}
