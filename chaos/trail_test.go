package chaos

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paytrade/paytrade/services/trade"
)

// refundTrail is what the buyer of one paid order saw of its refunds: every
// request and every answer to it, and what trade listed at the end. The
// table counts the orders whose trail is judged inconsistent; the test log
// shows the first few in full, beside what both databases finally hold.
type refundTrail struct {
	orderID, payOrderID, total int64
	asks                       []*refundAsk
	listed                     []listedRefund // trade's list to the owner once every request was answered; nil if not asked
	why                        string         // "" while consistent
}

// refundAsk is one refund request with its retries.
type refundAsk struct {
	what   string // "piece k", "what remains", "whole, ask k"
	amount int64  // asked for; 0 for what remains or a whole refund
	key    string // Idempotency-Key; "" without one

	mu      sync.Mutex
	answers []httpAnswer

	// How it ended, for the judgement.
	final    bool   // answered 202 or refused for want of what remains
	lost     bool   // an attempt's answer was lost: it may have made a refund
	refundID string // the refund of its 202
	got      int64  // that refund's amount
}

// ask adds a request to the trail.
func (tr *refundTrail) ask(what string, amount int64, key string) *refundAsk {
	a := &refundAsk{what: what, amount: amount, key: key}
	tr.asks = append(tr.asks, a)
	return a
}

// httpAnswer is one attempt of a request and what came back.
type httpAnswer struct {
	at       time.Duration // since the scenario began
	status   int           // 0: no answer
	code     string        // the body's error code, if any
	refundID string        // the refund of a 202
	amount   int64         // its amount
	err      string        // why no answer came
}

// record notes the answer to one attempt sent at sent.
func (a *refundAsk) record(began, sent time.Time, status int, r refundAnswer, decoded bool, err error) {
	h := httpAnswer{at: sent.Sub(began), status: status}
	switch {
	case err != nil:
		h.err = shortError(err)
	case decoded:
		h.code, h.refundID, h.amount = r.Code, r.RefundID, r.Amount
	default:
		h.code = "(body not JSON)"
	}
	a.mu.Lock()
	a.answers = append(a.answers, h)
	a.mu.Unlock()
}

// refundAnswer is the body of an answer to a refund request: a refund, or
// a refusal's code.
type refundAnswer struct {
	RefundID string `json:"refundId"`
	Amount   int64  `json:"amount"`
	Code     string `json:"code"`
}

// shortError is err without the method and URL the client puts first.
func shortError(err error) string {
	var u *url.Error
	if errors.As(err, &u) {
		return u.Err.Error()
	}
	return err.Error()
}

func (h httpAnswer) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%6.2fs ", h.at.Seconds())
	switch {
	case h.err != "":
		b.WriteString("no answer: " + h.err)
	case h.refundID != "":
		fmt.Fprintf(&b, "%d refund %s of %d", h.status, h.refundID, h.amount)
	default:
		fmt.Fprintf(&b, "%d %s", h.status, h.code)
	}
	return b.String()
}

