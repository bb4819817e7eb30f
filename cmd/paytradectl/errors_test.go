package main

import (
	"bufio"
	"encoding/json"
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

func TestErrorsListShowsParkedMessagesAndLeavesTheQueueIntact(t *testing.T) {
	t.Parallel()
	for _, queueType := range []string{"quorum", "classic"} {
		t.Run(queueType, func(t *testing.T) {
			t.Parallel()
			f := newBrokerFixture(t, queueType)
			m1, m2, m3 := f.parkedMessage("m1"), f.parkedMessage("m2"), f.parkedMessage("m3")
			m3.Body = []byte("line one\n\tline two, and more than sixty characters of body so that it is cut short")
			delete(m3.Headers, "x-original-exchange")
			f.park(t, m1, m2, m3)

			var first string
			for run := range 2 {
				stdout, stderr, err := runCtl(t, f.env, "errors", "list")
				if err != nil {
					t.Fatalf("errors list: %v (stderr %q)", err, stderr)
				}
				if run == 0 {
					first = stdout
				} else if stdout != first {
					t.Errorf("second listing differs from the first:\n%s\nwant\n%s", stdout, first)
				}
			}
			lines := strings.Split(strings.TrimSpace(first), "\n")
			if len(lines) != 5 || !strings.Contains(lines[0], "3 messages") || !strings.HasPrefix(lines[1], "POS") {
				t.Fatalf("stdout = %q, want a title, a header and three rows", first)
			}
			for i, want := range [][]string{
				{"1", "m1", "pay.success", f.exchange + " / pay.success", "3", "2026-11-21T10:00:00Z", "retries_exhausted: mark order paid: database on fire", `{"bizOrderNo":123`},
				{"2", "m2", f.exchange + " / pay.success"},
				{"3", "m3", "cannot be replayed", `line one\n\tline two`, "…"},
			} {
				row := lines[2+i]
				if !strings.HasPrefix(row, want[0]+" ") {
					t.Errorf("row %d = %q, want it to start with position %s", i, row, want[0])
				}
				for _, s := range want[1:] {
					if !strings.Contains(row, s) {
						t.Errorf("row %d = %q, want it to contain %q", i, row, s)
					}
				}
			}
			if strings.Contains(lines[4], "cut short") {
				t.Errorf("row 3 = %q, want its body truncated", lines[4])
			}

			f.wantQueue(t, f.errorQueue, m1, m2, m3)

			stdout, _, err := runCtl(t, f.env, "errors", "list", "-limit", "2")
			if err != nil {
				t.Fatalf("errors list -limit 2: %v", err)
			}
			if rows := strings.Split(strings.TrimSpace(stdout), "\n"); len(rows) != 4 || strings.Contains(stdout, "m3") {
				t.Errorf("errors list -limit 2 = %q, want the first two messages", stdout)
			}
			// A partial listing keeps every message, but a quorum queue
			// may put those listed behind m3 (see runErrorsList).
			got := ids(f.peek(t, f.errorQueue))
			slices.Sort(got)
			if !slices.Equal(got, []string{"m1", "m2", "m3"}) {
				t.Errorf("after errors list -limit 2 the queue holds %v, want m1, m2 and m3", got)
			}
		})
	}
}

func TestErrorsListAHundredTimesKeepsEveryParkedMessage(t *testing.T) {
	t.Parallel()
	for _, queueType := range []string{"quorum", "classic"} {
		t.Run(queueType, func(t *testing.T) {
			t.Parallel()
			f := newBrokerFixture(t, queueType)
			m1, m2, m3 := f.parkedMessage("m1"), f.parkedMessage("m2"), f.parkedMessage("m3")
			f.park(t, m1, m2, m3)
			// Every listing is a delivery of each message; RabbitMQ 4's
			// default delivery limit (20) would have dropped them all.
			for run := range 100 {
				stdout, stderr, err := runCtl(t, f.env, "errors", "list")
				if err != nil {
					t.Fatalf("errors list, run %d: %v (stderr %q)", run+1, err, stderr)
				}
				if !strings.Contains(stdout, "3 messages") || !strings.Contains(stdout, "(all left in the queue)") {
					t.Fatalf("errors list, run %d = %q, want 3 messages, all left", run+1, stdout)
				}
			}
			f.wantQueue(t, f.errorQueue, m1, m2, m3)
		})
	}
}

func TestErrorsListSaysSoWhenTheBrokerDropsWhatItListed(t *testing.T) {
	t.Parallel()
	f := newBrokerFixture(t, "quorum")
	// An error queue declared by other means, whose broker gives up on a
	// message at its first return: every listing loses what it shows.
	lossy := testenv.Name(t, "lossy.error.queue")
	testenv.DeleteOnCleanup(t, f.amqpURL, nil, []string{lossy})
	if _, err := f.pub.QueueDeclare(lossy, true, false, false, false, amqp.Table{"x-queue-type": "quorum", "x-delivery-limit": int64(0)}); err != nil {
		t.Fatalf("declare %s: %v", lossy, err)
	}
	f.errorQueue = lossy
	f.park(t, f.parkedMessage("m1"), f.parkedMessage("m2"))

	stdout, _, err := runCtl(t, env(map[string]string{"AMQP_URL": f.amqpURL, "MQ_ERROR_QUEUE": lossy}), "errors", "list")
	if err == nil || !strings.Contains(err.Error(), "2 fewer than it should") {
		t.Errorf("errors list of a queue that dropped what it listed: error %v, want it to say 2 messages are missing", err)
	}
	if strings.Contains(stdout, "all left") || !strings.Contains(stdout, "NOT all of them back") {
		t.Errorf("errors list stdout = %q, want no claim that all are left", stdout)
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

func TestErrorsListJSONPrintsOneObjectPerLineWithTheWholeBody(t *testing.T) {
	t.Parallel()
	f := newBrokerFixture(t, "quorum")
	m1, m2 := f.parkedMessage("m1"), f.parkedMessage("m2")
	m2.Body = []byte(strings.Repeat("long body ", 50))
	m2.Headers["x-replay-count"] = int32(2)
	f.park(t, m1, m2)

	stdout, stderr, err := runCtl(t, f.env, "errors", "list", "-json")
	if err != nil {
		t.Fatalf("errors list -json: %v (stderr %q)", err, stderr)
	}
	sc := bufio.NewScanner(strings.NewReader(stdout))
	var got []parkedJSON
	for sc.Scan() {
		var line parkedJSON
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&line); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		got = append(got, line)
	}
	if len(got) != 2 {
		t.Fatalf("stdout = %q, want two lines", stdout)
	}
	g := got[0]
	if g.Position != 1 || g.MessageID != "m1" || g.Type != "pay.success" || g.OriginalExchange == nil || *g.OriginalExchange != f.exchange ||
		g.OriginalRoutingKey == nil || *g.OriginalRoutingKey != "pay.success" || g.Attempts != 3 || g.FailedAt != "2026-11-21T10:00:00Z" ||
		g.ExceptionType != "retries_exhausted" || g.ExceptionMessage != "mark order paid: database on fire" ||
		g.CorrelationID != "corr-m1" || g.AppID != "pay" || g.ContentType != "application/json" || g.Body != string(m1.Body) {
		t.Errorf("line 1 = %+v, want every field of m1", g)
	}
	if got[1].Position != 2 || got[1].Body != string(m2.Body) || got[1].ReplayCount != 2 {
		t.Errorf("line 2 = %+v, want m2 at position 2 with its whole body and replay count 2", got[1])
	}
	f.wantQueue(t, f.errorQueue, m1, m2)
}

func TestErrorsListReportsAMissingQueue(t *testing.T) {
	t.Parallel()
	amqpURL := testenv.AMQPURL(t)
	queue := testenv.Name(t, "no.such.queue")
	_, _, err := runCtl(t, env(map[string]string{"AMQP_URL": amqpURL}), "errors", "list", "-queue", queue)
	if err == nil || !strings.Contains(err.Error(), queue) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("errors list of a missing queue = %v, want an error saying %s does not exist", err, queue)
	}
}

// wantReplayed fails the test unless d is the replay of parked message m:
// its body and properties, persistent, without the parking headers, with
// the custom ones, and counted as replay number count.
func wantReplayed(tb testing.TB, d amqp.Delivery, m amqp.Publishing, count int64, before time.Time) {
	tb.Helper()
	if d.MessageId != m.MessageId || string(d.Body) != string(m.Body) || d.ContentType != m.ContentType ||
		d.CorrelationId != m.CorrelationId || d.Type != m.Type || d.AppId != m.AppId || !d.Timestamp.Equal(m.Timestamp) {
		tb.Errorf("replayed %+v, want the body and properties of %+v", d, m)
	}
	if d.DeliveryMode != amqp.Persistent {
		tb.Errorf("replay of %s has delivery mode %d, want persistent", m.MessageId, d.DeliveryMode)
	}
	for k := range d.Headers {
		if strings.HasPrefix(k, "x-exception-") || strings.HasPrefix(k, "x-original-") || k == "x-attempts" || k == "x-failed-at" {
			tb.Errorf("replay of %s kept parking header %s", m.MessageId, k)
		}
	}
	if d.Headers["x-tenant"] != "kept as it was" {
		tb.Errorf("replay of %s header x-tenant = %v, want it kept", m.MessageId, d.Headers["x-tenant"])
	}
	if got := broker.HeaderInt(d.Headers, "x-replay-count"); got != count {
		tb.Errorf("replay of %s x-replay-count = %v, want %d", m.MessageId, d.Headers["x-replay-count"], count)
	}
	at, _ := d.Headers["x-replayed-at"].(string)
	if ts, err := time.Parse(time.RFC3339, at); err != nil || ts.Before(before.Truncate(time.Second)) || ts.After(time.Now()) {
		tb.Errorf("replay of %s x-replayed-at = %q, want the time of the replay", m.MessageId, at)
	}
}

func TestErrorsReplayRemovesAMessageOnlyAfterItsReplayIsConfirmed(t *testing.T) {
	t.Parallel()
	f := newBrokerFixture(t, "quorum")
	m1, m2, m3 := f.parkedMessage("m1"), f.parkedMessage("m2"), f.parkedMessage("m3")
	f.park(t, m1, m2, m3)

	before := time.Now()
	stdout, stderr, err := runCtl(t, f.env, "errors", "replay", "-id", "m2")
	if err != nil {
		t.Fatalf("errors replay -id m2: %v (stdout %q, stderr %q)", err, stdout, stderr)
	}
	if !hasRow(stdout, "replayed m2 2 to "+f.exchange+" with key pay.success") || !strings.Contains(stdout, "1 replayed") {
		t.Errorf("stdout = %q, want m2 reported replayed", stdout)
	}
	replayed := f.peek(t, f.target)
	if len(replayed) != 1 {
		t.Fatalf("%s holds %v, want the replay of m2 alone", f.target, ids(replayed))
	}
	wantReplayed(t, replayed[0], m2, 1, before)
	f.wantQueue(t, f.errorQueue, m1, m3)
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

func TestErrorsReplayLeavesAMessageParkedWhenItsReplayIsNotConfirmed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		modify func(f *brokerFixture, m *amqp.Publishing)
		detail string
	}{
		{"returned: no queue bound for its key", func(f *brokerFixture, m *amqp.Publishing) {
			m.Headers["x-original-routing-key"] = "nobody.listens"
		}, "returned"},
		{"exchange missing", func(f *brokerFixture, m *amqp.Publishing) {
			m.Headers["x-original-exchange"] = f.exchange + ".gone"
		}, "unconfirmed"},
		{"no original exchange header", func(f *brokerFixture, m *amqp.Publishing) {
			delete(m.Headers, "x-original-exchange")
		}, "no x-original-exchange header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newBrokerFixture(t, "quorum")
			m1, m2 := f.parkedMessage("m1"), f.parkedMessage("m2")
			tt.modify(f, &m2)
			f.park(t, m1, m2)

			stdout, _, err := runCtl(t, f.env, "errors", "replay", "-id", "m2")
			if err == nil || !strings.Contains(err.Error(), "m2") {
				t.Errorf("errors replay = %v, want an error naming m2", err)
			}
			if !hasRow(stdout, "left m2 2 "+tt.detail) {
				t.Errorf("stdout = %q, want m2 left (%s)", stdout, tt.detail)
			}
			if got := f.peek(t, f.target); len(got) != 0 {
				t.Errorf("%s holds %v, want nothing", f.target, ids(got))
			}
			f.wantQueue(t, f.errorQueue, m1, m2)
		})
	}
}

