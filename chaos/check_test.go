package chaos

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/reconcile"
	paydomain "github.com/paytrade/paytrade/services/pay"
	"github.com/paytrade/paytrade/services/trade"
)

// observe installs, in trade's database, a trigger that writes down every
// UPDATE that leaves an order paid, with the status it had before. A
// payment takes effect exactly once: when the order leaves 1 (unpaid).
// Any other row here is a payment applied again — the double effect an
// inbox and a conditional UPDATE exist to prevent — or an order dragged
// back to paid from where it had moved on to. A paid order's partial
// refunds (refund_claimed, refunded_amount) leave it paid and are no
// payment: they are not written down.
func (s *system) observe(t *testing.T) {
	t.Helper()
	_, err := s.trPool.Exec(context.Background(), `
		CREATE TABLE chaos_applications (
			order_id   bigint      NOT NULL,
			old_status smallint    NOT NULL,
			at         timestamptz NOT NULL DEFAULT clock_timestamp()
		);
		CREATE FUNCTION chaos_record_application() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			INSERT INTO chaos_applications (order_id, old_status) VALUES (NEW.id, OLD.status);
			RETURN NULL;
		END $$;
		CREATE TRIGGER chaos_applications AFTER UPDATE ON orders
			FOR EACH ROW WHEN (NEW.status = 2 AND NOT (OLD.status = 2 AND
				(NEW.refund_claimed <> OLD.refund_claimed OR NEW.refunded_amount <> OLD.refunded_amount)))
			EXECUTE FUNCTION chaos_record_application();`)
	if err != nil {
		t.Fatalf("install the application audit in trade's database: %v", err)
	}
	// At pay, every credit as the database sees it, whoever makes it and
	// whether or not it books a ledger row: a pay order whose refund time
	// moves is credited, and what its transaction raised balances by is
	// the credit. The suite reads them by transaction, so a credit is seen
	// even where the ledger and the refund decisions say nothing of it.
	_, err = s.payPool.Exec(context.Background(), `
		CREATE TABLE chaos_credits (
			pay_order_id bigint   NOT NULL,
			old_status   smallint NOT NULL,
			tx           bigint   NOT NULL DEFAULT txid_current()
		);
		CREATE TABLE chaos_wallet_credits (
			user_id bigint NOT NULL,
			amount  bigint NOT NULL,
			tx      bigint NOT NULL DEFAULT txid_current()
		);
		CREATE FUNCTION chaos_record_credit() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			INSERT INTO chaos_credits (pay_order_id, old_status) VALUES (NEW.id, OLD.status);
			RETURN NULL;
		END $$;
		CREATE TRIGGER chaos_credits AFTER UPDATE ON pay_orders
			FOR EACH ROW WHEN (NEW.refund_time IS DISTINCT FROM OLD.refund_time) EXECUTE FUNCTION chaos_record_credit();
		CREATE FUNCTION chaos_record_wallet_credit() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			INSERT INTO chaos_wallet_credits (user_id, amount) VALUES (NEW.user_id, NEW.balance - OLD.balance);
			RETURN NULL;
		END $$;
		CREATE TRIGGER chaos_wallet_credits AFTER UPDATE ON accounts
			FOR EACH ROW WHEN (NEW.balance > OLD.balance) EXECUTE FUNCTION chaos_record_wallet_credit();`)
	if err != nil {
		t.Fatalf("install the credit audit in pay's database: %v", err)
	}
}

// state is what the two databases and the broker say after a scenario.
// The rules each database keeps on its own are reconcile's (CheckPay,
// CheckTrade), so the suite and paytradectl reconcile cannot disagree;
// the suite adds what only it can see: the two databases side by side,
// the funding it made, the audits above and the broker.
type state struct {
	pay, trade     reconcile.Breaches // reconcile's rules each database breaks, by rule
	debited        int                // pay orders with a debit
	doubleDebits   int                // pay orders debited other than once (invariant 1: reconcile's debits rule)
	overdrawn      int                // accounts below zero (invariant 2)
	unbalanced     int                // balances their ledger does not explain, money not conserved, or funding not what the suite gave (invariant 3)
	paid           int                // orders paid
	lost           int                // debited pay orders whose order is neither paid nor a recorded discrepancy (invariant 4)
	free           int                // orders paid without a matching successful payment (invariant 5)
	paidNoDebit    int                // of which orders paid whose pay order pay has no debit of: an announced payment a failover took back (invariant 10)
	applied        int                // payments applied again, or orders moved back to paid (invariant 6)
	refunded       int                // orders refunded in full at trade whose pay order is refunded in full at pay
	partialRefunds int                // refunds credited at pay of less than their pay order's amount
	refundsWaiting int                // refunds requested at trade not (yet) credited and marked, or rejected and unsettled (invariant 9)
	doubleRefunds  int                // pay orders credited other than once per refund, credits after a refund in full, orders whose refunds disagree with them (invariant 8)
	overPaid       int64              // cents credited to wallets beyond what their pay orders were paid (invariant 8)
	discrepancies  int                // payments recorded as not applicable; in the suite every payment is the owner's, for the exact total
	chargedCancel  int                // pay orders paid (not refunded) whose order is cancelled: charged but cancelled
	outboxPending  int                // events waiting in pay's outbox and in trade's
	queued         int                // messages in mark.order.pay.queue, ready or unacked; -1 unreadable
	parked         int                // messages in error.queue, ready or unacked; -1 unreadable
	parkedHealthy  int                // of which real pay.success events (a healthy message parked)
	poisonUnparked int                // poison messages nowhere to be found (invariant 7)
	unreadable     string

	// What only the suite sees, of the sums above.
	misfunded, creditsAfterFull, notArrived int
}

