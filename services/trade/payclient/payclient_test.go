package payclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paytrade/paytrade/internal/auth"
	"github.com/paytrade/paytrade/internal/authtest"
	"github.com/paytrade/paytrade/internal/correlation"
	"github.com/paytrade/paytrade/internal/problem"
	"github.com/paytrade/paytrade/services/pay/httpapi"
	"github.com/paytrade/paytrade/services/pay/paytest"
	"github.com/paytrade/paytrade/services/pay/postgres"
	"github.com/paytrade/paytrade/services/trade"
)

// keys signs trade's tokens and every token these tests send.
var keys = authtest.Dev()

// payService is a whole pay service — real database, no broker: the events
// it writes stay in its outbox — behind an httptest server.
type payService struct {
	srv *httptest.Server
}

// startPay starts pay; wrap, if not nil, sees every request before pay does.
func startPay(tb testing.TB, wrap func(http.Handler) http.Handler) *payService {
	tb.Helper()
	pool := paytest.NewPool(tb)
	tb.Cleanup(func() { paytest.CheckInvariants(tb, pool) })
	var h http.Handler = httpapi.NewHandler(postgres.New(pool, paytest.StoreConfig("pay.topic")), httpapi.Config{
		Auth:              keys.Authenticator(auth.AudiencePay),
		IdempotencySecret: []byte("idem"),
	})
	if wrap != nil {
		h = wrap(h)
	}
	p := &payService{srv: httptest.NewServer(h)}
	tb.Cleanup(p.srv.Close)
	return p
}

