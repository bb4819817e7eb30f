package httpapi_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/testenv"
	"github.com/paytrade/paytrade/services/pay"
	"github.com/paytrade/paytrade/services/pay/paytest"
)

func TestPayFlowDebitsAndPublishesPaySuccessWithEveryProperty(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.wallet(t, 1, 10_000)
	order := h.apply(t, 1, 123, 2_500)
	if order.Status != 1 || order.BizUserID != 1 || order.PayChannelCode != "balance" || order.PayType != 5 {
		t.Fatalf("applied pay order = %+v", order)
	}

	res := h.mustCall(t, http.StatusOK, "POST", fmt.Sprintf("/pay-orders/%d", order.ID), userToken(t, 1),
		map[string]string{"pw": "123"}, "X-Correlation-Id", "walkthrough-1")
	var paid payOrder
	res.decode(t, &paid)
	if paid.Status != 3 || paid.PaySuccessTime == nil {
		t.Fatalf("paid pay order = %s, want status 3 with paySuccessTime", res.body)
	}
	var account struct{ UserID, Balance int64 }
	h.mustCall(t, http.StatusOK, "GET", "/accounts/me", userToken(t, 1), nil).decode(t, &account)
	if account.Balance != 7_500 {
		t.Errorf("balance = %d, want 7500", account.Balance)
	}

	var d amqp.Delivery
	select {
	case d = <-h.deliveries:
	case <-time.After(10 * time.Second):
		t.Fatal("no pay.success event within 10s")
	}
	if _, err := uuid.Parse(d.MessageId); err != nil {
		t.Errorf("message_id %q is not the outbox event's UUID: %v", d.MessageId, err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"delivery mode", d.DeliveryMode, amqp.Persistent},
		{"content type", d.ContentType, "application/json"},
		{"type", d.Type, "pay.success"},
		{"app id", d.AppId, "pay"},
		{"routing key", d.RoutingKey, "pay.success"},
		{"exchange", d.Exchange, h.exchange},
		{"correlation id", d.CorrelationId, "walkthrough-1"},
		{"timestamp set", d.Timestamp.IsZero(), false},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	var body map[string]any
	if err := json.Unmarshal(d.Body, &body); err != nil {
		t.Fatalf("event body %s: %v", d.Body, err)
	}
	want := map[string]any{
		"bizOrderNo": 123.0, "payOrderId": float64(order.ID), "userId": 1.0, "amount": 2500.0,
		"paidAt": paid.PaySuccessTime.UTC().Format(time.RFC3339Nano),
	}
	if fmt.Sprint(body) != fmt.Sprint(want) {
		t.Errorf("event body = %v, want %v", body, want)
	}
	testenv.WaitFor(t, 20*time.Second, "the relay to delete the published event", func() bool { return h.pendingEvents(t) == 0 })
}

// The attack: a user applied for the next order numbers of trade
// with an amount of 1, and their real owners got 409 biz_order_conflict.
// Only trade, for its orders' owners and totals, applies now.
func TestUsersCannotApplyForPayOrders(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for next := int64(1); next <= 3; next++ {
		if r := h.call(t, "POST", "/pay-orders", userToken(t, 2), fmt.Sprintf(
			`{"bizOrderNo":%d,"bizUserId":2,"amount":1,"payChannelCode":"balance","payType":5}`, next)); r.status != 403 || r.code() != "forbidden" {
			t.Errorf("user 2 applies for order %d: %d %s, want 403 forbidden", next, r.status, r.body)
		}
	}
	if o := h.apply(t, 1, 1, 2_500); o.BizUserID != 1 || o.Amount != 2_500 {
		t.Errorf("trade applies for the real owner: %+v, want user 1 and 2500", o)
	}
}

// Trade's service token is in every trade process; if it could open a
// wallet or deposit, anyone who took one could mint money.
func TestOnlyAnOperatorCreatesMoney(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.wallet(t, 1, 100)
	for _, tok := range []string{serviceToken(t), userToken(t, 1)} {
		before := paytest.Snap(t, h.pool)
		if r := h.call(t, "POST", "/accounts", tok, `{"userId":2,"password":"p","balance":1000000}`); r.status != 403 || r.code() != "forbidden" {
			t.Errorf("open a funded wallet without an operator token: %d %s, want 403 forbidden", r.status, r.body)
		}
		if r := h.call(t, "POST", "/accounts/1/deposits", tok, `{"amount":1000000}`, "Idempotency-Key", "dep-1"); r.status != 403 || r.code() != "forbidden" {
			t.Errorf("deposit without an operator token: %d %s, want 403 forbidden", r.status, r.body)
		}
		if after := paytest.Snap(t, h.pool); fmt.Sprint(before) != fmt.Sprint(after) {
			t.Errorf("a refused request changed the books:\nbefore %+v\nafter  %+v", before, after)
		}
	}
	h.mustCall(t, http.StatusOK, "POST", "/accounts/1/deposits", operatorToken(t), `{"amount":50}`, "Idempotency-Key", "dep-2")
}

// An operator's deposit that timed out is retried with its key: credited once.
func TestDepositRetriedWithItsKeyIsCreditedOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.wallet(t, 1, 100)
	ops := operatorToken(t)
	first := h.mustCall(t, http.StatusOK, "POST", "/accounts/1/deposits", ops, `{"amount":5000}`, "Idempotency-Key", "topup-7")
	again := h.mustCall(t, http.StatusOK, "POST", "/accounts/1/deposits", ops, `{"amount":5000}`, "Idempotency-Key", "topup-7")
	if string(again.body) != string(first.body) || again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("retry = %s (Idempotent-Replayed %q), want %s replayed", again.body, again.header.Get("Idempotent-Replayed"), first.body)
	}
	if r := h.call(t, "POST", "/accounts/1/deposits", ops, `{"amount":6000}`, "Idempotency-Key", "topup-7"); r.status != 422 || r.code() != "idempotency_key_reused" {
		t.Errorf("same key, another amount: %d %s, want 422 idempotency_key_reused", r.status, r.body)
	}
	if snap := paytest.Snap(t, h.pool); snap.Balances[1] != 5_100 {
		t.Errorf("balance %d, want 5100: one deposit", snap.Balances[1])
	}
}

