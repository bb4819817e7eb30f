package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/auth"
	"github.com/paytrade/paytrade/internal/authtest"
	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/openapi/openapitest"
	"github.com/paytrade/paytrade/internal/outbox"
	"github.com/paytrade/paytrade/internal/testenv"
	"github.com/paytrade/paytrade/services/pay/httpapi"
	"github.com/paytrade/paytrade/services/pay/paytest"
	"github.com/paytrade/paytrade/services/pay/postgres"
)

// keys signs every token these tests send.
var keys = authtest.Dev()

// harness is a whole pay service — real database, real broker, relay
// running — behind an httptest server, with a queue of its own bound to
// pay.success to see what it announces.
type harness struct {
	srv        *httptest.Server
	pool       *pgxpool.Pool
	exchange   string
	deliveries <-chan amqp.Delivery
	proxy      *testenv.Proxy
	supervisor *broker.Supervisor
	relay      *outbox.Relay
	store      *postgres.Store
}

func newHarness(tb testing.TB) *harness {
	tb.Helper()
	amqpURL := testenv.AMQPURL(tb)
	h := &harness{pool: paytest.NewPool(tb), exchange: testenv.Name(tb, "pay.topic")}
	tb.Cleanup(func() { paytest.CheckInvariants(tb, h.pool) })
	h.deliveries = testenv.Watch(tb, amqpURL, h.exchange, "pay.success")

	// The service reaches the broker through a proxy the test can cut.
	h.proxy = testenv.NewProxy(tb, testenv.HostPort(tb, amqpURL))
	sup := broker.NewSupervisor(broker.Config{
		URL:       h.proxy.RewriteURL(tb, amqpURL),
		Heartbeat: time.Second,
		Backoff:   broker.Backoff{Initial: 20 * time.Millisecond, Max: 250 * time.Millisecond},
	}, func(ch *amqp.Channel) error {
		return ch.ExchangeDeclare(h.exchange, amqp.ExchangeTopic, true, false, false, false, nil)
	})
	h.supervisor = sup
	pub := broker.NewPublisher(sup, broker.PublisherConfig{ConfirmTimeout: 3 * time.Second})
	h.relay = outbox.NewRelay(h.pool, pub, outbox.RelayConfig{
		AppID: "pay", Poll: 50 * time.Millisecond, Retry: broker.Backoff{Initial: 50 * time.Millisecond, Max: 250 * time.Millisecond},
	})
	store := postgres.New(h.pool, func() postgres.Config {
		c := paytest.StoreConfig(h.exchange)
		c.EventsCommitted = h.relay.Wake
		return c
	}())
	h.store = store
	h.srv = serve(tb, store)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = sup.Run(ctx) })
	wg.Go(func() { _ = h.relay.Run(ctx) })
	tb.Cleanup(func() {
		cancel()
		wg.Wait()
		_ = pub.Close()
	})
	return h
}

// serve serves store's API, every response checked against the OpenAPI
// document.
func serve(tb testing.TB, store *postgres.Store) *httptest.Server {
	tb.Helper()
	srv := httptest.NewServer(openapitest.Checked(tb, httpapi.NewHandler(store, httpapi.Config{
		Auth:              keys.Authenticator(auth.AudiencePay),
		IdempotencySecret: []byte("idem"),
	})))
	tb.Cleanup(srv.Close)
	return srv
}

func userToken(tb testing.TB, userID int64) string { return keys.User(tb, userID) }

// serviceToken is trade's token: pay orders only.
func serviceToken(tb testing.TB) string { return keys.Service(tb, auth.AudiencePay) }

// operatorToken may do everything, accounts and deposits included.
func operatorToken(tb testing.TB) string { return keys.Operator(tb, "ops") }

// response is what a call returned.
type response struct {
	status int
	header http.Header
	body   []byte
}

// decode unmarshals the body into v.
func (r response) decode(tb testing.TB, v any) {
	tb.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		tb.Fatalf("decode %s: %v", r.body, err)
	}
}

// code is the refusal code of an error response.
func (r response) code() string {
	var e struct{ Code string }
	_ = json.Unmarshal(r.body, &e)
	return e.Code
}

// call sends body (a string is sent as is, anything else as JSON) and returns the response.
func (h *harness) call(tb testing.TB, method, path, token string, body any, headers ...string) response {
	tb.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			tb.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := h.srv.Client().Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: data}
}

// mustCall is call that fails the test unless the status is want.
func (h *harness) mustCall(tb testing.TB, want int, method, path, token string, body any, headers ...string) response {
	tb.Helper()
	r := h.call(tb, method, path, token, body, headers...)
	if r.status != want {
		tb.Fatalf("%s %s: %d %s, want %d", method, path, r.status, r.body, want)
	}
	return r
}

// payOrder is the JSON of a pay order.
type payOrder struct {
	ID             int64      `json:"id"`
	BizOrderNo     int64      `json:"bizOrderNo"`
	BizUserID      int64      `json:"bizUserId"`
	Amount         int64      `json:"amount"`
	Status         int        `json:"status"`
	PayChannelCode string     `json:"payChannelCode"`
	PayType        int        `json:"payType"`
	PaySuccessTime *time.Time `json:"paySuccessTime"`
	PayOverTime    time.Time  `json:"payOverTime"`
	CreateTime     time.Time  `json:"createTime"`
}

// wallet opens a wallet over HTTP with password "123".
func (h *harness) wallet(tb testing.TB, userID, balance int64) {
	tb.Helper()
	h.mustCall(tb, http.StatusCreated, "POST", "/accounts", operatorToken(tb),
		map[string]any{"userId": userID, "password": "123", "balance": balance})
}

// apply applies for a pay order over HTTP, as trade does for its order
// bizOrderNo of userID.
func (h *harness) apply(tb testing.TB, userID, bizOrderNo, amount int64) payOrder {
	tb.Helper()
	var o payOrder
	h.mustCall(tb, http.StatusCreated, "POST", "/pay-orders", serviceToken(tb), map[string]any{
		"bizOrderNo": bizOrderNo, "bizUserId": userID, "amount": amount, "payChannelCode": "balance", "payType": 5, "orderInfo": "test",
	}).decode(tb, &o)
	return o
}

func (h *harness) pendingEvents(tb testing.TB) int {
	tb.Helper()
	var n int
	if err := h.pool.QueryRow(context.Background(), `SELECT count(*) FROM outbox_events`).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}