// newClient returns a client of the server at baseURL that signs with trade's key.
func newClient(tb testing.TB, baseURL string) *Client {
	tb.Helper()
	c, err := New(Config{BaseURL: baseURL, Signer: keys.Signer(auth.IssuerTrade)})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func userToken(tb testing.TB, userID int64) string {
	tb.Helper()
	return keys.User(tb, userID)
}

func operatorToken(tb testing.TB) string {
	tb.Helper()
	return keys.Operator(tb, "operator")
}

// answer is what pay said to a test's own call.
type answer struct {
	status int
	body   []byte
}

// code is the refusal code of an error answer.
func (a answer) code() string { return refusalCode(a.body) }

// call sends body as JSON (none if nil) with token and returns pay's answer.
func (p *payService) call(tb testing.TB, method, path, token string, body any) answer {
	tb.Helper()
	var rd io.Reader = http.NoBody
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			tb.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, p.srv.URL+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := p.srv.Client().Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return answer{status: res.StatusCode, body: data}
}

// mustCall is call that fails the test unless pay answers want, and decodes
// the answer into v if v is not nil.
func (p *payService) mustCall(tb testing.TB, want int, method, path, token string, body, v any) {
	tb.Helper()
	a := p.call(tb, method, path, token, body)
	if a.status != want {
		tb.Fatalf("%s %s: %d %s, want %d", method, path, a.status, a.body, want)
	}
	if v != nil {
		if err := json.Unmarshal(a.body, v); err != nil {
			tb.Fatalf("decode %s: %v", a.body, err)
		}
	}
}

// testPayOrder is pay's pay order as the tests read it.
type testPayOrder struct {
	ID             int64      `json:"id"`
	BizUserID      int64      `json:"bizUserId"`
	Amount         int64      `json:"amount"`
	Status         int        `json:"status"`
	PaySuccessTime *time.Time `json:"paySuccessTime"`
}

// Trade applies with its own service token for the owner and amount it
// gives, and gets the same pay order when it asks again.
func TestApplyPaymentAppliesAsTradeForTheOwnerAndAmountItGives(t *testing.T) {
	t.Parallel()
	p := startPay(t, nil)
	c := newClient(t, p.srv.URL)
	po, created, err := c.ApplyPayment(t.Context(), application(4, 401, 2_500))
	if err != nil || !created || po.BizOrderNo != 401 || po.BizUserID != 4 || po.Amount != 2_500 || po.Status != 1 {
		t.Fatalf("ApplyPayment = %+v, created %v, %v; want a new waiting pay order of order 401, user 4, 2500", po, created, err)
	}
	again, created, err := c.ApplyPayment(t.Context(), application(4, 401, 2_500))
	if err != nil || created || again.ID != po.ID {
		t.Errorf("again = %+v, created %v, %v; want pay order %d again", again, created, err, po.ID)
	}
	bad := application(4, 402, 2_500)
	bad.PayType = 1
	if _, _, err := c.ApplyPayment(t.Context(), bad); !errors.Is(err, problem.Invalidf("")) {
		t.Errorf("another pay type: %v, want invalid_request", err)
	}
}

// wallet opens a wallet with password "123".
func (p *payService) wallet(tb testing.TB, userID, balance int64) {
	tb.Helper()
	p.mustCall(tb, http.StatusCreated, "POST", "/accounts", operatorToken(tb),
		map[string]any{"userId": userID, "password": "123", "balance": balance}, nil)
}

// application is trade's application for the pay order of bizOrderNo of userID.
func application(userID, bizOrderNo, amount int64) trade.PayApplication {
	return trade.PayApplication{BizOrderNo: bizOrderNo, BizUserID: userID, Amount: amount, PayChannelCode: "balance", PayType: 5, OrderInfo: "test"}
}

// apply applies, as an operator, for a pay order of bizOrderNo of userID.
func (p *payService) apply(tb testing.TB, userID, bizOrderNo, amount int64) testPayOrder {
	tb.Helper()
	var o testPayOrder
	p.mustCall(tb, http.StatusCreated, "POST", "/pay-orders", operatorToken(tb), map[string]any{
		"bizOrderNo": bizOrderNo, "bizUserId": userID, "amount": amount, "payChannelCode": "balance", "payType": 5,
	}, &o)
	return o
}

// pay tries, as userID, to pay the pay order with password "123".
func (p *payService) pay(tb testing.TB, userID, payOrderID int64) answer {
	tb.Helper()
	return p.call(tb, "POST", "/pay-orders/"+strconv.FormatInt(payOrderID, 10), userToken(tb, userID), map[string]string{"pw": "123"})
}

// paid applies for a pay order of bizOrderNo and pays it, as userID.
func (p *payService) paid(tb testing.TB, userID, bizOrderNo, amount int64) testPayOrder {
	tb.Helper()
	o := p.apply(tb, userID, bizOrderNo, amount)
	a := p.pay(tb, userID, o.ID)
	if a.status != http.StatusOK {
		tb.Fatalf("pay pay order %d: %d %s", o.ID, a.status, a.body)
	}
	if err := json.Unmarshal(a.body, &o); err != nil {
		tb.Fatalf("decode %s: %v", a.body, err)
	}
	return o
}

// balance is userID's balance at pay.
func (p *payService) balance(tb testing.TB, userID int64) int64 {
	tb.Helper()
	var a struct{ Balance int64 }
	p.mustCall(tb, http.StatusOK, "GET", "/accounts/me", userToken(tb, userID), nil, &a)
	return a.Balance
}

func TestPaymentForReportsAPaidPayOrder(t *testing.T) {
	t.Parallel()
	p := startPay(t, nil)
	p.wallet(t, 1, 10_000)
	o := p.paid(t, 1, 101, 2_500)

	got, found, err := newClient(t, p.srv.URL).PaymentFor(t.Context(), 101)
	if err != nil || !found {
		t.Fatalf("PaymentFor: found %v, err %v; want the payment", found, err)
	}
	want := trade.Payment{BizOrderNo: 101, PayOrderID: o.ID, UserID: 1, Amount: 2_500, PaidAt: *o.PaySuccessTime}
	if !got.PaidAt.Equal(want.PaidAt) {
		t.Errorf("PaidAt = %v, want %v", got.PaidAt, want.PaidAt)
	}
	got.PaidAt = want.PaidAt
	if got != want {
		t.Errorf("PaymentFor = %+v, want %+v", got, want)
	}
}

func TestPaymentForReportsNoPaymentForAnUnpaidOrAbsentPayOrder(t *testing.T) {
	t.Parallel()
	p := startPay(t, nil)
	c := newClient(t, p.srv.URL)
	tests := []struct {
		name       string
		bizOrderNo int64
		setUp      func(t *testing.T)
	}{
		{"waiting pay order", 201, func(t *testing.T) { p.apply(t, 2, 201, 500) }},
		{"closed pay order", 202, func(t *testing.T) {
			p.apply(t, 2, 202, 500)
			p.mustCall(t, http.StatusOK, "POST", "/pay-orders/biz/202/close", operatorToken(t), nil, nil)
		}},
		{"no pay order", 203, func(*testing.T) {}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.setUp(t)
			got, found, err := c.PaymentFor(t.Context(), tt.bizOrderNo)
			if err != nil || found {
				t.Errorf("PaymentFor = %+v, found %v, err %v; want found=false and no error", got, found, err)
			}
		})
	}
}