func TestBadRequestsAreRefusedClearlyAndChangeNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.wallet(t, 1, 10_000)
	h.wallet(t, 2, 10_000)
	order := h.apply(t, 1, 1, 1_000)
	payPath := fmt.Sprintf("/pay-orders/%d", order.ID)
	user1, user2, svc, ops := userToken(t, 1), userToken(t, 2), serviceToken(t), operatorToken(t)
	huge := `{"pw":"` + strings.Repeat("x", 1<<20) + `"}`

	tests := []struct {
		name, method, path, token string
		body                      any
		headers                   []string
		wantStatus                int
		wantCode                  string
	}{
		{"no token", "POST", payPath, "", `{"pw":"123"}`, nil, 401, "unauthorized"},
		{"bad token", "POST", payPath, "not-a-jwt", `{"pw":"123"}`, nil, 401, "unauthorized"},
		{"wrong password", "POST", payPath, user1, `{"pw":"124"}`, nil, 403, "wrong_password"},
		{"not the owner", "POST", payPath, user2, `{"pw":"123"}`, nil, 404, "pay_order_not_found"},
		{"service cannot pay", "POST", payPath, svc, `{"pw":"123"}`, nil, 403, "forbidden"},
		{"malformed JSON", "POST", payPath, user1, `{"pw":`, nil, 400, "invalid_json"},
		{"bare JSON number", "POST", payPath, user1, `42`, nil, 400, "invalid_json"},
		{"unknown field", "POST", payPath, user1, `{"pw":"123","amount":1}`, nil, 400, "invalid_json"},
		{"two objects", "POST", payPath, user1, `{"pw":"123"}{"pw":"123"}`, nil, 400, "invalid_json"},
		{"huge body", "POST", payPath, user1, huge, nil, 413, "body_too_large"},
		{"empty password", "POST", payPath, user1, `{"pw":""}`, nil, 400, "invalid_request"},
		{"path id not a number", "POST", "/pay-orders/abc", user1, `{"pw":"123"}`, nil, 400, "invalid_request"},
		{"path id overflowing", "POST", "/pay-orders/9223372036854775808", user1, `{"pw":"123"}`, nil, 400, "invalid_request"},
		{"negative amount", "POST", "/pay-orders", svc, `{"bizOrderNo":2,"bizUserId":1,"amount":-1,"payChannelCode":"balance","payType":5}`, nil, 400, "invalid_request"},
		{"overflowing amount", "POST", "/pay-orders", svc, `{"bizOrderNo":2,"bizUserId":1,"amount":9223372036854775808,"payChannelCode":"balance","payType":5}`, nil, 400, "invalid_json"},
		{"fractional amount", "POST", "/pay-orders", svc, `{"bizOrderNo":2,"bizUserId":1,"amount":10.5,"payChannelCode":"balance","payType":5}`, nil, 400, "invalid_json"},
		{"amount as a string", "POST", "/pay-orders", svc, `{"bizOrderNo":2,"bizUserId":1,"amount":"10","payChannelCode":"balance","payType":5}`, nil, 400, "invalid_json"},
		{"other pay type", "POST", "/pay-orders", svc, `{"bizOrderNo":2,"bizUserId":1,"amount":10,"payChannelCode":"balance","payType":1}`, nil, 400, "invalid_request"},
		{"user cannot apply", "POST", "/pay-orders", user1, `{"bizOrderNo":2,"bizUserId":1,"amount":10,"payChannelCode":"balance","payType":5}`, nil, 403, "forbidden"},
		{"apply for nobody", "POST", "/pay-orders", svc, `{"bizOrderNo":2,"amount":10,"payChannelCode":"balance","payType":5}`, nil, 400, "invalid_request"},
		{"same biz order, other amount", "POST", "/pay-orders", svc, `{"bizOrderNo":1,"bizUserId":1,"amount":999,"payChannelCode":"balance","payType":5}`, nil, 409, "biz_order_conflict"},
		{"user cannot create accounts", "POST", "/accounts", user1, `{"userId":3,"password":"p","balance":5}`, nil, 403, "forbidden"},
		{"negative opening balance", "POST", "/accounts", ops, `{"userId":3,"password":"p","balance":-5}`, nil, 400, "invalid_request"},
		{"wallet exists", "POST", "/accounts", ops, `{"userId":1,"password":"p","balance":5}`, nil, 409, "account_exists"},
		{"negative deposit", "POST", "/accounts/1/deposits", ops, `{"amount":-5}`, nil, 400, "invalid_request"},
		{"deposit overflowing the balance", "POST", "/accounts/1/deposits", ops, `{"amount":9223372036854775807}`, []string{"Idempotency-Key", "big"}, 409, "balance_overflow"},
		{"deposit without an Idempotency-Key", "POST", "/accounts/1/deposits", ops, `{"amount":5}`, nil, 400, "invalid_request"},
		{"user cannot deposit", "POST", "/accounts/1/deposits", user1, `{"amount":5}`, nil, 403, "forbidden"},
		{"service has no wallet", "GET", "/accounts/me", svc, nil, nil, 403, "forbidden"},
		{"operator cannot pay", "POST", payPath, ops, `{"pw":"123"}`, nil, 403, "forbidden"},
		{"others' pay order is invisible", "GET", payPath, user2, nil, nil, 404, "pay_order_not_found"},
		{"others' pay order by biz order is invisible", "GET", "/pay-orders/biz/1", user2, nil, nil, 404, "pay_order_not_found"},
		{"user cannot close", "POST", "/pay-orders/biz/1/close", user1, nil, nil, 403, "forbidden"},
		{"user cannot read in batches", "POST", "/pay-orders/biz/query", user1, `{"bizOrderNos":[1]}`, nil, 403, "forbidden"},
		{"batch of none", "POST", "/pay-orders/biz/query", svc, `{"bizOrderNos":[]}`, nil, 400, "invalid_request"},
		{"batch with a non-positive order", "POST", "/pay-orders/biz/query", svc, `{"bizOrderNos":[1,0]}`, nil, 400, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := paytest.Snap(t, h.pool)
			res := h.call(t, tt.method, tt.path, tt.token, tt.body, tt.headers...)
			if res.status != tt.wantStatus || res.code() != tt.wantCode {
				t.Errorf("%d %s, want %d %s", res.status, res.body, tt.wantStatus, tt.wantCode)
			}
			var e map[string]string
			if err := json.Unmarshal(res.body, &e); err != nil || e["message"] == "" || len(e) != 2 {
				t.Errorf("error body %s is not {\"code\",\"message\"}", res.body)
			}
			if after := paytest.Snap(t, h.pool); fmt.Sprint(before) != fmt.Sprint(after) {
				t.Errorf("a refused request changed the books:\nbefore %+v\nafter  %+v", before, after)
			}
		})
	}
}

