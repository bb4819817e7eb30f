package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/paytrade/paytrade/internal/auth"
	"github.com/paytrade/paytrade/internal/broker"
	"github.com/paytrade/paytrade/internal/testenv"
)

// serviceCall sends body to pay's path with trade's service token and
// returns pay's status and error code.
func (s *system) serviceCall(t *testing.T, path, body string) (int, string, http.Header) {
	t.Helper()
	token := s.Keys.Service(t, auth.AudiencePay)
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.pay.BaseURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var refusal struct {
		Code string `json:"code"`
	}
	_ = json.NewDecoder(res.Body).Decode(&refusal)
	return res.StatusCode, refusal.Code, res.Header
}

// newPaidSystem is a system with trade running and paidOrder paid: the
// buyer, the order and the buyer's balance after paying.
func newPaidSystem(t *testing.T) (*system, *testenv.Process, buyer, order, int64) {
	t.Helper()
	s := newSystem(t)
	trade := s.startTrade(t)
	b, o := s.paidOrder(t, trade)
	return s, trade, b, o, balance(t, s.pay, b)
}

// forgedRefund is a refund request for the whole of order o of buyer b,
// under a refund id trade never recorded.
func forgedRefund(b buyer, o order) string {
	return fmt.Sprintf(`{"refundId":%q,"bizOrderNo":%d,"userId":%d,"amount":10000,"reason":"user_request","requestedAt":%q}`,
		uuid.NewString(), o.ID, b.id, time.Now().UTC().Format(time.RFC3339))
}

func TestServiceTokenCannotCreditARefundTradeNeverRequested(t *testing.T) {
	t.Parallel()
	s, trade, b, o, before := newPaidSystem(t)

	code, reason, _ := s.serviceCall(t, "/refunds", forgedRefund(b, o))
	if code != http.StatusForbidden || reason != "refund_not_requested" {
		t.Errorf("a refund trade never requested: %d %s, want 403 refund_not_requested", code, reason)
	}
	if got := balance(t, s.pay, b); got != before {
		t.Errorf("balance %d after the forged refund, want %d", got, before)
	}
	if n := count(t, s.PayDB, `SELECT count(*) FROM refunds`); n != 0 {
		t.Errorf("pay recorded %d refund decisions, want none", n)
	}
	if got := refundedOrder(t, trade, b, o.ID); got.Status != 2 || got.RefundStatus != nil {
		t.Errorf("order %+v after the forged refund, want paid with no refund", got)
	}

	// A refund trade did request is credited through the same door, once.
	r := s.refund(t, trade, b, o.ID)
	testenv.WaitFor(t, 10*time.Second, "the requested refund to be credited", func() bool { return balance(t, s.pay, b) == before+10_000 })
	replay := fmt.Sprintf(`{"refundId":%q,"bizOrderNo":%d,"userId":%d,"amount":20000,"reason":"user_request","requestedAt":%q}`,
		r.RefundID, o.ID, b.id, time.Now().UTC().Format(time.RFC3339))
	if code, reason, _ := s.serviceCall(t, "/refunds", replay); code != http.StatusForbidden || reason != "refund_not_requested" {
		t.Errorf("trade's refund id with another amount: %d %s, want 403 refund_not_requested", code, reason)
	}
	if got := balance(t, s.pay, b); got != before+10_000 {
		t.Errorf("balance %d, want %d: the refund credited once", got, before+10_000)
	}
}

