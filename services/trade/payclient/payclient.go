// Package payclient is trade's HTTP client of the pay service.
package payclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/paytrade/paytrade/internal/auth"
	"github.com/paytrade/paytrade/internal/peer"
	"github.com/paytrade/paytrade/internal/problem"
	"github.com/paytrade/paytrade/services/trade"
)

// DefaultTimeout bounds one request to pay when Config.Timeout is zero.
const DefaultTimeout = peer.DefaultTimeout

// Pay order states on pay's wire, as in docs/design.md. They are spelled out here
// rather than imported so trade depends on pay's API, not on its code.
const (
	payOrderNotCommitted = 0
	payOrderWaiting      = 1
	payOrderClosed       = 2
	payOrderPaid         = 3
	payOrderRefunded     = 4
)

// The refusal codes of pay that this client acts on.
const (
	codePayOrderNotFound = "pay_order_not_found"
	codeAlreadyPaid      = "already_paid"
	codeRefundNotFound   = "refund_not_found"
	codePayOrderClosed   = "pay_order_closed"
)

// Config is how to reach pay: its URL (e.g. http://127.0.0.1:8086) and
// trade's own key, to mint its service tokens for pay.
type Config = peer.Endpoint

// Client asks pay about and closes the payments of trade's orders.
type Client struct {
	peer *peer.Client
}

var _ trade.PayGateway = (*Client)(nil)

// New returns a client of the pay service at cfg.BaseURL.
func New(cfg Config) (*Client, error) {
	p, err := peer.New(peer.Config{
		Endpoint: cfg, Name: "pay", Subject: "trade", Audience: auth.AudiencePay, Unavailable: trade.ErrPayUnavailable,
	})
	if err != nil {
		return nil, err
	}
	return &Client{peer: p}, nil
}

// IsUnavailable reports whether err means pay could not be reached, did not
// answer in time, or answered 502, 503 or 504: worth trying again later.
// Such errors also match trade.ErrPayUnavailable with errors.Is.
func IsUnavailable(err error) bool {
	return errors.Is(err, trade.ErrPayUnavailable)
}

// payOrder is the part of pay's pay order body that trade reads.
type payOrder struct {
	ID             int64      `json:"id"`
	BizOrderNo     int64      `json:"bizOrderNo"`
	BizUserID      int64      `json:"bizUserId"`
	Amount         int64      `json:"amount"`
	Status         int        `json:"status"`
	PaySuccessTime *time.Time `json:"paySuccessTime"`
}

// PaymentFor returns the successful payment of bizOrderNo, or found=false
// if its pay order is not paid or there is none.
func (c *Client) PaymentFor(ctx context.Context, bizOrderNo int64) (trade.Payment, bool, error) {
	p, found, err := c.paymentFor(ctx, bizOrderNo)
	if err != nil {
		return trade.Payment{}, false, fmt.Errorf("ask pay about order %d: %w", bizOrderNo, err)
	}
	return p, found, nil
}

func (c *Client) paymentFor(ctx context.Context, bizOrderNo int64) (trade.Payment, bool, error) {
	status, body, err := c.do(ctx, http.MethodGet, c.peer.URL("pay-orders", "biz", strconv.FormatInt(bizOrderNo, 10)))
	if err != nil {
		return trade.Payment{}, false, err
	}
	switch {
	case status == http.StatusOK:
	// Only pay's own refusal means "no pay order": a bare 404 from a wrong
	// BaseURL must not read as "not paid".
	case status == http.StatusNotFound && refusalCode(body) == codePayOrderNotFound:
		return trade.Payment{}, false, nil
	default:
		return trade.Payment{}, false, c.answerError(status, body)
	}

	var o payOrder
	if err := json.Unmarshal(body, &o); err != nil {
		return trade.Payment{}, false, fmt.Errorf("decode pay order: %w", err)
	}
	// What trade does with the answer can mark an order paid, so an answer
	// that is not plainly about this order is refused rather than guessed at.
	if o.BizOrderNo != bizOrderNo {
		return trade.Payment{}, false, fmt.Errorf("pay answered with a pay order of order %d", o.BizOrderNo)
	}
	return o.payment()
}

