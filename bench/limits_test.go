package bench

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"
	"golang.org/x/crypto/bcrypt"

	"github.com/paytrade/paytrade/internal/database"
	"github.com/paytrade/paytrade/internal/systest"
	"github.com/paytrade/paytrade/internal/testenv"
	"github.com/paytrade/paytrade/migrations"
	"github.com/paytrade/paytrade/services/pay"
	"github.com/paytrade/paytrade/services/pay/paytest"
	paypg "github.com/paytrade/paytrade/services/pay/postgres"
)

// bcryptVerify returns the median time of checking a password against a
// hash of the given cost: what one payment costs in CPU before any SQL.
func bcryptVerify(tb testing.TB, cost, times int) time.Duration {
	tb.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("123"), cost)
	if err != nil {
		tb.Fatal(err)
	}
	return medianCheck(tb, times, func() error { return bcrypt.CompareHashAndPassword(hash, []byte("123")) })
}

// medianCheck returns the median time of times calls of check, which must
// pass each time.
func medianCheck(tb testing.TB, times int, check func() error) time.Duration {
	tb.Helper()
	ds := make([]time.Duration, times)
	for i := range ds {
		start := time.Now()
		if err := check(); err != nil {
			tb.Fatal(err)
		}
		ds[i] = time.Since(start)
	}
	return median(ds)
}

// openPool opens a pool of at most conns connections on dbURL, closed when
// the test ends.
func openPool(tb testing.TB, dbURL string, conns int) *pgxpool.Pool {
	tb.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		tb.Fatal(err)
	}
	q := u.Query()
	q.Set("pool_max_conns", strconv.Itoa(conns))
	u.RawQuery = q.Encode()
	pool, err := database.Open(context.Background(), u.String())
	if err != nil {
		tb.Fatalf("open database: %v", err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// payTransactionRate is limit A: store.Pay — lock, bcrypt at minimum cost,
// debit, pay order 1→3, ledger row, outbox row, commit — with conns
// goroutines on conns connections of a fresh pay database, and nothing
// else: no HTTP, no relay, no broker, no trade.
func payTransactionRate(tb testing.TB, conns, count int) float64 {
	tb.Helper()
	ctx := context.Background()
	pool := openPool(tb, testenv.NewDatabase(tb, migrations.FS, migrations.Pay), conns)
	store := paypg.New(pool, paytest.StoreConfig("pay.topic"))
	for u := int64(1); u <= buyers; u++ {
		paytest.Funded(tb, store, u, 1<<50)
	}
	// Pay orders are applied in one statement: applying is not what limit
	// A measures, and one by one it would take longer than paying them.
	_, err := pool.Exec(ctx, `
		INSERT INTO pay_orders (biz_order_no, biz_user_id, amount, status, pay_channel_code, pay_type, order_info, pay_over_time)
		SELECT g, (g - 1) % $2 + 1, $3, $4, $5, $6, 'bench', $7
		FROM generate_series(1, $1) g`,
		count, buyers, orderFee, pay.Waiting, pay.ChannelBalance, pay.PayTypeBalance, time.Now().Add(pay.PayWindow))
	if err != nil {
		tb.Fatalf("apply pay orders: %v", err)
	}
	rows, err := pool.Query(ctx, `SELECT id, biz_user_id FROM pay_orders ORDER BY id`)
	if err != nil {
		tb.Fatal(err)
	}
	var payments []pay.Payment
	for rows.Next() {
		p := pay.Payment{Password: "123"}
		if err := rows.Scan(&p.PayOrderID, &p.UserID); err != nil {
			tb.Fatal(err)
		}
		payments = append(payments, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}

	var failed atomic.Int64
	start := time.Now()
	err = systest.Parallel(conns, len(payments), func(i int) error {
		_, err := store.Pay(ctx, payments[i])
		if err != nil {
			failed.Add(1)
		}
		return err
	})
	elapsed := time.Since(start)
	if err != nil {
		tb.Fatalf("%d of %d payments failed, first: %v", failed.Load(), len(payments), err)
	}
	paytest.CheckInvariants(tb, pool)
	return perSecond(len(payments), elapsed)
}

// paySuccessBody is a pay.success body of the real size.
func paySuccessBody(i int) []byte {
	return fmt.Appendf(nil, `{"bizOrderNo":%d,"payOrderId":%d,"userId":%d,"amount":%d,"paidAt":%q}`,
		100000+i, 100000+i, i%buyers+1, orderFee, time.Now().UTC().Format(time.RFC3339Nano))
}

// brokerRate is limit B: count persistent, mandatory messages of
// pay.success's size and properties through a durable direct exchange to
// a durable quorum queue, on one confirm-mode channel with up to window
// confirms outstanding.
func brokerRate(tb testing.TB, count, window int) float64 {
	tb.Helper()
	amqpURL := testenv.AMQPURL(tb)
	exchange := testenv.Name(tb, "bench.direct")
	queue := testenv.Name(tb, "bench.quorum")
	testenv.DeleteOnCleanup(tb, amqpURL, []string{exchange}, []string{queue})
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		tb.Fatal(err)
	}
	if err := ch.ExchangeDeclare(exchange, amqp.ExchangeDirect, true, false, false, false, nil); err != nil {
		tb.Fatal(err)
	}
	if _, err := ch.QueueDeclare(queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		tb.Fatal(err)
	}
	if err := ch.QueueBind(queue, "pay.success", exchange, false, nil); err != nil {
		tb.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		tb.Fatal(err)
	}
	bodies := make([][]byte, count)
	for i := range bodies {
		bodies[i] = paySuccessBody(i)
	}

	ctx := context.Background()
	ring := make([]*amqp.DeferredConfirmation, window)
	nacked := 0
	start := time.Now()
	for i := range count + window {
		// Slot i%window holds the confirm of message i-window: wait for
		// it before reusing the slot, so at most window are outstanding.
		if dc := ring[i%window]; dc != nil {
			if !dc.Wait() {
				nacked++
			}
			ring[i%window] = nil
		}
		if i >= count {
			continue
		}
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, "pay.success", true, false, amqp.Publishing{
			ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: strconv.Itoa(i),
			Type: "pay.success", AppId: "bench", Timestamp: time.Now(), Body: bodies[i],
		})
		if err != nil {
			tb.Fatalf("publish message %d: %v", i, err)
		}
		ring[i%window] = dc
	}
	elapsed := time.Since(start)
	if nacked > 0 {
		tb.Fatalf("%d of %d messages nacked", nacked, count)
	}
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, amqp.Table{"x-queue-type": "quorum"})
	if err != nil {
		tb.Fatal(err)
	}
	if q.Messages != count {
		tb.Fatalf("queue holds %d messages, want %d", q.Messages, count)
	}
	return perSecond(count, elapsed)
}