func TestClosePaymentClosesAndLaterPaymentIsRefused(t *testing.T) {
	t.Parallel()
	p := startPay(t, nil)
	p.wallet(t, 3, 10_000)
	o := p.apply(t, 3, 301, 1_000)
	c := newClient(t, p.srv.URL)

	if err := c.ClosePayment(t.Context(), 301); err != nil {
		t.Fatalf("ClosePayment: %v", err)
	}
	if a := p.pay(t, 3, o.ID); a.status != http.StatusConflict || a.code() != "pay_order_closed" {
		t.Errorf("paying after close: %d %s, want 409 pay_order_closed", a.status, a.body)
	}
	if _, _, err := c.ApplyPayment(t.Context(), application(3, 301, 1_000)); !errors.Is(err, trade.ErrOrderNotUnpaid) {
		t.Errorf("applying after close: %v, want %v", err, trade.ErrOrderNotUnpaid)
	}
	if got := p.balance(t, 3); got != 10_000 {
		t.Errorf("balance = %d, want 10000 untouched", got)
	}
	if _, found, err := c.PaymentFor(t.Context(), 301); err != nil || found {
		t.Errorf("PaymentFor after close: found %v, err %v; want not found", found, err)
	}
}

func TestClosePaymentOfAPaidOrderSaysPaidAtPay(t *testing.T) {
	t.Parallel()
	p := startPay(t, nil)
	p.wallet(t, 4, 10_000)
	p.paid(t, 4, 401, 1_000)
	c := newClient(t, p.srv.URL)

	err := c.ClosePayment(t.Context(), 401)
	if !errors.Is(err, trade.ErrPaidAtPay) {
		t.Fatalf("ClosePayment = %v, want ErrPaidAtPay", err)
	}
	if IsUnavailable(err) {
		t.Errorf("IsUnavailable(%v) = true for a definite answer", err)
	}
	if _, found, err := c.PaymentFor(t.Context(), 401); err != nil || !found {
		t.Errorf("PaymentFor after refused close: found %v, err %v; want the payment", found, err)
	}
}

func TestClosePaymentTwiceOrWithoutPayOrderIsFine(t *testing.T) {
	t.Parallel()
	p := startPay(t, nil)
	p.wallet(t, 5, 10_000)
	c := newClient(t, p.srv.URL)
	tests := []struct {
		name       string
		bizOrderNo int64
		applied    bool
	}{
		{"waiting pay order", 501, true},
		{"no pay order", 502, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o testPayOrder
			if tt.applied {
				o = p.apply(t, 5, tt.bizOrderNo, 700)
			}
			for i := range 2 {
				if err := c.ClosePayment(t.Context(), tt.bizOrderNo); err != nil {
					t.Fatalf("close #%d: %v", i+1, err)
				}
			}
			// Either way the order must now be unpayable.
			if tt.applied {
				if a := p.pay(t, 5, o.ID); a.status != http.StatusConflict || a.code() != "pay_order_closed" {
					t.Errorf("after closing: %d %s, want 409 pay_order_closed", a.status, a.body)
				}
			} else if _, _, err := c.ApplyPayment(t.Context(), application(5, tt.bizOrderNo, 700)); !errors.Is(err, trade.ErrOrderNotUnpaid) {
				t.Errorf("after closing: %v, want %v", err, trade.ErrOrderNotUnpaid)
			}
		})
	}
}

// fakePay is a server that answers every request with status and body: for
// faults the real pay cannot be made to produce.
func fakePay(tb testing.TB, status int, body string) string {
	tb.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	tb.Cleanup(srv.Close)
	return srv.URL
}

// stalledPay is a server that never answers until the client gives up.
func stalledPay(tb testing.TB) string {
	tb.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	tb.Cleanup(srv.Close)
	return srv.URL
}

// closedAddress is the URL of a port nothing listens on any more.
func closedAddress(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		tb.Fatal(err)
	}
	return "http://" + addr
}

