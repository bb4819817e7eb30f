package httpapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/paytrade/paytrade/internal/auth"
	"github.com/paytrade/paytrade/internal/authtest"
	"github.com/paytrade/paytrade/internal/openapi/openapitest"
	"github.com/paytrade/paytrade/services/pay"
	"github.com/paytrade/paytrade/services/pay/paytest"
	"github.com/paytrade/paytrade/services/trade"
	"github.com/paytrade/paytrade/services/trade/httpapi"
	"github.com/paytrade/paytrade/services/trade/tradetest"
)

type api struct {
	world *tradetest.World
	srv   *httptest.Server
}

func newAPI(t *testing.T) *api {
	t.Helper()
	w := tradetest.NewWorld(t)
	srv := httptest.NewServer(openapitest.Checked(t, httpapi.NewHandler(w.Orders, w.Service, httpapi.Config{
		Auth: w.Keys.Authenticator(auth.AudienceTrade),
	})))
	t.Cleanup(srv.Close)
	return &api{world: w, srv: srv}
}

func user(t *testing.T, id int64) string { return authtest.Shared(t).User(t, id) }

// call sends body (raw JSON, or none if empty) and returns the status and
// the decoded answer.
// call sends a request with tok, body and headers (name, value pairs)
// and returns the status and the decoded answer.
func (a *api) call(t *testing.T, method, path, tok, body string, headers ...string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, a.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	var out map[string]any
	if bytes.HasPrefix(data, []byte("{")) {
		if err := json.Unmarshal(data, &out); err != nil {
			t.Fatalf("%s %s: decode %s: %v", method, path, data, err)
		}
	} else {
		out = map[string]any{"raw": string(data)}
	}
	return res.StatusCode, out
}

func TestCreateAndReadOrderAsTheOwner(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	code, o := a.call(t, "POST", "/orders", user(t, 7), `{"totalFee":12345,"paymentType":3}`)
	if code != http.StatusCreated {
		t.Fatalf("create: %d %v", code, o)
	}
	for key, want := range map[string]any{"userId": 7.0, "totalFee": 12345.0, "paymentType": 3.0, "status": 1.0, "payTime": nil, "closeTime": nil} {
		if o[key] != want {
			t.Errorf("%s = %v, want %v", key, o[key], want)
		}
	}
	if _, err := time.Parse(time.RFC3339, fmt.Sprint(o["createTime"])); err != nil {
		t.Errorf("createTime %v: %v", o["createTime"], err)
	}
	path := fmt.Sprintf("/orders/%.0f", o["id"])
	if code, got := a.call(t, "GET", path, user(t, 7), ""); code != 200 || got["id"] != o["id"] {
		t.Errorf("owner reads: %d %v", code, got)
	}
	if code, got := a.call(t, "GET", path, authtest.Shared(t).Service(t, auth.AudienceTrade), ""); code != 200 {
		t.Errorf("service reads: %d %v", code, got)
	}
	if code, got := a.call(t, "GET", path, user(t, 8), ""); code != 404 || got["code"] != "order_not_found" {
		t.Errorf("another user reads: %d %v, want 404 order_not_found", code, got)
	}
}