// PaymentsFor returns the successful payments of the business orders, by
// business order number, asking pay about all of them in one call.
func (c *Client) PaymentsFor(ctx context.Context, bizOrderNos []int64) (map[int64]trade.Payment, error) {
	payments, err := c.paymentsFor(ctx, bizOrderNos)
	if err != nil {
		return nil, fmt.Errorf("ask pay about %d orders: %w", len(bizOrderNos), err)
	}
	return payments, nil
}

func (c *Client) paymentsFor(ctx context.Context, bizOrderNos []int64) (map[int64]trade.Payment, error) {
	req, err := json.Marshal(struct {
		BizOrderNos []int64 `json:"bizOrderNos"`
	}{bizOrderNos})
	if err != nil {
		return nil, fmt.Errorf("encode query: %w", err)
	}
	status, body, err := c.send(ctx, http.MethodPost, c.peer.URL("pay-orders", "biz", "query"), req)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, c.answerError(status, body)
	}
	var answer struct {
		PayOrders []payOrder `json:"payOrders"`
	}
	if err := json.Unmarshal(body, &answer); err != nil {
		return nil, fmt.Errorf("decode pay orders: %w", err)
	}
	asked := make(map[int64]bool, len(bizOrderNos))
	for _, biz := range bizOrderNos {
		asked[biz] = true
	}
	payments := map[int64]trade.Payment{}
	for _, o := range answer.PayOrders {
		if !asked[o.BizOrderNo] {
			return nil, fmt.Errorf("pay answered with a pay order of order %d, not asked about", o.BizOrderNo)
		}
		p, paid, err := o.payment()
		if err != nil {
			return nil, err
		}
		if paid {
			payments[o.BizOrderNo] = p
		}
	}
	return payments, nil
}

// payment is the successful payment o records, if it is paid.
func (o payOrder) payment() (trade.Payment, bool, error) {
	switch o.Status {
	// A refunded payment is one whose money went back: nothing to apply.
	case payOrderNotCommitted, payOrderWaiting, payOrderClosed, payOrderRefunded:
		return trade.Payment{}, false, nil
	case payOrderPaid:
	default:
		return trade.Payment{}, false, fmt.Errorf("pay order %d has unknown status %d", o.ID, o.Status)
	}
	if o.PaySuccessTime == nil {
		return trade.Payment{}, false, fmt.Errorf("paid pay order %d has no paySuccessTime", o.ID)
	}
	return trade.Payment{
		BizOrderNo: o.BizOrderNo,
		PayOrderID: o.ID,
		UserID:     o.BizUserID,
		Amount:     o.Amount,
		PaidAt:     *o.PaySuccessTime,
	}, true, nil
}

// ApplyPayment returns the order's pay order at pay, created unless it
// existed, for the owner and amount trade gives.
func (c *Client) ApplyPayment(ctx context.Context, a trade.PayApplication) (trade.PayOrder, bool, error) {
	po, created, err := c.applyPayment(ctx, a)
	if err != nil {
		return trade.PayOrder{}, false, fmt.Errorf("apply at pay for order %d: %w", a.BizOrderNo, err)
	}
	return po, created, nil
}

