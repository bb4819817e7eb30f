// Package tradeclient is pay's HTTP client of the trade service: what pay
// asks trade before it acts on a service token's word.
package tradeclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/google/uuid"

	"github.com/paytrade/paytrade/internal/auth"
	"github.com/paytrade/paytrade/internal/peer"
	"github.com/paytrade/paytrade/services/pay"
)

// codeOrderNotFound is trade's refusal of an order it does not hold.
const codeOrderNotFound = "order_not_found"

// refundRequested is a refund's status on trade's wire while trade waits
// for pay's decision, spelled out so pay depends on trade's API, not its code.
const refundRequested = "requested"

// Config is how to reach trade: its URL (e.g. http://127.0.0.1:8085) and
// pay's own key, to mint its service tokens for trade.
type Config = peer.Endpoint

// Client asks trade which orders and refunds it issued.
type Client struct {
	peer *peer.Client
}

var _ pay.Trade = (*Client)(nil)

// New returns a client of the trade service at cfg.BaseURL.
func New(cfg Config) (*Client, error) {
	p, err := peer.New(peer.Config{
		Endpoint: cfg, Name: "trade", Subject: "pay", Audience: auth.AudienceTrade, Unavailable: pay.ErrTradeUnavailable,
	})
	if err != nil {
		return nil, err
	}
	return &Client{peer: p}, nil
}

// order is the part of trade's order body that pay reads.
type order struct {
	ID       int64 `json:"id"`
	UserID   int64 `json:"userId"`
	TotalFee int64 `json:"totalFee"`
}

// Order returns trade's order bizOrderNo, or found=false if trade has none.
func (c *Client) Order(ctx context.Context, bizOrderNo int64) (pay.IssuedOrder, bool, error) {
	var o order
	found, err := c.get(ctx, bizOrderNo, &o)
	if err != nil || !found {
		return pay.IssuedOrder{}, found, err
	}
	return pay.IssuedOrder{ID: o.ID, UserID: o.UserID, TotalFee: o.TotalFee}, true, nil
}

// refund is the part of trade's refund body that pay reads.
type refund struct {
	ID      uuid.UUID `json:"refundId"`
	OrderID int64     `json:"orderId"`
	Amount  int64     `json:"amount"`
	Reason  string    `json:"reason"`
	Status  string    `json:"status"`
}

// Refunds returns the refunds trade recorded for order bizOrderNo, or
// found=false if trade has no such order.
func (c *Client) Refunds(ctx context.Context, bizOrderNo int64) ([]pay.RequestedRefund, bool, error) {
	var listed []refund
	found, err := c.get(ctx, bizOrderNo, &listed, "refunds")
	if err != nil || !found {
		return nil, found, err
	}
	refunds := make([]pay.RequestedRefund, len(listed))
	for i, r := range listed {
		refunds[i] = pay.RequestedRefund{ID: r.ID, OrderID: r.OrderID, Amount: r.Amount, Reason: r.Reason, Requested: r.Status == refundRequested}
	}
	return refunds, true, nil
}

// get reads /orders/{bizOrderNo}/elem… into v; found is false when trade
// has no such order.
func (c *Client) get(ctx context.Context, bizOrderNo int64, v any, elem ...string) (bool, error) {
	if bizOrderNo <= 0 {
		return false, nil // trade numbers its orders from 1
	}
	u := c.peer.URL(append([]string{"orders", strconv.FormatInt(bizOrderNo, 10)}, elem...)...)
	status, body, err := c.peer.Send(ctx, http.MethodGet, u, nil)
	switch {
	case err != nil:
		return false, fmt.Errorf("ask trade about order %d: %w", bizOrderNo, err)
	// Only trade's own refusal means "no such order": a bare 404 from a
	// wrong base URL must not read as one.
	case status == http.StatusNotFound && peer.RefusalOf(body).Code == codeOrderNotFound:
		return false, nil
	case status != http.StatusOK:
		return false, fmt.Errorf("ask trade about order %d: %w", bizOrderNo, c.peer.AnswerError(status, body))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return false, fmt.Errorf("ask trade about order %d: decode answer: %w", bizOrderNo, err)
	}
	return true, nil
}