func (st state) converged() bool {
	return st.lost == 0 && st.refundsWaiting == 0 && st.outboxPending == 0 && st.queued == 0 && st.unreadable == ""
}

// doubleEffects sums what happened more than once.
func (st state) doubleEffects() int { return st.doubleDebits + st.applied }

// broken names the invariants st breaks, with counts: every rule of
// reconcile that a database breaks by its own name, then what only the
// suite sees.
func (st state) broken() []string {
	var b []string
	add := func(n int64, what string) {
		if n > 0 {
			b = append(b, fmt.Sprintf("%d %s", n, what))
		}
	}
	for _, side := range []struct {
		name  string
		rules []reconcile.Rule
		found reconcile.Breaches
	}{{"pay", reconcile.PayRules, st.pay}, {"trade", reconcile.TradeRules, st.trade}} {
		for _, r := range side.rules {
			add(side.found[r.Name], side.name+": "+r.Name)
		}
	}
	add(int64(st.misfunded), "wallets funded other than the suite funded them (inv 3)")
	add(int64(st.lost), "lost (inv 4)")
	add(int64(st.free), "paid for free (inv 5)")
	add(int64(st.applied), "applied again (inv 6)")
	add(st.overPaid, "cents credited over the paid amount (inv 8)")
	add(int64(st.creditsAfterFull), "credits after a refund in full (inv 8)")
	add(int64(st.notArrived), "refund not arrived (inv 9)")
	add(int64(st.discrepancies), "discrepancy (a payment of the owner for the exact total not applied)")
	add(int64(st.chargedCancel), "charged but cancelled (inv 4)")
	add(int64(st.parkedHealthy), "healthy parked")
	add(int64(st.poisonUnparked), "silently dropped (inv 7)")
	if st.unreadable != "" {
		b = append(b, "broker unreadable: "+st.unreadable)
	}
	return b
}