func TestOrderRoutesRefuseBadInputAndMissingAuth(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	service := authtest.Shared(t).Service(t, auth.AudienceTrade)
	tests := []struct {
		name, method, path, token, body string
		status                          int
		code                            string
	}{
		{"no token", "POST", "/orders", "", `{"totalFee":1,"paymentType":3}`, 401, ""},
		{"a service cannot order", "POST", "/orders", service, `{"totalFee":1,"paymentType":3}`, 403, ""},
		{"zero total", "POST", "/orders", user(t, 7), `{"totalFee":0,"paymentType":3}`, 400, "invalid_request"},
		{"float total", "POST", "/orders", user(t, 7), `{"totalFee":1.5,"paymentType":3}`, 400, "invalid_json"},
		{"unknown payment type", "POST", "/orders", user(t, 7), `{"totalFee":1,"paymentType":9}`, 400, "invalid_request"},
		{"unknown field", "POST", "/orders", user(t, 7), `{"totalFee":1,"paymentType":3,"status":2}`, 400, "invalid_json"},
		{"not JSON", "POST", "/orders", user(t, 7), `totalFee=1`, 400, "invalid_json"},
		{"bad id", "GET", "/orders/abc", user(t, 7), "", 400, "invalid_request"},
		{"absent order", "GET", "/orders/999", user(t, 7), "", 404, "order_not_found"},
		{"bad status filter", "GET", "/orders?status=9", user(t, 7), "", 400, "invalid_request"},
		{"bad limit", "GET", "/orders?limit=1000", user(t, 7), "", 400, "invalid_request"},
		{"cancel absent", "POST", "/orders/999/cancel", user(t, 7), "", 404, "order_not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := a.call(t, tt.method, tt.path, tt.token, tt.body)
			if code != tt.status || (tt.code != "" && body["code"] != tt.code) {
				t.Errorf("%d %v, want %d %s", code, body, tt.status, tt.code)
			}
		})
	}
}

