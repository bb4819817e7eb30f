package chaos

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/systest"
	"github.com/paytrade/paytrade/internal/testenv"
	paydomain "github.com/paytrade/paytrade/services/pay"
	"github.com/paytrade/paytrade/services/trade"
)

// TestChaosCheckerSeesEveryInvariantBroken proves the checker itself: on a
// system that converged cleanly, it breaks each promise on purpose, in the
// databases or the broker, and wants the counter of the table that watches
// that promise to fire — and the run to be judged broken.
func TestChaosCheckerSeesEveryInvariantBroken(t *testing.T) {
	r := &run{system: newSystem(t, safeWiring, testenv.AMQPURL(t), nil, testBrokerStats(t)), n: 40, began: time.Now()}
	r.standard(t)
	res := <-r.goLoad(r.spread)
	refunds := res.awaitRefunds()
	r.logTrails(t, refunds.inconsistent)
	unanswered := len(refunds.inconsistent)
	r.converge(t, r.pop, 30*time.Second)
	time.Sleep(statsLag)
	st := r.inspect(t, r.pop, nil, false)
	if b := st.broken(); len(b) > 0 || !st.converged() || st.debited != res.ok || unanswered > 0 || st.partialRefunds == 0 {
		t.Fatalf("the clean run is judged broken before any sabotage: %v (converged %v, %d debited, %d answered 2xx, "+
			"%d orders' refunds answered consistently and %d not, %d partial refunds)",
			b, st.converged(), st.debited, res.ok, refunds.consistent, unanswered, st.partialRefunds)
	}

	ctx := context.Background()
	var paid, unpaid []int64 // orders of the run, by state; paid ones not refunded in any part
	rows, err := r.trPool.Query(ctx, `SELECT id, status FROM orders WHERE refund_claimed = 0 ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		var status trade.OrderStatus
		if err := rows.Scan(&id, &status); err != nil {
			t.Fatal(err)
		}
		switch status {
		case trade.Paid:
			paid = append(paid, id)
		case trade.Unpaid:
			unpaid = append(unpaid, id)
		}
	}
	if rows.Err() != nil || len(paid) < 8 || len(unpaid) < 1 {
		t.Fatalf("want 8 paid orders and 1 unpaid to break, have %d and %d (%v)", len(paid), len(unpaid), rows.Err())
	}
	sabotages := []struct {
		name    string
		breakIt func(t *testing.T)
		counter func(state) int
	}{
		{"lost: a paid order set back to unpaid", func(t *testing.T) {
			mustExec(t, r.trPool.Exec, `UPDATE orders SET status = $2, pay_time = NULL WHERE id = $1`, paid[0], trade.Unpaid)
		}, func(st state) int { return st.lost }},
		{"double debit: a second debit of a pay order", func(t *testing.T) {
			mustExec(t, r.payPool.Exec, `DROP INDEX ledger_entries_one_debit_per_pay_order`)
			mustExec(t, r.payPool.Exec, `
				INSERT INTO ledger_entries (user_id, kind, amount, balance_after, pay_order_id)
				SELECT user_id, kind, amount, balance_after, pay_order_id FROM ledger_entries
				WHERE kind = 'debit' AND pay_order_id = (SELECT id FROM pay_orders WHERE biz_order_no = $1)`, paid[1])
		}, func(st state) int { return st.doubleDebits }},
		{"unbalanced: a balance changed outside the ledger", func(t *testing.T) {
			mustExec(t, r.payPool.Exec, `UPDATE accounts SET balance = balance + 1 WHERE user_id = (SELECT max(user_id) FROM accounts)`)
		}, func(st state) int { return st.unbalanced }},
		{"paid for free: an unpaid order marked paid", func(t *testing.T) {
			mustExec(t, r.trPool.Exec, `UPDATE orders SET status = $2, pay_time = now() WHERE id = $1`, unpaid[0], trade.Paid)
		}, func(st state) int { return st.free }},
		{"double effect: a paid order paid again", func(t *testing.T) {
			mustExec(t, r.trPool.Exec, `UPDATE orders SET status = $2, pay_time = now() WHERE id = $1`, paid[2], trade.Paid)
		}, func(st state) int { return st.doubleEffects() }},
		{"discrepancy: a payment recorded instead of applied", func(t *testing.T) {
			mustExec(t, r.trPool.Exec, `
				INSERT INTO payment_discrepancies (biz_order_no, pay_order_id, user_id, amount, paid_at, reason, source)
				SELECT id, id, user_id, total_fee, now(), 'sabotage', 'chaos' FROM orders WHERE id = $1`, paid[3])
		}, func(st state) int { return st.discrepancies }},
		{"charged but cancelled: a paid order cancelled", func(t *testing.T) {
			mustExec(t, r.trPool.Exec, `UPDATE orders SET status = $2, close_time = now() WHERE id = $1`, paid[4], trade.Cancelled)
		}, func(st state) int { return st.chargedCancel }},
		{"paid with no debit: a paid order's payment taken back at pay, as by a failover", func(t *testing.T) {
			mustExec(t, r.payPool.Exec, `UPDATE pay_orders SET status = 1, pay_success_time = NULL WHERE biz_order_no = $1`, paid[6])
		}, func(st state) int { return st.paidNoDebit }},
		{"over the paid amount: a wallet credited twice a pay order's amount, off the ledger", func(t *testing.T) {
			mustExec(t, r.payPool.Exec, `
				WITH credited AS (
					UPDATE pay_orders SET status = $2, refunded_amount = amount, refund_time = now()
					WHERE biz_order_no = $1 RETURNING biz_user_id, amount
				)
				UPDATE accounts a SET balance = balance + 2 * c.amount FROM credited c WHERE a.user_id = c.biz_user_id`,
				paid[7], paydomain.Refunded)
		}, func(st state) int { return int(st.overPaid) }},
		{"parked healthy: a real payment in the error queue", func(t *testing.T) {
			body := fmt.Sprintf(`{"bizOrderNo":%d,"payOrderId":1,"userId":1,"amount":100,"paidAt":"2026-11-21T10:00:00Z"}`, paid[5])
			err := r.withChannel(func(ch *amqp.Channel) error {
				return ch.Publish("", r.ErrorQueue, false, false, amqp.Publishing{Body: []byte(body), MessageId: "sabotage"})
			})
			if err != nil {
				t.Fatal(err)
			}
		}, func(st state) int { return st.parkedHealthy }},
	}
	for _, sb := range sabotages {
		t.Run(sb.name, func(t *testing.T) {
			before := sb.counter(r.inspect(t, r.pop, nil, false))
			sb.breakIt(t)
			after := r.inspect(t, r.pop, nil, true)
			if sb.counter(after) <= before {
				t.Errorf("counter stayed at %d after breaking it on purpose", sb.counter(after))
			}
			if len(after.broken()) == 0 {
				t.Errorf("the run is not judged broken")
			}
		})
	}

	t.Run("unacked messages: the system has not converged", func(t *testing.T) {
		r.trades[0].proc.Stop(t, 20*time.Second)
		err := r.withChannel(func(ch *amqp.Channel) error {
			if err := ch.Publish(r.PayExchange, "pay.success", false, false, amqp.Publishing{Body: []byte(`{}`), MessageId: "held"}); err != nil {
				return err
			}
			if err := ch.Qos(1, 0, false); err != nil {
				return err
			}
			held, err := ch.Consume(r.PayQueue, "", false, false, false, false, nil)
			if err != nil {
				return err
			}
			<-held // delivered, never acked while the channel is open
			time.Sleep(statsLag)
			st := r.inspect(t, r.pop, nil, false)
			if st.queued != 1 || st.converged() {
				t.Errorf("one message delivered and unacked: queued %d, converged %v; want 1 and not converged", st.queued, st.converged())
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})

	t.Run("broker unreadable: an error, not 0 parked", func(t *testing.T) {
		r.unacked = func(...string) (map[string]int, error) { return nil, errors.New("broker not answering") }
		st := r.inspect(t, r.pop, nil, true)
		if st.unreadable == "" || st.converged() || len(st.broken()) == 0 {
			t.Errorf("an unreadable broker: unreadable %q, converged %v, broken %v; want it judged broken", st.unreadable, st.converged(), st.broken())
		}
	})
}

// mustExec runs sql with exec and fails the test on an error.
func mustExec[T any](t *testing.T, exec func(context.Context, string, ...any) (T, error), sql string, args ...any) {
	t.Helper()
	if _, err := exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// TestChaosCheckerCountsQueuesThroughTheBrokerWithNoRabbitmqctl reads a
// broker as one on another machine (make infra's, say): a node of its own
// with the management API, and no rabbitmqctl on the PATH. A message ready
// and one delivered but not acked must both be counted, a queue the
// broker does not have is an error, not an empty queue, and another
// broker's API is never taken for this one's.
func TestChaosCheckerCountsQueuesThroughTheBrokerWithNoRabbitmqctl(t *testing.T) {
	node := testenv.StartRabbitNodeWithManagement(t)
	t.Setenv("PATH", t.TempDir())
	m, err := testenv.NewManagement(node.URL, node.ManagementURL)
	if err != nil {
		t.Fatalf("the node's management API: %v", err)
	}
	s := &system{System: &systest.System{AMQPURL: node.URL}, unacked: viaManagement(m)}
	if _, err := testenv.NewManagement(testenv.AMQPURL(t), node.ManagementURL); err == nil {
		t.Error("the node's management API was taken for the test broker's")
	}

	ch, err := node.Dial(t).Channel()
	if err != nil {
		t.Fatal(err)
	}
	const queue = "counted"
	if _, err := ch.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"held", "ready"} {
		if err := ch.Publish("", queue, false, false, amqp.Publishing{Body: []byte(`{}`), MessageId: id}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ch.Qos(1, 0, false); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	held := <-deliveries // delivered, not acked: only the broker's statistics see it

	testenv.WaitFor(t, 3*statsLag, "one ready and one unacked message counted", func() bool {
		return s.depth(queue) == 2
	})
	if err := held.Ack(false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.depths(queue, "no.such.queue"); err == nil {
		t.Error("a queue the broker does not have was read without an error")
	}
}
