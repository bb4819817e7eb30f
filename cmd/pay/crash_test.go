package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/auth"
	"github.com/paytrade/paytrade/internal/authtest"
	"github.com/paytrade/paytrade/internal/crashpoint"
	"github.com/paytrade/paytrade/internal/database"
	"github.com/paytrade/paytrade/internal/systest"
	"github.com/paytrade/paytrade/internal/testenv"
	"github.com/paytrade/paytrade/services/pay/paytest"
	"github.com/paytrade/paytrade/services/trade/tradetest"
)

// crashWorld is one database, exchange and watching queue shared by the
// successive lives of a pay process.
type crashWorld struct {
	env        []string
	trade      *tradetest.Server // issues the orders pay is asked to apply for
	dbURL      string
	deliveries <-chan amqp.Delivery
}

func newCrashWorld(t *testing.T) *crashWorld {
	t.Helper()
	amqpURL := testenv.AMQPURL(t)
	dbURL := testenv.NewEmptyDatabase(t, "crash")
	topo := testenv.NewTopology(t, amqpURL)
	deliveries := testenv.Watch(t, amqpURL, topo.PayExchange, "pay.success")
	trade := tradetest.NewServer(t)
	return &crashWorld{
		trade:      trade,
		dbURL:      dbURL,
		deliveries: deliveries,
		env: append([]string{
			"PAY_DATABASE_URL=" + dbURL, "AMQP_URL=" + amqpURL, "PAY_MQ_TRADE_USER=trade", authtest.Shared(t).Env(t, auth.IssuerPay),
			"PAY_HTTP_ADDR=127.0.0.1:0", testenv.PayPeppersEnv,
			"PAY_OUTBOX_POLL_INTERVAL=100ms", "TRADE_SERVICE_URL=" + trade.URL,
		}, topo.Env()...),
	}
}

// start runs the real pay binary with crash points armed and waits until it listens.
func (w *crashWorld) start(t *testing.T, crashPoints string) *testenv.Process {
	t.Helper()
	bin := testenv.Build(t, "github.com/paytrade/paytrade/cmd/pay", systest.FaultInject)
	return testenv.StartProcess(t, bin, "pay", append(w.env, "PAYTRADE_CRASH_POINTS="+crashPoints))
}

// post sends a JSON request; a transport error (the process died) is returned, not fatal.
func post(t *testing.T, p *testenv.Process, path, token, body string) (int, error) {
	t.Helper()
	req, _ := http.NewRequest("POST", p.BaseURL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	res.Body.Close()
	return res.StatusCode, nil
}

// prepare opens a wallet and a pay order through p and returns the pay path.
func (w *crashWorld) prepare(t *testing.T, p *testenv.Process) string {
	t.Helper()
	svc := authtest.Shared(t).Operator(t, "test")
	if code, err := post(t, p, "/accounts", svc, `{"userId":1,"password":"123","balance":1000}`); err != nil || code != 201 {
		t.Fatalf("create wallet: %d %v", code, err)
	}
	o := tradetest.Ordered(t, w.trade.Orders, 1, 300)
	trade := authtest.Shared(t).Service(t, auth.AudiencePay)
	apply := fmt.Sprintf(`{"bizOrderNo":%d,"bizUserId":1,"amount":300,"payChannelCode":"balance","payType":5}`, o.ID)
	if code, err := post(t, p, "/pay-orders", trade, apply); err != nil || code != 201 {
		t.Fatalf("apply: %d %v", code, err)
	}
	return "/pay-orders/1"
}

func (w *crashWorld) pendingIDs(t *testing.T) []string {
	t.Helper()
	pool, err := database.Open(context.Background(), w.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	rows, err := pool.Query(context.Background(), `SELECT id::text FROM outbox_events`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

func (w *crashWorld) checkInvariants(t *testing.T, wantPaid int) {
	t.Helper()
	pool, err := database.Open(context.Background(), w.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	paytest.CheckInvariants(t, pool)
	if snap := paytest.Snap(t, pool); snap.Debits != wantPaid || snap.PaidOrders != wantPaid {
		t.Errorf("%d debits, %d paid pay orders; want %d of each", snap.Debits, snap.PaidOrders, wantPaid)
	}
}

func (w *crashWorld) nextDelivery(t *testing.T, within time.Duration) amqp.Delivery {
	t.Helper()
	select {
	case d := <-w.deliveries:
		return d
	case <-time.After(within):
		t.Fatalf("no pay.success event within %v", within)
	}
	return amqp.Delivery{}
}

func TestPayKilledAfterCommitBeforePublishLosesNoEvent(t *testing.T) {
	t.Parallel()
	w := newCrashWorld(t)
	first := w.start(t, crashpoint.PayAfterCommit)
	payPath := w.prepare(t, first)

	if _, err := post(t, first, payPath, authtest.Shared(t).User(t, 1), `{"pw":"123"}`); err == nil {
		t.Fatal("the payment returned normally; the crash point did not fire")
	}
	first.WaitKilled(t, 20*time.Second)
	pending := w.pendingIDs(t)
	if len(pending) != 1 {
		t.Fatalf("%d events in the outbox after the crash, want the committed payment's one", len(pending))
	}
	select {
	case d := <-w.deliveries:
		t.Fatalf("event %s published before the crash point; the test did not test the gap", d.MessageId)
	case <-time.After(200 * time.Millisecond):
	}

	w.start(t, "")
	d := w.nextDelivery(t, 15*time.Second)
	if d.MessageId != pending[0] {
		t.Errorf("published message id %s, want the outbox event's %s", d.MessageId, pending[0])
	}
	testenv.WaitFor(t, 10*time.Second, "the outbox to empty", func() bool { return len(w.pendingIDs(t)) == 0 })
	w.checkInvariants(t, 1)
}

func TestPayKilledAfterPublishBeforeBookkeepingRepublishesTheSameMessageID(t *testing.T) {
	t.Parallel()
	w := newCrashWorld(t)
	first := w.start(t, crashpoint.RelayAfterConfirm)
	payPath := w.prepare(t, first)

	// The relay may kill the process before or after the response is
	// written; either way the payment is committed.
	_, _ = post(t, first, payPath, authtest.Shared(t).User(t, 1), `{"pw":"123"}`)
	first.WaitKilled(t, 20*time.Second)
	published := w.nextDelivery(t, 10*time.Second)
	if pending := w.pendingIDs(t); len(pending) != 1 || pending[0] != published.MessageId {
		t.Fatalf("outbox after the crash = %v, want the published but unrecorded event %s", pending, published.MessageId)
	}

	w.start(t, "")
	again := w.nextDelivery(t, 15*time.Second)
	if again.MessageId != published.MessageId {
		t.Errorf("re-published message id %s, want the same %s so the consumer can deduplicate", again.MessageId, published.MessageId)
	}
	testenv.WaitFor(t, 10*time.Second, "the outbox to empty", func() bool { return len(w.pendingIDs(t)) == 0 })
	w.checkInvariants(t, 1)
}