// String is the trail as the buyer saw it, one request per paragraph.
func (tr *refundTrail) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "order %d (pay order %d, total %d): %s\n", tr.orderID, tr.payOrderID, tr.total, tr.why)
	for _, a := range tr.asks {
		fmt.Fprintf(&b, "  %s", a.what)
		if a.amount > 0 {
			fmt.Fprintf(&b, " of %d", a.amount)
		}
		if a.key != "" {
			fmt.Fprintf(&b, ", Idempotency-Key %s", a.key)
		}
		a.mu.Lock()
		fmt.Fprintf(&b, ", %d attempts:\n", len(a.answers))
		for _, h := range a.answers {
			fmt.Fprintf(&b, "    %s\n", h)
		}
		a.mu.Unlock()
	}
	if tr.listed != nil {
		b.WriteString("  trade listed to the buyer:")
		for _, l := range tr.listed {
			fmt.Fprintf(&b, " %s of %d;", l.RefundID, l.Amount)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// heldFor is what trade and pay hold of the order's refunds, read from
// their databases once the scenario has converged.
func (s *system) heldFor(t *testing.T, orderID int64) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	var status trade.OrderStatus
	var total, claimed, refunded int64
	err := s.trPool.QueryRow(ctx, `SELECT status, total_fee, refund_claimed, refunded_amount FROM orders WHERE id = $1`, orderID).
		Scan(&status, &total, &claimed, &refunded)
	if err != nil {
		return fmt.Sprintf("  trade: order %d unreadable: %v\n", orderID, err)
	}
	fmt.Fprintf(&b, "  trade holds: order status %d, total %d, claimed %d, refunded %d\n", status, total, claimed, refunded)
	rows, err := s.trPool.Query(ctx, `
		SELECT id::text, amount, reason, coalesce(request_key, '-'), status, coalesce(rejection, ''), requested_at::text, coalesce(refunded_at::text, '-')
		FROM refunds WHERE order_id = $1 ORDER BY requested_at, id`, orderID)
	if err != nil {
		return b.String() + fmt.Sprintf("  trade's refunds unreadable: %v\n", err)
	}
	for rows.Next() {
		var id, reason, key, st, rejection, requested, credited string
		var amount int64
		if err := rows.Scan(&id, &amount, &reason, &key, &st, &rejection, &requested, &credited); err != nil {
			return b.String() + fmt.Sprintf("  trade's refunds unreadable: %v\n", err)
		}
		fmt.Fprintf(&b, "    refund %s of %d (%s), key %s: %s %s, requested %s, refunded %s\n", id, amount, reason, key, st, rejection, requested, credited)
	}
	if err := rows.Err(); err != nil {
		fmt.Fprintf(&b, "  trade's refunds unreadable: %v\n", err)
	}
	var payStatus int
	var paid, payRefunded int64
	err = s.payPool.QueryRow(ctx, `SELECT status, amount, refunded_amount FROM pay_orders WHERE biz_order_no = $1`, orderID).
		Scan(&payStatus, &paid, &payRefunded)
	if err != nil {
		return b.String() + fmt.Sprintf("  pay: pay order of %d unreadable: %v\n", orderID, err)
	}
	fmt.Fprintf(&b, "  pay holds: pay order status %d, amount %d, refunded %d\n", payStatus, paid, payRefunded)
	rows, err = s.payPool.Query(ctx, `
		SELECT refund_id::text, amount, outcome, coalesce(rejection, ''), decided_at::text
		FROM refunds WHERE biz_order_no = $1 ORDER BY decided_at`, orderID)
	if err != nil {
		return b.String() + fmt.Sprintf("  pay's refunds unreadable: %v\n", err)
	}
	for rows.Next() {
		var id, outcome, rejection, decided string
		var amount int64
		if err := rows.Scan(&id, &amount, &outcome, &rejection, &decided); err != nil {
			return b.String() + fmt.Sprintf("  pay's refunds unreadable: %v\n", err)
		}
		fmt.Fprintf(&b, "    refund %s of %d: %s %s, decided %s\n", id, amount, outcome, rejection, decided)
	}
	if err := rows.Err(); err != nil {
		fmt.Fprintf(&b, "  pay's refunds unreadable: %v\n", err)
	}
	return b.String()
}

// shownTrails is how many inconsistent orders the log shows in full.
const shownTrails = 3

// logTrails writes the first few inconsistent refund trails to the test
// log, each with what trade and pay hold of its order.
func (s *system) logTrails(t *testing.T, trails []*refundTrail) {
	t.Helper()
	for i, tr := range trails {
		if i == shownTrails {
			t.Logf("and %d more orders whose refunds were not answered consistently", len(trails)-shownTrails)
			return
		}
		t.Logf("refunds not answered consistently, as the buyer saw them (times since the scenario began):\n%s%s", tr, s.heldFor(t, tr.orderID))
	}
}