func TestPayUnreachableIsUnavailable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		baseURL func(testing.TB) string
	}{
		{"nothing listening", closedAddress},
		{"slower than the timeout", stalledPay},
		{"503", func(tb testing.TB) string {
			return fakePay(tb, http.StatusServiceUnavailable, `{"code":"unavailable","message":"database down"}`)
		}},
		{"502 from a proxy", func(tb testing.TB) string { return fakePay(tb, http.StatusBadGateway, "<html>bad gateway</html>") }},
		{"504 from a proxy", func(tb testing.TB) string { return fakePay(tb, http.StatusGatewayTimeout, "") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := New(Config{BaseURL: tt.baseURL(t), Signer: keys.Signer(auth.IssuerTrade), Timeout: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			_, found, err := c.PaymentFor(t.Context(), 601)
			if found || !IsUnavailable(err) || !errors.Is(err, trade.ErrPayUnavailable) {
				t.Errorf("PaymentFor: found %v, err %v; want an unavailable error", found, err)
			}
			err = c.ClosePayment(t.Context(), 601)
			if !IsUnavailable(err) || errors.Is(err, trade.ErrPaidAtPay) {
				t.Errorf("ClosePayment = %v, want an unavailable error", err)
			}
		})
	}
}

func TestCallerGivingUpIsNotUnavailability(t *testing.T) {
	t.Parallel()
	c := newClient(t, stalledPay(t))
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel)

	_, _, err := c.PaymentFor(ctx, 701)
	if !errors.Is(err, context.Canceled) || IsUnavailable(err) {
		t.Errorf("PaymentFor = %v, want context.Canceled and not unavailable", err)
	}
}

func TestMisconfigurationSurfacesAsAnError(t *testing.T) {
	t.Parallel()
	p := startPay(t, nil)
	p.wallet(t, 8, 10_000)
	p.paid(t, 8, 801, 1_000)
	tests := []struct {
		name string
		cfg  Config
	}{
		{"another key set's trade key (401)", Config{BaseURL: p.srv.URL, Signer: authtest.New(t).Signer(auth.IssuerTrade)}},
		{"pay's key, which may not sign for pay (401)", Config{BaseURL: p.srv.URL, Signer: keys.Signer(auth.IssuerPay)}},
		// chi's bare "404 page not found" must not read as "no pay order".
		{"wrong base path (bare 404)", Config{BaseURL: p.srv.URL + "/v1", Signer: keys.Signer(auth.IssuerTrade)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, found, err := c.PaymentFor(t.Context(), 801)
			if err == nil || found || IsUnavailable(err) {
				t.Errorf("PaymentFor: found %v, err %v; want a plain error", found, err)
			}
			// The order is paid: only a refusal from pay itself may say so.
			err = c.ClosePayment(t.Context(), 801)
			if err == nil || errors.Is(err, trade.ErrPaidAtPay) || IsUnavailable(err) {
				t.Errorf("ClosePayment = %v, want a plain error", err)
			}
		})
	}
}

