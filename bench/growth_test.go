package bench

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/auth"
	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/outbox"
	"github.com/paytrade/paytrade/internal/systest"
	"github.com/paytrade/paytrade/internal/testenv"
	"github.com/paytrade/paytrade/services/pay"
	"github.com/paytrade/paytrade/services/pay/paytest"
	"github.com/paytrade/paytrade/services/trade"
	"github.com/paytrade/paytrade/services/trade/cron"
	"github.com/paytrade/paytrade/services/trade/payclient"
	tradepg "github.com/paytrade/paytrade/services/trade/postgres"
	"github.com/paytrade/paytrade/services/trade/tradetest"
)

// The fallback's production settings (TRADE_PAY_CHECK_GRACE, _BATCH,
// TRADE_ORDER_TIMEOUT), so a tick walks what a real one walks.
const (
	tickGrace   = 30 * time.Second
	tickTimeout = 30 * time.Minute
	tickBatch   = 100
	// lostPerTick orders per tick were paid at pay but their event never
	// reached trade: the tick asks pay about each and marks it paid.
	lostPerTick = 200
	tickPayers  = 16
)

// mustExec runs one seeding statement, failing the test if it fails.
func mustExec(tb testing.TB, pool *pgxpool.Pool, what, sql string, args ...any) {
	tb.Helper()
	if _, err := pool.Exec(context.Background(), sql, args...); err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
}

// seedTradeHistory fills a trade database with n orders from before
// today, nine in ten paid with their inbox row and one in ten closed, as
// they are once settled. They are inserted in their final state rather
// than inserted unpaid and updated: a live system's fallback sees the dead
// index entries of a few seconds of updates, not of a year's. ANALYZE is
// what autovacuum does after such a load; nothing is vacuumed.
func seedTradeHistory(tb testing.TB, pool *pgxpool.Pool, n int) {
	tb.Helper()
	mustExec(tb, pool, "seed order history", `
		INSERT INTO orders (id, user_id, total_fee, payment_type, status, create_time, pay_time, close_time, update_time)
		SELECT g, (g - 1) % $2 + 1, $3, 3,
			CASE WHEN g % 10 = 0 THEN 5 ELSE 2 END, t,
			CASE WHEN g % 10 = 0 THEN NULL ELSE t + interval '5 seconds' END,
			CASE WHEN g % 10 = 0 THEN t + interval '30 minutes' END,
			t + interval '5 seconds'
		FROM generate_series(1, $1::bigint) g,
			LATERAL (SELECT now() - interval '1 day' - ($1::bigint - g) * interval '1 second' AS t) x`,
		n, buyers, orderFee)
	mustExec(tb, pool, "seed inbox history", `
		INSERT INTO processed_messages (message_id, biz_order_no, outcome, processed_at)
		SELECT gen_random_uuid()::text, id, 'applied', pay_time FROM orders WHERE status = 2`)
	mustExec(tb, pool, "move the order id sequence past the history", `SELECT setval('orders_id_seq', $1::bigint)`, n)
	mustExec(tb, pool, "analyze trade history", `ANALYZE orders, processed_messages`)
}

// fallbackTick returns the median duration of a number of fallback ticks
// over a trade database holding history settled orders. Each tick finds
// lostPerTick orders paid at pay whose pay.success never came: it asks pay
// about them a page at a time (POST /pay-orders/biz/query, over HTTP to the
// in-process pay of a tradetest.World) and marks them paid.
func fallbackTick(tb testing.TB, history, ticks int) time.Duration {
	tb.Helper()
	w, pool, f := tickRig(tb)
	seedTradeHistory(tb, pool, history)
	return tickTimes(tb, w, pool, f, ticks, 0)
}

