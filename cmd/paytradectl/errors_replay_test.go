package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/broker"
)

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

func TestReplayMessageCountsEveryIntegerWidth(t *testing.T) {
	for _, prior := range []any{int8(4), int16(4), int32(4), int64(4), "4"} {
		m := replayMessage(amqp.Delivery{MessageId: "m", Headers: amqp.Table{"x-replay-count": prior}}, broker.Parked{Exchange: "x", RoutingKey: "k"}, time.Now())
		if got := m.Publishing.Headers["x-replay-count"]; got != int64(5) {
			t.Errorf("after a prior count of %T %v, x-replay-count = %v, want 5", prior, prior, got)
		}
	}
}