func TestErrorsReplayReportsIDsNotInTheQueue(t *testing.T) {
	t.Parallel()
	f := newBrokerFixture(t, "quorum")
	m1 := f.parkedMessage("m1")
	f.park(t, m1)

	stdout, _, err := runCtl(t, f.env, "errors", "replay", "-id", "m1,nope")
	if err == nil || !strings.Contains(err.Error(), "nope (not found)") || strings.Contains(err.Error(), "m1") {
		t.Errorf("errors replay = %v, want an error naming nope as not found, and m1 not", err)
	}
	if !hasRow(stdout, "replayed m1 1") || !hasRow(stdout, "not found nope -") {
		t.Errorf("stdout = %q, want m1 replayed and nope not found", stdout)
	}
	f.wantQueue(t, f.errorQueue)
}

func TestErrorsReplayDryRunChangesNothing(t *testing.T) {
	t.Parallel()
	f := newBrokerFixture(t, "quorum")
	m1, m2 := f.parkedMessage("m1"), f.parkedMessage("m2")
	f.park(t, m1, m2)

	stdout, stderr, err := runCtl(t, f.env, "errors", "replay", "-all", "-dry-run")
	if err != nil {
		t.Fatalf("errors replay -all -dry-run: %v (stderr %q)", err, stderr)
	}
	if !hasRow(stdout, "would replay m1 1 to "+f.exchange+" with key pay.success") || !hasRow(stdout, "would replay m2 2") {
		t.Errorf("stdout = %q, want both messages reported as would replay to %s", stdout, f.exchange)
	}
	if got := f.peek(t, f.target); len(got) != 0 {
		t.Errorf("%s holds %v after a dry run, want nothing", f.target, ids(got))
	}
	f.wantQueue(t, f.errorQueue, m1, m2)
}