func TestIdempotencyKeyOverHTTPReplaysOrRefuses(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.wallet(t, 1, 10_000)
	order := h.apply(t, 1, 1, 1_000)
	path := fmt.Sprintf("/pay-orders/%d", order.ID)
	tok := userToken(t, 1)

	first := h.mustCall(t, 200, "POST", path, tok, `{"pw":"123"}`, "Idempotency-Key", "abc")
	again := h.mustCall(t, 200, "POST", path, tok, `{"pw":"123"}`, "Idempotency-Key", "abc")
	if string(first.body) != string(again.body) || again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay = %s (replayed header %q), want %s", again.body, again.header.Get("Idempotent-Replayed"), first.body)
	}
	other := h.apply(t, 1, 2, 1_000)
	if r := h.call(t, "POST", fmt.Sprintf("/pay-orders/%d", other.ID), tok, `{"pw":"123"}`, "Idempotency-Key", "abc"); r.status != 422 || r.code() != "idempotency_key_reused" {
		t.Errorf("same key, another pay order: %d %s, want 422 idempotency_key_reused", r.status, r.body)
	}
	if r := h.call(t, "POST", path, tok, `{"pw":"123"}`); r.status != 409 || r.code() != "already_paid" {
		t.Errorf("paying again without a key: %d %s, want 409 already_paid", r.status, r.body)
	}
	if snap := paytest.Snap(t, h.pool); snap.Debits != 1 {
		t.Errorf("%d debits, want 1", snap.Debits)
	}
}