// inspect reads the state of both databases and the queues. poison is the
// bodies of the poison messages published in the scenario; the error queue
// is only read (and emptied) when final is true, at the end.
func (s *system) inspect(t *testing.T, pop population, poison map[string]bool, final bool) state {
	t.Helper()
	ctx := context.Background()
	var st state
	scan := func(err error, what string) {
		if err != nil {
			t.Fatalf("inspect %s: %v", what, err)
		}
	}
	var err error
	st.pay, err = reconcile.CheckPay(ctx, s.payPool)
	scan(err, "pay's rules")
	st.trade, err = reconcile.CheckTrade(ctx, s.trPool)
	scan(err, "trade's rules")
	st.doubleDebits = int(st.pay[reconcile.CheckDebits])
	st.overdrawn = int(st.pay[reconcile.CheckNegativeBalances])
	st.unbalanced = int(st.pay[reconcile.CheckLedgerDrift] + st.pay[reconcile.CheckMoney])

	scan(s.payPool.QueryRow(ctx, `SELECT count(DISTINCT pay_order_id) FROM ledger_entries WHERE kind = 'debit'`).Scan(&st.debited), "debits")
	scan(s.payPool.QueryRow(ctx, `SELECT (SELECT count(*) FROM outbox_events)`).Scan(&st.outboxPending), "pay's outbox")
	var tradeOutbox int
	scan(s.trPool.QueryRow(ctx, `SELECT count(*) FROM outbox_events`).Scan(&tradeOutbox), "trade's outbox")
	st.outboxPending += tradeOutbox

	// Each wallet was funded once, by the suite, with what it planned.
	rows, err := s.payPool.Query(ctx, `
		SELECT a.user_id, COALESCE((SELECT sum(amount) FROM ledger_entries l WHERE l.user_id = a.user_id AND l.kind = 'funding'), 0)
		FROM accounts a`)
	scan(err, "funding")
	for rows.Next() {
		var user, funding int64
		scan(rows.Scan(&user, &funding), "funding")
		if funding != pop.funding[user] {
			st.misfunded++
		}
	}
	scan(rows.Err(), "funding")
	st.unbalanced += st.misfunded

	type payOrder struct{ user, amount int64 }
	debited := map[int64]payOrder{} // by bizOrderNo
	rows, err = s.payPool.Query(ctx, `SELECT biz_order_no, biz_user_id, amount FROM pay_orders WHERE status IN ($1, $2)`,
		paydomain.Paid, paydomain.Refunded)
	scan(err, "pay orders")
	for rows.Next() {
		var biz int64
		var po payOrder
		scan(rows.Scan(&biz, &po.user, &po.amount), "pay order")
		debited[biz] = po
	}
	scan(rows.Err(), "pay orders")

	paidOrders := map[int64]bool{}
	rows, err = s.trPool.Query(ctx, `SELECT id, user_id, total_fee FROM orders WHERE pay_time IS NOT NULL`)
	scan(err, "orders")
	for rows.Next() {
		var id, user, fee int64
		scan(rows.Scan(&id, &user, &fee), "order")
		paidOrders[id] = true
		po, ok := debited[id]
		if !ok || po.user != user || po.amount != fee {
			st.free++
		}
		if !ok {
			st.paidNoDebit++
		}
	}
	scan(rows.Err(), "orders")
	st.paid = len(paidOrders)

	recorded := map[int64]bool{}
	rows, err = s.trPool.Query(ctx, `SELECT DISTINCT biz_order_no FROM payment_discrepancies`)
	scan(err, "discrepancies")
	for rows.Next() {
		var biz int64
		scan(rows.Scan(&biz), "discrepancy")
		recorded[biz] = true
	}
	scan(rows.Err(), "discrepancies")
	st.discrepancies = len(recorded)
	for biz := range debited {
		if !paidOrders[biz] && !recorded[biz] {
			st.lost++
		}
	}
	// Charged but cancelled: paid at pay, not refunded, cancelled at trade.
	var charged []int64
	rows, err = s.payPool.Query(ctx, `SELECT biz_order_no FROM pay_orders WHERE status = $1`, paydomain.Paid)
	scan(err, "paid pay orders")
	for rows.Next() {
		var biz int64
		scan(rows.Scan(&biz), "paid pay order")
		charged = append(charged, biz)
	}
	scan(rows.Err(), "paid pay orders")
	scan(s.trPool.QueryRow(ctx, `SELECT count(*) FROM orders WHERE status = $1 AND id = ANY($2)`, trade.Cancelled, charged).Scan(&st.chargedCancel), "cancelled orders")
	scan(s.trPool.QueryRow(ctx, `SELECT count(*) FROM chaos_applications WHERE old_status <> $1`, trade.Unpaid).Scan(&st.applied), "applications")
	s.inspectRefunds(t, &st)

	depths, err := s.depths(s.PayQueue, s.ErrorQueue)
	st.queued, st.parked = depths[0], depths[1]
	if err != nil {
		st.unreadable = err.Error()
	}
	if final && err == nil {
		if err := s.readParked(t, &st, poison); err != nil {
			st.unreadable = err.Error()
		}
	}
	return st
}

// inspectRefunds compares the refunds of both databases. Refunded are the
// orders refunded at trade (7) whose pay order is refunded at pay (4);
// partial refunds are the credits at pay of less than their pay order. A
// refund trade recorded is waiting until pay credited it and trade marked
// it refunded, both by its refund id. Double refunds are reconcile's
// credit and order refund rules, and the credits the audit saw of a pay
// order already refunded in full; over the paid amount is what the audit
// saw credited to the payer beyond each pay order's amount.
func (s *system) inspectRefunds(t *testing.T, st *state) {
	t.Helper()
	ctx := context.Background()
	set := func(pool *pgxpool.Pool, query string, args ...any) map[string]bool {
		rows, err := pool.Query(ctx, query, args...)
		if err != nil {
			t.Fatalf("inspect refunds: %v", err)
		}
		m := map[string]bool{}
		for rows.Next() {
			var key string
			if err := rows.Scan(&key); err != nil {
				t.Fatalf("inspect refunds: %v", err)
			}
			m[key] = true
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("inspect refunds: %v", err)
		}
		return m
	}
	credited := set(s.payPool, `SELECT refund_id::text FROM refunds WHERE outcome = $1`, paydomain.RefundCredited)
	marked := set(s.trPool, `SELECT id::text FROM refunds WHERE status = $1`, trade.RefundRefunded)
	for id := range set(s.trPool, `SELECT id::text FROM refunds WHERE status <> $1`, trade.RefundRejected) {
		if !credited[id] || !marked[id] {
			st.notArrived++
		}
	}
	st.refundsWaiting = st.notArrived + int(st.trade[reconcile.CheckUnsettledRejections])
	refundedAtPay := set(s.payPool, `SELECT biz_order_no::text FROM pay_orders WHERE status = $1`, paydomain.Refunded)
	for order := range set(s.trPool, `SELECT id::text FROM orders WHERE status = $1`, trade.Refunded) {
		if refundedAtPay[order] {
			st.refunded++
		}
	}
	err := s.payPool.QueryRow(ctx, `
		SELECT (SELECT count(*) FROM refunds r JOIN pay_orders p ON p.id = r.pay_order_id WHERE r.outcome = $2 AND r.amount < p.amount),
			(SELECT count(*) FROM chaos_credits WHERE old_status = $1),
			(SELECT coalesce(sum(over), 0) FROM (
				SELECT greatest(sum(w.amount) - p.amount, 0) AS over
				FROM pay_orders p
				JOIN (SELECT DISTINCT pay_order_id, tx FROM chaos_credits) c ON c.pay_order_id = p.id
				JOIN chaos_wallet_credits w ON w.tx = c.tx AND w.user_id = p.biz_user_id
				GROUP BY p.id, p.amount) o)`, paydomain.Refunded, paydomain.RefundCredited).Scan(&st.partialRefunds, &st.creditsAfterFull, &st.overPaid)
	if err != nil {
		t.Fatalf("inspect credits: %v", err)
	}
	st.doubleRefunds = int(st.pay[reconcile.CheckCredits]+st.trade[reconcile.CheckOrderRefunds]) + st.creditsAfterFull
}