// unpaidWindowTick returns the median duration of a number of fallback
// ticks over a trade database holding unpaid unpaid orders older than the
// grace period, each with its pay order waiting at pay: a tick asks pay
// about all of them, and about the lostPerTick orders it finds paid.
func unpaidWindowTick(tb testing.TB, unpaid int) time.Duration {
	tb.Helper()
	w, pool, f := tickRig(tb)
	ids := unpaidOrders(tb, pool, unpaid)
	err := systest.Parallel(tickPayers, len(ids), func(i int) error {
		_, _, err := w.Pay.ApplyPayOrder(context.Background(), pay.Apply{
			BizOrderNo: ids[i].id, BizUserID: ids[i].user, Amount: orderFee, PayChannelCode: pay.ChannelBalance, PayType: pay.PayTypeBalance,
		})
		return err
	})
	if err != nil {
		tb.Fatalf("apply for the unpaid orders' pay orders: %v", err)
	}
	return tickTimes(tb, w, pool, f, ticksPerHistory, unpaid)
}

// tickRig is a fallback over a trade database of its own asking the pay of
// a tradetest.World, over HTTP, whose payers are funded.
func tickRig(tb testing.TB) (*tradetest.World, *pgxpool.Pool, *cron.Fallback) {
	tb.Helper()
	w := tradetest.NewWorld(tb)
	for u := int64(1); u <= tickPayers; u++ {
		paytest.Funded(tb, w.Pay, u, 1<<50)
	}
	pool := tradetest.NewPool(tb)
	orders := tradepg.New(pool)
	client, err := payclient.New(payclient.Config{BaseURL: w.PayURL, Signer: w.Keys.Signer(auth.IssuerTrade)})
	if err != nil {
		tb.Fatal(err)
	}
	f, err := cron.New(trade.NewService(orders, client, nil, nil), orders,
		cron.Config{Spec: "@every 1h", Grace: tickGrace, Timeout: tickTimeout, Batch: tickBatch})
	if err != nil {
		tb.Fatal(err)
	}
	return w, pool, f
}

// tickTimes runs ticks fallback ticks, each after lostPerTick payments
// were lost, and returns their median duration; each tick must ask about
// the lost ones and the unpaid orders still waiting, and pay the lost.
func tickTimes(tb testing.TB, w *tradetest.World, pool *pgxpool.Pool, f *cron.Fallback, ticks, waiting int) time.Duration {
	tb.Helper()
	times := make([]time.Duration, ticks)
	for i := range times {
		lost := lostPayments(tb, w, pool)
		start := time.Now()
		r, err := f.Tick(context.Background())
		times[i] = time.Since(start)
		if err != nil || r.Checked != lost+waiting || r.Paid != lost {
			tb.Fatalf("tick: %+v, %v; want %d checked and %d paid", r, err, lost+waiting, lost)
		}
	}
	return median(times)
}

// unpaidOrder is an order of trade's database and its buyer.
type unpaidOrder struct{ id, user int64 }