func (c *Client) applyPayment(ctx context.Context, a trade.PayApplication) (trade.PayOrder, bool, error) {
	body, err := json.Marshal(struct {
		BizOrderNo     int64  `json:"bizOrderNo"`
		BizUserID      int64  `json:"bizUserId"`
		Amount         int64  `json:"amount"`
		PayChannelCode string `json:"payChannelCode"`
		PayType        int    `json:"payType"`
		OrderInfo      string `json:"orderInfo"`
	}{a.BizOrderNo, a.BizUserID, a.Amount, a.PayChannelCode, a.PayType, a.OrderInfo})
	if err != nil {
		return trade.PayOrder{}, false, fmt.Errorf("encode application: %w", err)
	}
	status, answer, err := c.send(ctx, http.MethodPost, c.peer.URL("pay-orders"), body)
	switch {
	case err != nil:
		return trade.PayOrder{}, false, err
	case status == http.StatusOK, status == http.StatusCreated:
	case status == http.StatusConflict && refusalCode(answer) == codePayOrderClosed:
		return trade.PayOrder{}, false, trade.ErrOrderNotUnpaid
	case status == http.StatusBadRequest:
		// The owner's channel or pay type, which trade passes on as it got them.
		return trade.PayOrder{}, false, problem.Invalidf(peer.RefusalOf(answer).Message)
	default:
		return trade.PayOrder{}, false, c.answerError(status, answer)
	}
	var po trade.PayOrder
	if err := json.Unmarshal(answer, &po); err != nil {
		return trade.PayOrder{}, false, fmt.Errorf("decode pay order: %w", err)
	}
	if po.BizOrderNo != a.BizOrderNo || po.BizUserID != a.BizUserID || po.Amount != a.Amount {
		return trade.PayOrder{}, false, fmt.Errorf("pay answered with pay order %d of order %d, user %d, amount %d",
			po.ID, po.BizOrderNo, po.BizUserID, po.Amount)
	}
	return po, status == http.StatusCreated, nil
}

// ClosePayment makes bizOrderNo unpayable at pay, whether or not it has a
// pay order, and returns an error matching trade.ErrPaidAtPay if it has
// been paid already.
func (c *Client) ClosePayment(ctx context.Context, bizOrderNo int64) error {
	if err := c.closePayment(ctx, bizOrderNo); err != nil {
		return fmt.Errorf("close payment of order %d at pay: %w", bizOrderNo, err)
	}
	return nil
}

func (c *Client) closePayment(ctx context.Context, bizOrderNo int64) error {
	status, body, err := c.do(ctx, http.MethodPost, c.peer.URL("pay-orders", "biz", strconv.FormatInt(bizOrderNo, 10), "close"))
	switch {
	case err != nil:
		return err
	case status == http.StatusOK:
		return nil
	case status == http.StatusConflict && refusalCode(body) == codeAlreadyPaid:
		return trade.ErrPaidAtPay
	}
	return c.answerError(status, body)
}

// refund is pay's answer about a refund.
type refund struct {
	RefundID   uuid.UUID `json:"refundId"`
	BizOrderNo int64     `json:"bizOrderNo"`
	PayOrderID *int64    `json:"payOrderId"`
	UserID     int64     `json:"userId"`
	Amount     int64     `json:"amount"`
	Outcome    string    `json:"outcome"`
	Rejection  string    `json:"rejection"`
	// RefundedTotal is the pay order's credits, this one included.
	RefundedTotal int64      `json:"refundedTotal"`
	RefundedAt    *time.Time `json:"refundedAt"`
}

// RefundVerdict asks pay what it decided about the refund id: credited,
// rejected, or nothing yet because its refund.requested has not reached it.
func (c *Client) RefundVerdict(ctx context.Context, id uuid.UUID) (trade.RefundVerdict, error) {
	v, err := c.refundVerdict(ctx, id)
	if err != nil {
		return trade.RefundVerdict{}, fmt.Errorf("ask pay about refund %s: %w", id, err)
	}
	return v, nil
}

func (c *Client) refundVerdict(ctx context.Context, id uuid.UUID) (trade.RefundVerdict, error) {
	status, body, err := c.do(ctx, http.MethodGet, c.peer.URL("refunds", id.String()))
	switch {
	case err != nil:
		return trade.RefundVerdict{}, err
	case status == http.StatusNotFound && refusalCode(body) == codeRefundNotFound:
		return trade.RefundVerdict{}, nil
	case status != http.StatusOK:
		return trade.RefundVerdict{}, c.answerError(status, body)
	}
	return decodeVerdict(id, body)
}

