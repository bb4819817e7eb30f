// Package e2e runs the real pay and trade binaries against the real
// PostgreSQL and RabbitMQ and checks promises that take both services.
package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/auth"
	"github.com/paytrade/paytrade/internal/testenv"
)

const secret = "e2e-secret"

// system is one pay database, one trade database and one set of broker
// names, shared by every process a test starts.
type system struct {
	amqpURL         string
	payEnv          []string
	tradeEnv        []string
	queue, errQueue string
	pay             *testenv.Process
}

func newSystem(t *testing.T, tradeEnv ...string) *system {
	t.Helper()
	amqpURL := testenv.AMQPURL(t)
	exchange := testenv.Name(t, "pay.topic")
	errExchange := testenv.Name(t, "error.direct")
	s := &system{
		amqpURL:  amqpURL,
		queue:    testenv.Name(t, "mark.order.pay.queue"),
		errQueue: testenv.Name(t, "error.queue"),
	}
	testenv.DeleteOnCleanup(t, amqpURL, []string{exchange, errExchange}, []string{s.queue, s.errQueue})
	common := []string{"AMQP_URL=" + amqpURL, "AUTH_JWT_SECRET=" + secret, "MQ_PAY_EXCHANGE=" + exchange}
	s.payEnv = append([]string{
		"PAY_DATABASE_URL=" + testenv.NewEmptyDatabase(t, "e2e_pay"), "PAY_HTTP_ADDR=127.0.0.1:0",
		"PAY_BCRYPT_COST=4", "PAY_OUTBOX_POLL_INTERVAL=200ms",
	}, common...)
	s.tradeEnv = append(append([]string{
		"TRADE_DATABASE_URL=" + testenv.NewEmptyDatabase(t, "e2e_trade"), "TRADE_HTTP_ADDR=127.0.0.1:0",
		"MQ_MARK_ORDER_PAY_QUEUE=" + s.queue, "MQ_ERROR_EXCHANGE=" + errExchange, "MQ_ERROR_QUEUE=" + s.errQueue,
		"TRADE_RETRY_INITIAL_INTERVAL=50ms",
	}, common...), tradeEnv...)
	s.pay = testenv.StartProcess(t, testenv.Build(t, "github.com/paytrade/paytrade/cmd/pay"), "pay", s.payEnv)
	return s
}

// startTrade starts a trade process that asks this system's pay.
func (s *system) startTrade(t *testing.T, extraEnv ...string) *testenv.Process {
	t.Helper()
	env := append(append([]string{"PAY_SERVICE_URL=" + s.pay.BaseURL}, s.tradeEnv...), extraEnv...)
	return testenv.StartProcess(t, testenv.Build(t, "github.com/paytrade/paytrade/cmd/trade"), "trade", env)
}

func token(t *testing.T, p auth.Principal) string {
	t.Helper()
	tok, err := auth.Mint([]byte(secret), p, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func userToken(t *testing.T, id int64) string { return token(t, auth.Principal{UserID: id}) }

func serviceToken(t *testing.T) string {
	return token(t, auth.Principal{Service: true, Subject: "e2e"})
}

// call sends a JSON request and decodes a JSON object answer into out
// (if not nil); it fails the test unless the status is want.
func call(t *testing.T, want int, method, url, tok, body string, out any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	if res.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, url, res.StatusCode, data, want)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, url, data, err)
		}
	}
}

type order struct {
	ID      int64      `json:"id"`
	Status  int        `json:"status"`
	PayTime *time.Time `json:"payTime"`
}

type payOrder struct {
	ID     int64 `json:"id"`
	Status int   `json:"status"`
}

// buyer is a user with a funded wallet.
type buyer struct {
	id  int64
	tok string
}

func (s *system) newBuyer(t *testing.T, id, balance int64) buyer {
	t.Helper()
	call(t, 201, "POST", s.pay.BaseURL+"/accounts", serviceToken(t),
		fmt.Sprintf(`{"userId":%d,"password":"123","balance":%d}`, id, balance), nil)
	return buyer{id: id, tok: userToken(t, id)}
}

// orderAndApply creates an order at trade and its pay order at pay, as the
// course's front end does.
func (s *system) orderAndApply(t *testing.T, trade *testenv.Process, b buyer, fee int64) (order, payOrder) {
	t.Helper()
	var o order
	call(t, 201, "POST", trade.BaseURL+"/orders", b.tok, fmt.Sprintf(`{"totalFee":%d,"paymentType":3}`, fee), &o)
	var po payOrder
	call(t, 201, "POST", s.pay.BaseURL+"/pay-orders", b.tok,
		fmt.Sprintf(`{"bizOrderNo":%d,"amount":%d,"payChannelCode":"balance","payType":5,"orderInfo":"e2e"}`, o.ID, fee), &po)
	return o, po
}

func (s *system) payOrder(t *testing.T, b buyer, po payOrder) {
	t.Helper()
	call(t, 200, "POST", fmt.Sprintf("%s/pay-orders/%d", s.pay.BaseURL, po.ID), b.tok, `{"pw":"123"}`, nil)
}

func orderStatus(t *testing.T, trade *testenv.Process, b buyer, id int64) int {
	t.Helper()
	var o order
	call(t, 200, "GET", fmt.Sprintf("%s/orders/%d", trade.BaseURL, id), b.tok, "", &o)
	return o.Status
}

// queueDepth returns how many messages wait in queue, ready or not.
func (s *system) queueDepth(t *testing.T, queue string) int {
	t.Helper()
	return s.withChannel(t, func(ch *amqp.Channel) int {
		q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		return q.Messages
	})
}

func (s *system) withChannel(t *testing.T, fn func(ch *amqp.Channel) int) int {
	t.Helper()
	conn, err := amqp.Dial(s.amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return fn(ch)
}