// unpaidOrders creates n unpaid orders older than the grace period.
func unpaidOrders(tb testing.TB, pool *pgxpool.Pool, n int) []unpaidOrder {
	tb.Helper()
	rows, err := pool.Query(context.Background(), `
		INSERT INTO orders (user_id, total_fee, payment_type, status, create_time, update_time)
		SELECT (g - 1) % $2 + 1, $3, 3, 1, now() - interval '5 minutes', now() - interval '5 minutes'
		FROM generate_series(1, $1) g
		RETURNING id, user_id`, n, tickPayers, orderFee)
	if err != nil {
		tb.Fatalf("create unpaid orders: %v", err)
	}
	defer rows.Close()
	var orders []unpaidOrder
	for rows.Next() {
		var o unpaidOrder
		if err := rows.Scan(&o.id, &o.user); err != nil {
			tb.Fatal(err)
		}
		orders = append(orders, o)
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return orders
}

// lostPayments creates lostPerTick unpaid orders older than the grace
// period and pays each at pay, as if every pay.success had been lost, and
// returns how many.
func lostPayments(tb testing.TB, w *tradetest.World, pool *pgxpool.Pool) int {
	tb.Helper()
	ctx := context.Background()
	lost := unpaidOrders(tb, pool, lostPerTick)
	err := systest.Parallel(tickPayers, len(lost), func(i int) error {
		po, _, err := w.Pay.ApplyPayOrder(ctx, pay.Apply{
			BizOrderNo: lost[i].id, BizUserID: lost[i].user, Amount: orderFee, PayChannelCode: pay.ChannelBalance, PayType: pay.PayTypeBalance,
		})
		if err != nil {
			return err
		}
		_, err = w.Pay.Pay(ctx, pay.Payment{PayOrderID: po.ID, UserID: lost[i].user, Password: "123"})
		return err
	})
	if err != nil {
		tb.Fatalf("pay the lost orders at pay: %v", err)
	}
	return len(lost)
}

// seedPayHistory fills a pay database with n paid pay orders and their
// debits, and with the n outbox events they announced, inserted and then
// deleted as the relay deletes what the broker confirmed: dead rows and
// dead index entries that only VACUUM removes. It is left unvacuumed, the
// worst case, which relayRate measures first; then it vacuums, as
// autovacuum would have long since on a server that runs it, and measures
// the history as a live system has it. ANALYZE is what autovacuum does
// after a bulk load.
func seedPayHistory(tb testing.TB, pool *pgxpool.Pool, exchange string, n int) {
	tb.Helper()
	users, hashes := make([]int64, buyers), make([]string, buyers)
	var keyID string
	for i := range users {
		users[i] = int64(i + 1)
		stored, err := paytest.Peppers().Hash(users[i], "123")
		if err != nil {
			tb.Fatal(err)
		}
		hashes[i], keyID = stored.Hash, stored.KeyID
	}
	mustExec(tb, pool, "seed accounts", `
		INSERT INTO accounts (user_id, balance, password_hash, password_key_id)
		SELECT u, $2, h, $4 FROM unnest($1::bigint[], $3::text[]) AS a (u, h)`,
		users, int64(1)<<50, hashes, keyID)
	mustExec(tb, pool, "seed funding", `
		INSERT INTO ledger_entries (user_id, kind, amount, balance_after) SELECT user_id, 'funding', balance, balance FROM accounts`)
	const history = `FROM generate_series(1, $1::bigint) g,
		LATERAL (SELECT now() - interval '1 day' - ($1::bigint - g) * interval '1 second' AS t) x`
	mustExec(tb, pool, "seed pay order history", `
		INSERT INTO pay_orders (id, biz_order_no, biz_user_id, amount, status, pay_channel_code, pay_type,
			order_info, pay_success_time, pay_over_time, create_time, update_time)
		SELECT g, g, (g - 1) % $2 + 1, $3, 3, 'balance', 5, 'bench history', t + interval '1 second',
			t + interval '2 hours', t, t + interval '1 second' `+history, n, buyers, orderFee)
	mustExec(tb, pool, "seed debit history", `
		INSERT INTO ledger_entries (user_id, kind, amount, balance_after, pay_order_id, created_at)
		SELECT (g - 1) % $2 + 1, 'debit', -$3::bigint, $4, g, t `+history, n, buyers, orderFee, int64(1)<<49)
	mustExec(tb, pool, "move the pay order id sequence past the history", `SELECT setval('pay_orders_id_seq', $1::bigint)`, n)
	insertEvents(tb, pool, exchange, n, true)
	mustExec(tb, pool, "delete the published history", `DELETE FROM outbox_events`)
	mustExec(tb, pool, "analyze pay history", `ANALYZE accounts, ledger_entries, pay_orders, outbox_events`)
}

// insertEvents inserts n pay.success events to exchange, due now, or (old)
// spread over the days before, as history is.
func insertEvents(tb testing.TB, pool *pgxpool.Pool, exchange string, n int, old bool) {
	tb.Helper()
	mustExec(tb, pool, "insert outbox events", `
		INSERT INTO outbox_events (id, exchange, routing_key, message_type, payload, created_at, available_at)
		SELECT gen_random_uuid(), $2, 'pay.success', 'pay.success',
			convert_to(json_build_object('bizOrderNo', g, 'payOrderId', g, 'userId', (g - 1) % 256 + 1,
				'amount', 100, 'paidAt', t)::text, 'UTF8'), t, t
		FROM generate_series(1, $1::bigint) g,
			LATERAL (SELECT CASE WHEN $3 THEN now() - interval '1 day' - ($1::bigint - g) * interval '1 second'
				ELSE now() END AS t) x`, n, exchange, old)
}

// relayResult is one relay measurement.
type relayResult struct {
	rate float64 // events per second
	// indexBytes is the size of the index the relay's claim walks, dead
	// entries of published events included: what makes a claim slower.
	indexBytes int64
	// vacuumed is the rate again once VACUUM has removed the history's
	// dead entries, as autovacuum does on a server that runs it.
	vacuumed float64
}

// relayRate measures the relay publishing fresh events (claim, publish
// persistent and mandatory with confirms to a quorum queue, delete) from a
// pay database with history published events behind it, in batches of
// pay's default size; then it vacuums the table and measures again.
func relayRate(tb testing.TB, history, fresh int) relayResult {
	tb.Helper()
	amqpURL := testenv.AMQPURL(tb)
	exchange := testenv.Name(tb, "pay.topic")
	queue := testenv.Name(tb, "mark.order.pay.queue")
	testenv.DeleteOnCleanup(tb, amqpURL, []string{exchange}, []string{queue})
	declare := func(ch *amqp.Channel) error {
		if err := ch.ExchangeDeclare(exchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
			return err
		}
		if _, err := ch.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
			return err
		}
		return ch.QueueBind(queue, "pay.success", exchange, false, nil)
	}

	pool := paytest.NewPool(tb)
	seedPayHistory(tb, pool, exchange, history)

	sup := broker.NewSupervisor(broker.Config{URL: amqpURL}, declare)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = sup.Run(ctx) })
	defer func() { cancel(); wg.Wait() }()
	if _, err := sup.Connection(ctx); err != nil {
		tb.Fatal(err)
	}
	pub := broker.NewPublisher(sup, broker.PublisherConfig{ConfirmTimeout: 10 * time.Second})
	defer pub.Close()
	relay := outbox.NewRelay(pool, pub, outbox.RelayConfig{AppID: "pay"})

	var r relayResult
	r.rate = drain(tb, pool, relay, exchange, fresh)
	if err := pool.QueryRow(ctx, `SELECT pg_relation_size('outbox_events_available_at')`).Scan(&r.indexBytes); err != nil {
		tb.Fatalf("size of the outbox index: %v", err)
	}
	mustExec(tb, pool, "vacuum the outbox", `VACUUM outbox_events`)
	r.vacuumed = drain(tb, pool, relay, exchange, fresh)
	return r
}

// drain inserts fresh due events and returns the rate at which relay
// publishes them all.
func drain(tb testing.TB, pool *pgxpool.Pool, relay *outbox.Relay, exchange string, fresh int) float64 {
	tb.Helper()
	insertEvents(tb, pool, exchange, fresh, false)
	ctx := context.Background()
	before := relay.Stats().Published
	start := time.Now()
	for relay.Stats().Published-before < int64(fresh) {
		n, err := relay.RelayBatch(ctx)
		if err != nil {
			tb.Fatalf("relay batch: %v", err)
		}
		if n == 0 {
			tb.Fatalf("outbox empty after %d of %d events published", relay.Stats().Published-before, fresh)
		}
	}
	elapsed := time.Since(start)
	if s := relay.Stats(); s.Returned+s.Nacked > 0 {
		tb.Fatalf("relay stats %+v: every event should have been acked", s)
	}
	return perSecond(fresh, elapsed)
}