func TestOwnerAndServiceCanReadAPayOrderAndServiceCanClose(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	order := h.apply(t, 1, 77, 1_000)
	for _, tok := range []string{userToken(t, 1), serviceToken(t)} {
		var got payOrder
		h.mustCall(t, 200, "GET", fmt.Sprintf("/pay-orders/%d", order.ID), tok, nil).decode(t, &got)
		if got.ID != order.ID {
			t.Errorf("read pay order %d, want %d", got.ID, order.ID)
		}
		h.mustCall(t, 200, "GET", "/pay-orders/biz/77", tok, nil).decode(t, &got)
		if got.ID != order.ID {
			t.Errorf("read pay order by biz order: %d, want %d", got.ID, order.ID)
		}
	}
	var closed payOrder
	h.mustCall(t, 200, "POST", "/pay-orders/biz/77/close", serviceToken(t), nil).decode(t, &closed)
	if closed.Status != int(pay.Closed) {
		t.Errorf("closed pay order status %d, want 2", closed.Status)
	}
	var none map[string]any
	h.mustCall(t, 200, "POST", "/pay-orders/biz/78/close", serviceToken(t), nil).decode(t, &none)
	if fmt.Sprint(none) != "map[bizOrderNo:78 status:2]" {
		t.Errorf("closing with no pay order = %v, want {bizOrderNo:78, status:2}", none)
	}
	if r := h.call(t, "POST", "/pay-orders", serviceToken(t), `{"bizOrderNo":78,"bizUserId":1,"amount":5,"payChannelCode":"balance","payType":5}`); r.status != 409 || r.code() != "pay_order_closed" {
		t.Errorf("apply after close: %d %s, want 409 pay_order_closed", r.status, r.body)
	}
}

func TestServiceReadsThePayOrdersOfManyBusinessOrdersInOneCall(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	a, b := h.apply(t, 1, 77, 1_000), h.apply(t, 1, 79, 2_000)
	var got struct{ PayOrders []payOrder }
	h.mustCall(t, 200, "POST", "/pay-orders/biz/query", serviceToken(t), `{"bizOrderNos":[79,78,77]}`).decode(t, &got)
	if len(got.PayOrders) != 2 || got.PayOrders[0].ID != a.ID || got.PayOrders[1].ID != b.ID {
		t.Fatalf("pay orders of 77, 78 (none) and 79: %+v, want %d and %d", got.PayOrders, a.ID, b.ID)
	}
}