func TestListOrdersShowsOnlyTheCallersNewestFirst(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	for i := range 3 {
		a.call(t, "POST", "/orders", user(t, 7), fmt.Sprintf(`{"totalFee":%d,"paymentType":3}`, 100+i))
		a.call(t, "POST", "/orders", user(t, 8), `{"totalFee":1,"paymentType":3}`)
	}
	req, _ := http.NewRequest("GET", a.srv.URL+"/orders?status=1&limit=2", nil)
	req.Header.Set("Authorization", "Bearer "+user(t, 7))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var list []trade.Order
	if err := json.NewDecoder(res.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || len(list) != 2 || list[0].TotalFee != 102 || list[1].TotalFee != 101 || list[0].UserID != 7 {
		t.Fatalf("%d %+v, want user 7's two newest", res.StatusCode, list)
	}
}

func TestCancelThroughTheAPIClosesThePayOrderAndAnswersPaidOrdersWithConflict(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	w := a.world
	paytest.Funded(t, w.Pay, 7, 100_000)
	unpaid, _ := w.Order(t, 7, 1000)
	paid, po := w.Order(t, 7, 1000)
	if err := w.PayAtPay(t, po); err != nil {
		t.Fatal(err)
	}
	code, body := a.call(t, "POST", fmt.Sprintf("/orders/%d/cancel", unpaid.ID), user(t, 7), "")
	if code != 200 || body["status"] != 5.0 || body["closeTime"] == nil {
		t.Fatalf("cancel unpaid: %d %v", code, body)
	}
	if code, body := a.call(t, "POST", fmt.Sprintf("/orders/%d/cancel", unpaid.ID), user(t, 8), ""); code != 404 {
		t.Fatalf("another user cancels: %d %v", code, body)
	}
	code, body = a.call(t, "POST", fmt.Sprintf("/orders/%d/cancel", paid.ID), user(t, 7), "")
	if code != 409 || body["code"] != "already_paid" {
		t.Fatalf("cancel an order paid at pay: %d %v, want 409 already_paid", code, body)
	}
	if got := tradetest.Reload(t, w.Orders, paid.ID); got.Status != trade.Paid {
		t.Fatalf("order paid at pay has status %d after cancel, want paid", got.Status)
	}
}

// A pay order exists only for a real order, for its owner and exact total:
// whatever a caller sends, trade applies with the order's user and total,
// for the owner only and only while the order is unpaid.
func TestPayOrderIsAppliedForTheOrdersOwnerAndExactTotal(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	paytest.Funded(t, a.world.Pay, 7, 10_000)
	_, o := a.call(t, "POST", "/orders", user(t, 7), `{"totalFee":2500,"paymentType":3}`)
	path := fmt.Sprintf("/orders/%.0f/pay-order", o["id"])
	const how = `{"payChannelCode":"balance","payType":5}`

	if code, got := a.call(t, "POST", path, user(t, 8), how); code != 404 || got["code"] != "order_not_found" {
		t.Errorf("another user asks: %d %v, want 404 order_not_found", code, got)
	}
	if code, got := a.call(t, "POST", path, user(t, 7), `{"payChannelCode":"balance","payType":5,"amount":1}`); code != 400 || got["code"] != "invalid_json" {
		t.Errorf("the owner names an amount: %d %v, want 400 invalid_json", code, got)
	}
	if code, got := a.call(t, "POST", path, user(t, 7), `{"payChannelCode":"balance","payType":1}`); code != 400 || got["code"] != "invalid_request" {
		t.Errorf("another pay type: %d %v, want 400 invalid_request", code, got)
	}
	code, po := a.call(t, "POST", path, user(t, 7), how)
	if code != 201 || po["bizOrderNo"] != o["id"] || po["bizUserId"] != 7.0 || po["amount"] != 2500.0 || po["status"] != 1.0 {
		t.Fatalf("the owner asks: %d %v, want 201 and a waiting pay order of the order, user 7, 2500", code, po)
	}
	if code, again := a.call(t, "POST", path, user(t, 7), how); code != 200 || again["id"] != po["id"] {
		t.Errorf("asked again: %d %v, want 200 and pay order %v", code, again, po["id"])
	}
	if err := a.world.PayAtPay(t, pay.PayOrder{ID: int64(po["id"].(float64)), BizUserID: 7}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.world.Service.CheckUnpaid(t.Context(), 0, 10); err != nil {
		t.Fatal(err)
	}
	if code, got := a.call(t, "POST", path, user(t, 7), how); code != 409 || got["code"] != "order_not_unpaid" {
		t.Errorf("a paid order: %d %v, want 409 order_not_unpaid", code, got)
	}
	_, cancelled := a.call(t, "POST", "/orders", user(t, 7), `{"totalFee":100,"paymentType":3}`)
	a.call(t, "POST", fmt.Sprintf("/orders/%.0f/cancel", cancelled["id"]), user(t, 7), "")
	if code, got := a.call(t, "POST", fmt.Sprintf("/orders/%.0f/pay-order", cancelled["id"]), user(t, 7), how); code != 409 || got["code"] != "order_not_unpaid" {
		t.Errorf("a cancelled order: %d %v, want 409 order_not_unpaid", code, got)
	}
}

// The same refund asked for twice over HTTP is one refund; only the owner
// of a paid order may ask, and a service may not.
func TestRefundRequestedTwiceOverHTTPIsOneRefundForThePaidOrdersOwnerOnly(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	w := a.world
	paytest.Funded(t, w.Pay, 7, 100_000)
	unpaid, _ := w.Order(t, 7, 1000)
	paid, po := w.Order(t, 7, 1000)
	if err := w.PayAtPay(t, po); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Service.CheckUnpaid(t.Context(), 0, 10); err != nil {
		t.Fatal(err)
	}
	path := fmt.Sprintf("/orders/%d/refund", paid.ID)

	if code, got := a.call(t, "POST", fmt.Sprintf("/orders/%d/refund", unpaid.ID), user(t, 7), ""); code != 409 || got["code"] != "not_refundable" {
		t.Errorf("an unpaid order: %d %v, want 409 not_refundable", code, got)
	}
	if code, got := a.call(t, "POST", path, user(t, 8), ""); code != 404 || got["code"] != "order_not_found" {
		t.Errorf("another user asks: %d %v, want 404 order_not_found", code, got)
	}
	if code, got := a.call(t, "POST", path, authtest.Shared(t).Service(t, auth.AudienceTrade), ""); code != 403 {
		t.Errorf("a service asks: %d %v, want 403", code, got)
	}
	code, first := a.call(t, "POST", path, user(t, 7), "")
	if code != 202 || first["refundId"] == nil || first["status"] != "requested" || first["amount"] != 1000.0 || first["reason"] != "user_request" {
		t.Fatalf("the owner asks: %d %v, want 202 and a requested refund of 1000", code, first)
	}
	if code, again := a.call(t, "POST", path, user(t, 7), ""); code != 202 || again["refundId"] != first["refundId"] {
		t.Errorf("asked again: %d %v, want 202 and refund %v", code, again, first["refundId"])
	}
	if _, o := a.call(t, "GET", fmt.Sprintf("/orders/%d", paid.ID), user(t, 7), ""); o["refundStatus"] != "requested" || o["refundTime"] != nil || o["status"] != 2.0 {
		t.Errorf("the order: %v, want still paid with refundStatus requested and no refundTime", o)
	}
}

func TestPartialRefundsOverHTTPNeedAKeyAndStayWithinTheTotal(t *testing.T) {
	t.Parallel()
	a := newAPI(t)
	w := a.world
	paytest.Funded(t, w.Pay, 7, 100_000)
	paid, po := w.Order(t, 7, 1000)
	if err := w.PayAtPay(t, po); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Service.CheckUnpaid(t.Context(), 0, 10); err != nil {
		t.Fatal(err)
	}
	path := fmt.Sprintf("/orders/%d/refunds", paid.ID)
	owner := user(t, 7)

	if code, got := a.call(t, "POST", path, owner, `{"amount":400}`); code != 400 || got["code"] != "invalid_request" {
		t.Errorf("no Idempotency-Key: %d %v, want 400", code, got)
	}
	code, first := a.call(t, "POST", path, owner, `{"amount":400,"reason":"user_request"}`, "Idempotency-Key", "k1")
	if code != 202 || first["orderId"] != float64(paid.ID) || first["amount"] != 400.0 || first["status"] != "requested" || first["rejectReason"] != "" {
		t.Fatalf("a refund of 400: %d %v, want 202 and the refund", code, first)
	}
	if code, again := a.call(t, "POST", path, owner, `{"amount":400}`, "Idempotency-Key", "k1"); code != 202 || again["refundId"] != first["refundId"] {
		t.Errorf("the same key again: %d %v, want refund %v", code, again, first["refundId"])
	}
	if code, got := a.call(t, "POST", path, owner, `{"amount":300}`, "Idempotency-Key", "k1"); code != 422 || got["code"] != "idempotency_key_reused" {
		t.Errorf("the same key for another amount: %d %v, want 422", code, got)
	}
	if code, got := a.call(t, "POST", path, owner, `{"amount":601}`, "Idempotency-Key", "k2"); code != 409 || got["code"] != "refund_exceeds_remaining" {
		t.Errorf("more than remains: %d %v, want 409 refund_exceeds_remaining", code, got)
	}
	if code, got := a.call(t, "POST", path, user(t, 8), `{"amount":1}`, "Idempotency-Key", "k3"); code != 404 {
		t.Errorf("another user: %d %v, want 404", code, got)
	}
	code, rest := a.call(t, "POST", fmt.Sprintf("/orders/%d/refund", paid.ID), owner, "")
	if code != 202 || rest["amount"] != 600.0 {
		t.Fatalf("what remains: %d %v, want 202 and a refund of 600", code, rest)
	}
	req, err := http.NewRequest("GET", a.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+authtest.Shared(t).Service(t, auth.AudienceTrade))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var list []map[string]any
	if err := json.NewDecoder(res.Body).Decode(&list); err != nil || res.StatusCode != 200 || len(list) != 2 ||
		list[0]["refundId"] != first["refundId"] || list[1]["refundId"] != rest["refundId"] {
		t.Errorf("a service lists the refunds: %d %v (%v), want the two, oldest first", res.StatusCode, list, err)
	}
}
