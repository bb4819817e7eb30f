package systest

import (
	"fmt"
	"net/http"
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