func TestErrorsReplayAllReplaysEveryCopyAndCountsReplays(t *testing.T) {
	t.Parallel()
	f := newBrokerFixture(t, "quorum")
	m1, m2 := f.parkedMessage("m1"), f.parkedMessage("m2")
	m1.Headers["x-replay-count"] = int32(2)
	// A message parked twice (its first parking confirmed, the ack of its
	// delivery lost): both copies go back.
	f.park(t, m1, m2, m1)

	before := time.Now()
	stdout, stderr, err := runCtl(t, f.env, "errors", "replay", "-all")
	if err != nil {
		t.Fatalf("errors replay -all: %v (stdout %q, stderr %q)", err, stdout, stderr)
	}
	replayed := f.peek(t, f.target)
	if !slices.Equal(ids(replayed), []string{"m1", "m2", "m1"}) {
		t.Fatalf("%s holds %v, want m1, m2, m1", f.target, ids(replayed))
	}
	wantReplayed(t, replayed[0], m1, 3, before)
	wantReplayed(t, replayed[1], m2, 1, before)
	wantReplayed(t, replayed[2], m1, 3, before)
	f.wantQueue(t, f.errorQueue)
}

func TestErrorsReplayTakesRepeatedAndCommaSeparatedIDs(t *testing.T) {
	t.Parallel()
	f := newBrokerFixture(t, "classic")
	m1, m2, m3, m4 := f.parkedMessage("m1"), f.parkedMessage("m2"), f.parkedMessage("m3"), f.parkedMessage("m4")
	f.park(t, m1, m2, m3, m4)

	if _, stderr, err := runCtl(t, f.env, "errors", "replay", "-id", "m1, m3", "-id", "m4"); err != nil {
		t.Fatalf("errors replay: %v (stderr %q)", err, stderr)
	}
	if got := ids(f.peek(t, f.target)); !slices.Equal(got, []string{"m1", "m3", "m4"}) {
		t.Errorf("%s holds %v, want m1, m3, m4", f.target, got)
	}
	f.wantQueue(t, f.errorQueue, m2)
}

