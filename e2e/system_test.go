// Package e2e runs the real pay and trade binaries against the real
// PostgreSQL and RabbitMQ and checks promises that take both services.
package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/openapi/openapitest"
	"github.com/paytrade/paytrade/internal/systest"
	"github.com/paytrade/paytrade/internal/testenv"
)

// client is every test's HTTP client. Every answer it gets is checked
// against the OpenAPI document of the service that gave it: one that drifts
// from it comes back as an error.
var client = func() *systest.Client {
	c := systest.NewClient(8, 10*time.Second)
	c.HTTP.Transport = openapitest.Transport(c.HTTP.Transport)
	return c
}()

// system is one systest.System with its pay running; tradeEnv goes to
// every trade a test starts.
type system struct {
	*systest.System
	tradeEnv []string
	pay      *testenv.Process
}

func newSystem(t *testing.T, tradeEnv ...string) *system {
	t.Helper()
	return startSystem(t, systest.New(t, "e2e"), tradeEnv)
}

// newCrashSystem is newSystem on binaries built to obey crash points.
func newCrashSystem(t *testing.T, tradeEnv ...string) *system {
	t.Helper()
	return startSystem(t, systest.New(t, "e2e", systest.FaultInject), tradeEnv)
}

func startSystem(t *testing.T, sys *systest.System, tradeEnv []string, payEnv ...string) *system {
	t.Helper()
	s := &system{System: sys, tradeEnv: tradeEnv}
	s.pay = s.StartPay(t, append(append(s.PayEnv(), "PAY_OUTBOX_POLL_INTERVAL=200ms"), payEnv...))
	return s
}

// startTrade starts a trade process that asks this system's pay.
func (s *system) startTrade(t *testing.T, extraEnv ...string) *testenv.Process {
	t.Helper()
	env := append(append(s.TradeEnv(s.pay.BaseURL), "TRADE_RETRY_INITIAL_INTERVAL=50ms"), s.tradeEnv...)
	return s.StartTrade(t, append(env, extraEnv...))
}

type order struct {
	ID     int64 `json:"id"`
	Status int   `json:"status"`
}

type payOrder struct {
	ID int64 `json:"id"`
}

// buyer is a user with a funded wallet.
type buyer struct {
	id  int64
	tok string
}

func (s *system) newBuyer(t *testing.T, id, balance int64) buyer {
	t.Helper()
	if err := client.OpenWallet(s.pay.BaseURL, systest.OperatorToken(t, "e2e"), id, balance); err != nil {
		t.Fatal(err)
	}
	return buyer{id: id, tok: systest.UserToken(t, id)}
}

// orderAndApply creates an order at trade and its pay order, as the
// course's front end does.
func (s *system) orderAndApply(t *testing.T, trade *testenv.Process, b buyer, fee int64) (order, payOrder) {
	t.Helper()
	id, poID, err := client.Order(systest.Services{Pay: s.pay.BaseURL, Trade: trade.BaseURL}, b.tok, fee)
	if err != nil {
		t.Fatal(err)
	}
	return order{ID: id, Status: 1}, payOrder{ID: poID}
}

func (s *system) payOrder(t *testing.T, b buyer, po payOrder) {
	t.Helper()
	if err := client.Pay(s.pay.BaseURL, b.tok, po.ID); err != nil {
		t.Fatal(err)
	}
}

func orderStatus(t *testing.T, trade *testenv.Process, b buyer, id int64) int {
	t.Helper()
	var o order
	client.MustCall(t, http.MethodGet, fmt.Sprintf("%s/orders/%d", trade.BaseURL, id), b.tok, "", http.StatusOK, &o)
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
	return s.withChannelOf(t, s.AMQPURL, fn)
}

// withChannelOf runs fn on a channel of a connection to amqpURL: pay's
// broker user's, for what must reach trade as pay's own.
func (s *system) withChannelOf(t *testing.T, amqpURL string, fn func(ch *amqp.Channel) int) int {
	t.Helper()
	conn, err := amqp.Dial(amqpURL)
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

// waitForMetrics waits until p's /metrics holds every line of wants:
// relays and consumers count a moment after their work is visible.
func waitForMetrics(t *testing.T, p *testenv.Process, wants ...string) {
	t.Helper()
	testenv.WaitFor(t, 5*time.Second, p.Name+"'s metrics", func() bool {
		res, err := http.Get(p.BaseURL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		for _, want := range wants {
			if !strings.Contains(string(body), want) {
				return false
			}
		}
		return true
	})
}