func TestPaymentForRefusesAnAnswerItCannotTrust(t *testing.T) {
	t.Parallel()
	paid := `"id":9,"bizUserId":1,"amount":100,"status":3`
	tests := []struct {
		name   string
		status int
		body   string
	}{
		{"not JSON", http.StatusOK, "<html>hello</html>"},
		{"empty object", http.StatusOK, "{}"},
		{"paid without paySuccessTime", http.StatusOK, `{"bizOrderNo":901,` + paid + `,"paySuccessTime":null}`},
		{"another order's pay order", http.StatusOK, `{"bizOrderNo":902,` + paid + `,"paySuccessTime":"2026-01-02T03:04:05Z"}`},
		{"unknown pay order status", http.StatusOK, `{"bizOrderNo":901,"id":9,"status":7}`},
		{"internal error", http.StatusInternalServerError, `{"code":"internal","message":"internal error"}`},
		{"forbidden", http.StatusForbidden, `{"code":"forbidden","message":"only services may do this"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newClient(t, fakePay(t, tt.status, tt.body))
			_, found, err := c.PaymentFor(t.Context(), 901)
			if err == nil || found || IsUnavailable(err) {
				t.Errorf("PaymentFor: found %v, err %v; want a plain error", found, err)
			}
			if err != nil && !strings.Contains(err.Error(), "order 901") {
				t.Errorf("error %q does not name the order", err)
			}
		})
	}
}

// seen records headers of the requests that reach pay.
type seen struct {
	mu      sync.Mutex
	headers []http.Header
}

func (s *seen) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.headers = append(s.headers, r.Header.Clone())
		s.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

// last returns the headers of the latest request.
func (s *seen) last(tb testing.TB) http.Header {
	tb.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.headers) == 0 {
		tb.Fatal("no request reached pay")
	}
	return s.headers[len(s.headers)-1]
}

func TestCorrelationIDIsForwarded(t *testing.T) {
	t.Parallel()
	var s seen
	p := startPay(t, s.wrap)
	c := newClient(t, p.srv.URL)
	tests := []struct {
		name string
		id   string
		call func(ctx context.Context) error
	}{
		{"PaymentFor", "corr-payment-for", func(ctx context.Context) error { _, _, err := c.PaymentFor(ctx, 1001); return err }},
		{"ClosePayment", "corr-close", func(ctx context.Context) error { return c.ClosePayment(ctx, 1002) }},
		{"no id to forward", "", func(ctx context.Context) error { _, _, err := c.PaymentFor(ctx, 1003); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := t.Context()
			if tt.id != "" {
				ctx = correlation.WithID(ctx, tt.id)
			}
			if err := tt.call(ctx); err != nil {
				t.Fatal(err)
			}
			h := s.last(t)
			if got := h.Get(correlation.Header); got != tt.id {
				t.Errorf("%s = %q, want %q", correlation.Header, got, tt.id)
			}
			if got := h.Get("Accept"); got != "application/json" {
				t.Errorf("Accept = %q, want application/json", got)
			}
			if got := h.Get("User-Agent"); got != "paytrade-trade" {
				t.Errorf("User-Agent = %q, want paytrade-trade", got)
			}
		})
	}
}

func TestServiceTokenIsRenewedBeforeItExpires(t *testing.T) {
	t.Parallel()
	var s seen
	p := startPay(t, s.wrap)
	c := newClient(t, p.srv.URL)
	// pay checks expiry by its own clock; starting now keeps every token
	// this clock mints valid there.
	start := time.Now()
	clock := start
	c.peer.Now = func() time.Time { return clock }

	var tokens []string
	for _, elapsed := range []time.Duration{0, 3 * time.Minute, 4*time.Minute + 30*time.Second} {
		clock = start.Add(elapsed)
		if _, _, err := c.PaymentFor(t.Context(), 1101); err != nil {
			t.Fatalf("after %v: %v", elapsed, err)
		}
		tokens = append(tokens, s.last(t).Get("Authorization"))
	}
	if tokens[0] != tokens[1] {
		t.Error("token re-minted while it had minutes left")
	}
	if tokens[1] == tokens[2] {
		t.Error("token not re-minted with less than a minute left")
	}
}

func TestNewRejectsAnInvalidConfig(t *testing.T) {
	t.Parallel()
	good := Config{BaseURL: "http://127.0.0.1:8086", Signer: keys.Signer(auth.IssuerTrade)}
	tests := []struct {
		name   string
		change func(*Config)
	}{
		{"empty base URL", func(c *Config) { c.BaseURL = "" }},
		{"relative base URL", func(c *Config) { c.BaseURL = "pay:8086" }},
		{"host only", func(c *Config) { c.BaseURL = "127.0.0.1:8086" }},
		{"not http", func(c *Config) { c.BaseURL = "ftp://127.0.0.1:8086" }},
		{"no host", func(c *Config) { c.BaseURL = "http:///pay" }},
		{"user info", func(c *Config) { c.BaseURL = "http://u:p@127.0.0.1:8086" }},
		{"query", func(c *Config) { c.BaseURL = "http://127.0.0.1:8086?x=1" }},
		{"no signing key", func(c *Config) { c.Signer = nil }},
		{"negative timeout", func(c *Config) { c.Timeout = -time.Second }},
	}
	if _, err := New(good); err != nil {
		t.Fatalf("New(%+v): %v", good, err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.change(&cfg)
			if c, err := New(cfg); err == nil {
				t.Errorf("New(%+v) = %v, want an error", cfg, c)
			}
		})
	}
}

func TestPaymentsForAsksPayAboutABatchInOneCall(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	p := startPay(t, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			h.ServeHTTP(w, r)
		})
	})
	p.wallet(t, 1, 10_000)
	paid := p.paid(t, 1, 101, 2_500)
	p.apply(t, 1, 102, 500)
	before := calls.Load()

	got, err := newClient(t, p.srv.URL).PaymentsFor(t.Context(), []int64{101, 102, 103})
	if err != nil {
		t.Fatal(err)
	}
	if n := calls.Load() - before; n != 1 {
		t.Errorf("%d calls to pay for 3 orders, want 1", n)
	}
	if len(got) != 1 || got[101].PayOrderID != paid.ID || got[101].Amount != 2_500 {
		t.Errorf("PaymentsFor = %+v, want only the payment of order 101 (pay order %d)", got, paid.ID)
	}
}
