package systest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Services are the base URLs of one pay and one trade of a system.
type Services struct {
	Pay, Trade string
}

// OpenWallet creates user's wallet at pay with a balance and the payment
// password "123".
func (c *Client) OpenWallet(payURL, operatorToken string, user, balance int64) error {
	return c.Call(http.MethodPost, payURL+"/accounts", operatorToken,
		fmt.Sprintf(`{"userId":%d,"password":"123","balance":%d}`, user, balance), http.StatusCreated, nil)
}

// CreateOrder creates an unpaid order of fee cents for the user of token
// and returns its id.
func (c *Client) CreateOrder(tradeURL, token string, fee int64) (int64, error) {
	var o struct{ ID int64 }
	err := c.Call(http.MethodPost, tradeURL+"/orders", token, fmt.Sprintf(`{"totalFee":%d,"paymentType":3}`, fee), http.StatusCreated, &o)
	return o.ID, err
}

// CreatePayOrder gets the pay order of the order (of fee cents, of the user
// of token) as a client does: trade applies at pay for the order's owner
// and total. It returns the pay order's id. Every suite creates pay orders
// through here and only here.
func (c *Client) CreatePayOrder(svc Services, token string, orderID, fee int64) (int64, error) {
	var po struct{ ID, Amount int64 }
	err := c.Call(http.MethodPost, fmt.Sprintf("%s/orders/%d/pay-order", svc.Trade, orderID), token,
		`{"payChannelCode":"balance","payType":5}`, http.StatusCreated, &po)
	if err == nil && po.Amount != fee {
		err = fmt.Errorf("pay order %d of order %d is for %d, want %d", po.ID, orderID, po.Amount, fee)
	}
	return po.ID, err
}

// Order creates an order and its pay order, and returns both ids.
func (c *Client) Order(svc Services, token string, fee int64) (orderID, payOrderID int64, err error) {
	if orderID, err = c.CreateOrder(svc.Trade, token, fee); err != nil {
		return 0, 0, err
	}
	payOrderID, err = c.CreatePayOrder(svc, token, orderID, fee)
	return orderID, payOrderID, err
}

// PayURL is where the buyer pays the pay order.
func PayURL(payURL string, payOrderID int64) string {
	return fmt.Sprintf("%s/pay-orders/%d", payURL, payOrderID)
}

// Pay pays the pay order with the password "123" and wants 200.
func (c *Client) Pay(payURL, token string, payOrderID int64) error {
	return c.Call(http.MethodPost, PayURL(payURL, payOrderID), token, `{"pw":"123"}`, http.StatusOK, nil)
}

// PayRetrying pays the pay order under idempotencyKey as a careful client
// does through a database failover: a 503 (commit outcome unknown, database
// unavailable) must carry Retry-After, and the same request is sent again
// after it, until pay answers 200 or ctx ends. Any other answer is an
// error. It returns how many 503s it met.
func (c *Client) PayRetrying(ctx context.Context, payURL, token string, payOrderID int64, idempotencyKey string) (int, error) {
	unavailable := 0
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, PayURL(payURL, payOrderID), strings.NewReader(`{"pw":"123"}`))
		if err != nil {
			return unavailable, err
		}
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", idempotencyKey)
		wait := 200 * time.Millisecond
		res, err := c.HTTP.Do(req)
		if err == nil {
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			switch {
			case res.StatusCode == http.StatusOK:
				return unavailable, nil
			case res.StatusCode != http.StatusServiceUnavailable:
				return unavailable, fmt.Errorf("pay %d: %d %s, want 200 or 503", payOrderID, res.StatusCode, body)
			}
			secs, perr := strconv.Atoi(res.Header.Get("Retry-After"))
			if perr != nil || secs <= 0 {
				return unavailable, fmt.Errorf("pay %d: 503 %s without a Retry-After in seconds (%q)", payOrderID, body, res.Header.Get("Retry-After"))
			}
			unavailable++
			// Asked to wait whole seconds; a quarter of that keeps the
			// measurement of a failover fine-grained without hammering.
			wait = time.Duration(secs) * time.Second / 4
		}
		select {
		case <-ctx.Done():
			return unavailable, fmt.Errorf("pay %d: still not paid: %w (last error %v)", payOrderID, ctx.Err(), err)
		case <-time.After(wait):
		}
	}
}