// DecideRefund has pay decide r now: what the fallback does for a refund
// whose refund.requested has not reached pay, so it arrives within a cron
// period even while the broker is away. pay decides a refund id once,
// whichever way it comes first.
func (c *Client) DecideRefund(ctx context.Context, r trade.Refund) (trade.RefundVerdict, error) {
	v, err := c.decideRefund(ctx, r)
	if err != nil {
		return trade.RefundVerdict{}, fmt.Errorf("have pay decide refund %s: %w", r.ID, err)
	}
	return v, nil
}

func (c *Client) decideRefund(ctx context.Context, r trade.Refund) (trade.RefundVerdict, error) {
	body, err := json.Marshal(r.Requested())
	if err != nil {
		return trade.RefundVerdict{}, fmt.Errorf("encode refund request: %w", err)
	}
	status, answer, err := c.send(ctx, http.MethodPost, c.peer.URL("refunds"), body)
	switch {
	case err != nil:
		return trade.RefundVerdict{}, err
	case status != http.StatusOK:
		return trade.RefundVerdict{}, c.answerError(status, answer)
	}
	v, err := decodeVerdict(r.ID, answer)
	if err == nil && !v.Decided {
		err = fmt.Errorf("pay answered refund %s undecided", r.ID)
	}
	return v, err
}

// decodeVerdict reads pay's decision about refund id. What trade does with
// it can mark an order refunded, so an answer that is not plainly about
// this refund is refused rather than guessed at.
func decodeVerdict(id uuid.UUID, body []byte) (trade.RefundVerdict, error) {
	var r refund
	if err := json.Unmarshal(body, &r); err != nil {
		return trade.RefundVerdict{}, fmt.Errorf("decode refund: %w", err)
	}
	if r.RefundID != id {
		return trade.RefundVerdict{}, fmt.Errorf("pay answered with refund %s", r.RefundID)
	}
	switch r.Outcome {
	case "rejected":
		if r.Rejection == "" {
			return trade.RefundVerdict{}, fmt.Errorf("rejected refund %s has no rejection", id)
		}
		return trade.RefundVerdict{Decided: true, Rejection: r.Rejection}, nil
	case "refunded":
	default:
		return trade.RefundVerdict{}, fmt.Errorf("refund %s has unknown outcome %q", id, r.Outcome)
	}
	if r.PayOrderID == nil || r.RefundedAt == nil {
		return trade.RefundVerdict{}, fmt.Errorf("refunded refund %s lacks payOrderId or refundedAt", id)
	}
	credit := trade.RefundCredit{RefundID: r.RefundID, BizOrderNo: r.BizOrderNo, PayOrderID: *r.PayOrderID,
		UserID: r.UserID, Amount: r.Amount, RefundedTotal: r.RefundedTotal, RefundedAt: *r.RefundedAt}
	if err := credit.Validate(); err != nil {
		return trade.RefundVerdict{}, err
	}
	return trade.RefundVerdict{Decided: true, Credit: &credit}, nil
}

// do sends a bodiless request as trade and returns pay's status and body.
func (c *Client) do(ctx context.Context, method string, u *url.URL) (int, []byte, error) {
	return c.peer.Send(ctx, method, u, nil)
}

// send sends a request with a JSON body as trade and returns pay's status and body.
func (c *Client) send(ctx context.Context, method string, u *url.URL, body []byte) (int, []byte, error) {
	return c.peer.Send(ctx, method, u, body)
}

// refusalCode returns the code of pay's error body, or "" if it is not one.
func refusalCode(body []byte) string { return peer.RefusalOf(body).Code }

// answerError describes an answer this client does not expect.
func (c *Client) answerError(status int, body []byte) error { return c.peer.AnswerError(status, body) }