func TestErrorsReplayOfAnEmptyQueueDoesNothing(t *testing.T) {
	t.Parallel()
	f := newBrokerFixture(t, "quorum")
	stdout, _, err := runCtl(t, f.env, "errors", "replay", "-all")
	if err != nil || !strings.Contains(stdout, "empty") {
		t.Errorf("errors replay -all of an empty queue = %q, %v; want it said empty, no error", stdout, err)
	}
}

func TestErrorsReplayReportsAnUnreachableBroker(t *testing.T) {
	t.Parallel()
	getenv := env(map[string]string{"AMQP_URL": "amqp://guest:secret@127.0.0.1:1/", "AMQP_CONNECT_TIMEOUT": "2s"})
	_, _, err := runCtl(t, getenv, "errors", "replay", "-all")
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") || strings.Contains(err.Error(), "secret") {
		t.Errorf("errors replay against a closed port = %v, want an error naming the broker without its password", err)
	}
}

func TestIDListSplitsCommasAndRepeats(t *testing.T) {
	var l idList
	for _, v := range []string{"a,b", " c ", "d,,", ""} {
		if err := l.Set(v); err != nil {
			t.Fatalf("Set(%q): %v", v, err)
		}
	}
	if want := []string{"a", "b", "c", "d"}; !slices.Equal(l, want) {
		t.Errorf("ids = %v, want %v", l, want)
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

func TestReplayMessageCountsEveryIntegerWidth(t *testing.T) {
	for _, prior := range []any{int8(4), int16(4), int32(4), int64(4), "4"} {
		m := replayMessage(amqp.Delivery{MessageId: "m", Headers: amqp.Table{"x-replay-count": prior}}, broker.Parked{Exchange: "x", RoutingKey: "k"}, time.Now())
		if got := m.Publishing.Headers["x-replay-count"]; got != int64(5) {
			t.Errorf("after a prior count of %T %v, x-replay-count = %v, want 5", prior, prior, got)
		}
	}
}