func TestServiceTokenCannotApplyForOrCloseAnOrderTradeNeverIssued(t *testing.T) {
	t.Parallel()
	s := newSystem(t)
	trade := s.startTrade(t)
	b := s.newBuyer(t, 1, 100_000)
	issued, _ := s.orderAndApply(t, trade, b, 10_000)
	next := issued.ID + 1 // the number trade will give its next order

	for _, tc := range []struct {
		name, path, body, want string
	}{
		{"apply for an order trade never issued", "/pay-orders",
			fmt.Sprintf(`{"bizOrderNo":%d,"bizUserId":%d,"amount":1,"payChannelCode":"balance","payType":5}`, next, b.id), "order_not_issued"},
		{"apply for an issued order with another total", "/pay-orders",
			fmt.Sprintf(`{"bizOrderNo":%d,"bizUserId":%d,"amount":1,"payChannelCode":"balance","payType":5}`, issued.ID, b.id), "order_mismatch"},
		{"close an order trade never issued", fmt.Sprintf("/pay-orders/biz/%d/close", next), "", "order_not_issued"},
	} {
		if code, reason, _ := s.serviceCall(t, tc.path, tc.body); code != http.StatusForbidden || reason != tc.want {
			t.Errorf("%s: %d %s, want 403 %s", tc.name, code, reason, tc.want)
		}
	}
	if n := count(t, s.PayDB, `SELECT count(*) FROM closed_biz_orders WHERE biz_order_no = $1`, next); n != 0 {
		t.Errorf("pay recorded order %d closed", next)
	}

	// The order trade issues under that number is paid as any other.
	o, po := s.orderAndApply(t, trade, b, 10_000)
	if o.ID != next {
		t.Fatalf("trade issued order %d, want %d", o.ID, next)
	}
	s.payOrder(t, b, po)
	testenv.WaitFor(t, 10*time.Second, "the order to be paid", func() bool { return orderStatus(t, trade, b, o.ID) == 2 })
}

func TestPayActsOnNoServiceRequestWhileTradeCannotBeAsked(t *testing.T) {
	t.Parallel()
	s, trade, b, o, before := newPaidSystem(t)
	trade.Stop(t, 10*time.Second)

	for _, tc := range []struct{ name, path, body string }{
		{"apply", "/pay-orders", fmt.Sprintf(`{"bizOrderNo":%d,"bizUserId":%d,"amount":10000,"payChannelCode":"balance","payType":5}`, o.ID+1, b.id)},
		{"close", fmt.Sprintf("/pay-orders/biz/%d/close", o.ID+1), ""},
		{"refund", "/refunds", forgedRefund(b, o)},
	} {
		code, reason, header := s.serviceCall(t, tc.path, tc.body)
		if code != http.StatusServiceUnavailable || reason != "trade_unavailable" || header.Get("Retry-After") == "" {
			t.Errorf("%s with trade away: %d %s Retry-After %q, want 503 trade_unavailable with Retry-After", tc.name, code, reason, header.Get("Retry-After"))
		}
	}
	if got := balance(t, s.pay, b); got != before {
		t.Errorf("balance %d, want %d", got, before)
	}
	if n := count(t, s.PayDB, `SELECT (SELECT count(*) FROM refunds) + (SELECT count(*) FROM closed_biz_orders) + (SELECT count(*) FROM pay_orders WHERE biz_order_no = $1)`, o.ID+1); n != 0 {
		t.Errorf("pay recorded %d refunds, closures or pay orders while in doubt, want none", n)
	}
}

func TestOnlyTradesBrokerUserCanHaveARefundCredited(t *testing.T) {
	t.Parallel()
	// Who sent a message is told by the broker users alone: with one user
	// shared, there is nothing to test.
	testenv.NeedBrokerUsers(t)
	s, _, b, o, before := newPaidSystem(t)

	// An administrator may write to trade's exchange, but cannot claim to
	// be trade: its refund.requested says who it is, and pay parks it.
	id := uuid.NewString()
	msg := amqp.Publishing{
		ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: id, Type: "refund.requested",
		AppId: "trade", Timestamp: time.Now(), UserId: broker.User(s.AMQPURL), Body: []byte(forgedRefund(b, o)),
	}
	withChan(t, s.AMQPURL, func(ch *amqp.Channel) {
		if err := ch.Publish(s.TradeExchange, "refund.requested", false, false, msg); err != nil {
			t.Fatal(err)
		}
	})
	parked := takeParked(t, s.AMQPURL, s.ErrorQueue, id)
	if got := parked.Headers["x-exception-type"]; got != broker.ExceptionForbiddenSender {
		t.Errorf("x-exception-type = %v, want %q", got, broker.ExceptionForbiddenSender)
	}
	if got := balance(t, s.pay, b); got != before {
		t.Errorf("balance %d after a forged refund.requested, want %d", got, before)
	}
}