// depths is how many messages each queue holds, ready or delivered and
// not yet acked (-1 each, and an error, when the broker cannot say). The
// ready ones are counted over AMQP, as they are now; the unacked ones only
// the broker's statistics count (s.unacked), up to statsLag old.
func (s *system) depths(queues ...string) ([]int, error) {
	n := make([]int, len(queues))
	for i := range n {
		n[i] = -1
	}
	ready := make([]int, len(queues))
	err := s.withChannel(func(ch *amqp.Channel) error {
		for i, q := range queues {
			info, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
			if err != nil {
				return err
			}
			ready[i] = info.Messages
		}
		return nil
	})
	if err != nil {
		return n, err
	}
	unacked, err := s.unacked(queues...)
	if err != nil {
		return n, err
	}
	for i, q := range queues {
		n[i] = ready[i] + unacked[q]
	}
	return n, nil
}

// statsLag is how old the broker's statistics of a queue may be
// (RabbitMQ's collect_statistics_interval, 5 s by default): a judgement
// that counts unacked messages waits this long after the system seems
// settled.
const statsLag = 5500 * time.Millisecond

// depth is depths of one queue: -1 if the broker cannot say right now (it
// is being restarted, say).
func (s *system) depth(queue string) int {
	n, _ := s.depths(queue)
	return n[0]
}

// readParked empties the error queue and sorts what was in it: poison
// published on purpose must be there with a reason; a real pay.success
// must not be.
func (s *system) readParked(t *testing.T, st *state, poison map[string]bool) error {
	t.Helper()
	found := map[string]bool{}
	err := s.withChannel(func(ch *amqp.Channel) error {
		for {
			d, ok, err := ch.Get(s.ErrorQueue, true)
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
			body := string(d.Body)
			reason, _ := d.Headers["x-exception-message"].(string)
			switch {
			case poison[body] && reason != "":
				found[body] = true
			case !poison[body]:
				st.parkedHealthy++
			}
		}
	})
	if err != nil {
		return fmt.Errorf("read %s: %w", s.ErrorQueue, err)
	}
	for body := range poison {
		if !found[body] {
			st.poisonUnparked++
		}
	}
	return nil
}

// withChannel runs fn on a channel of a connection of its own, straight
// to the broker (a node that answers, of a cluster), not through any proxy.
func (s *system) withChannel(fn func(ch *amqp.Channel) error) error {
	return s.withChannelOf(s.AMQPURL, fn)
}

// withChannelOf runs fn on a channel of a connection to amqpURL: pay's
// broker user's, for what must reach trade as pay's own events.
func (s *system) withChannelOf(amqpURL string, fn func(ch *amqp.Channel) error) error {
	conn, err := broker.Dial(broker.Config{URL: amqpURL, ConnectTimeout: 2 * time.Second})
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	return fn(ch)
}

// converge inspects the system until it has settled — every debit applied,
// the outbox and the queue empty — or until within has passed, and returns
// the last state and how long settling took.
func (s *system) converge(t *testing.T, pop population, within time.Duration) (state, time.Duration) {
	t.Helper()
	start := time.Now()
	for {
		st := s.inspect(t, pop, nil, false)
		if st.converged() || time.Since(start) > within {
			return st, time.Since(start)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// joinOr joins items, or says ok.
func joinOr(items []string, ok string) string {
	if len(items) == 0 {
		return ok
	}
	return strings.Join(items, "; ")
}
