package main

import (
	"bufio"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

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
