package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/paytrade/paytrade/internal/systest"
	"github.com/paytrade/paytrade/services/trade"
)

// payment is one order of one buyer, with its pay order, ready to be paid.
type payment struct {
	user       int64
	token      string
	orderID    int64
	payOrderID int64
	amount     int64
}

// population is the buyers and orders of a scenario. Every tenth buyer is
// funded for all but one of their orders, so concurrent payments race for
// the last of a balance and no-overdraft is tested under load too.
type population struct {
	payments []payment
	funding  map[int64]int64 // user → balance at creation
}

// client is the load's HTTP client: enough idle connections that the
// load's concurrency does not open a connection per request.
var client = systest.NewClient(256, 10*time.Second)

// populate creates buyers with wallets, their orders at trade and their
// pay orders at pay, through the services' HTTP APIs, before any fault.
func (s *system) populate(t *testing.T, n int) population {
	t.Helper()
	const perBuyer = 4
	buyers := (n + perBuyer - 1) / perBuyer
	service := systest.OperatorToken(t, "chaos")
	pop := population{payments: make([]payment, n), funding: map[int64]int64{}}
	rng := rand.New(rand.NewPCG(uint64(n), 42))
	for i := range pop.payments {
		user := int64(i/perBuyer) + 1
		pop.payments[i] = payment{user: user, amount: 100 + rng.Int64N(9900)}
	}
	for u := int64(1); u <= int64(buyers); u++ {
		var total, last int64
		for i := (u - 1) * perBuyer; i < min(u*perBuyer, int64(n)); i++ {
			total += pop.payments[i].amount
			last = pop.payments[i].amount
		}
		if u%10 == 0 {
			total -= last
		}
		pop.funding[u] = total
	}
	svc := systest.Services{Pay: s.pays[0].baseURL(), Trade: s.trades[0].baseURL()}
	parallel(t, buyers, func(i int) error {
		u := int64(i) + 1
		return client.OpenWallet(svc.Pay, service, u, pop.funding[u])
	})
	tokens := make([]string, buyers+1)
	for u := 1; u <= buyers; u++ {
		tokens[u] = systest.UserToken(t, int64(u))
	}
	parallel(t, n, func(i int) error {
		p := &pop.payments[i]
		p.token = tokens[p.user]
		var err error
		p.orderID, p.payOrderID, err = client.Order(svc, p.token, p.amount)
		return err
	})
	return pop
}

// parallel runs fn(0..n-1) on a few workers and fails the test on the
// first error.
func parallel(t *testing.T, n int, fn func(i int) error) {
	t.Helper()
	if err := systest.Parallel(16, n, fn); err != nil {
		t.Fatal(err)
	}
}

// loadResult is what the buyers saw.
type loadResult struct {
	tried      int
	ok         int // answered 2xx, after the client's retries
	refused    int // refused for want of money, as planned for some
	closed     int // refused because the order was cancelled or timed out first
	unanswered int // no final answer within the client's patience
	// refunds is what became of the paid orders the buyers had refunded,
	// whole or in pieces, once awaitRefunds has returned.
	refunds refundTally
	// awaitRefunds waits for the buyers' refunds, which outlive the
	// payments: a scenario may hold trade down until the load is done.
	awaitRefunds func() refundTally
}

// refundTally is how many orders' refunds were answered consistently, and
// the trails of those that were not: asked in vain, or answered otherwise
// (two refunds for one ask, a refund accepted and not listed, more
// accepted than the total).
type refundTally struct {
	consistent   int
	inconsistent []*refundTrail
}

// refundEvery is how often a paid order is refunded whole (one in ten),
// and as often another is refunded in pieces.
const refundEvery = 10

// refunder refunds a paid order as one kind of buyer does and returns what
// the buyer saw, judged: its why is "" if every answer was consistent.
// began is when the scenario began, which the trail's times count from.
type refunder func(ctx context.Context, p payment, urls func() []string, pick int, began time.Time) *refundTrail

// refundsOf says how the buyer of the i-th payment refunds it once paid:
// whole, in racing pieces, or not at all.
func refundsOf(i int) refunder {
	switch i % refundEvery {
	case refundEvery / 2:
		return refundOnce
	case refundEvery/2 + 2:
		return refundInPieces
	}
	return nil
}

// pay pays every payment, paced evenly over spread, with concurrency
// requests at most in flight, across the pay instances urls returns. A
// client does what a careful one does: it sends an Idempotency-Key, and on
// a lost connection or a 5xx it asks again with the same key, on another
// instance if there is one, for up to 30 s. Every tenth payment is also
// sent a second time at once with another key, as a double-clicking buyer
// would: at most one of the two may debit. One paid order in ten is then
// refunded through the trade instances tradeURLs returns, its refund asked
// for twice, as the same buyer clicking twice would; another is refunded
// in two or three racing pieces and a racing "what remains"
// (refundInPieces). began is when the scenario began, which the refunds'
// trails count time from.
func pay(ctx context.Context, pop population, urls, tradeURLs func() []string, spread time.Duration, concurrency int, began time.Time) loadResult {
	var (
		wg, refunding       sync.WaitGroup
		ok, refused, closed atomic.Int64
		unanswered          atomic.Int64
		tallied             sync.Mutex
		tally               refundTally
		slots               = make(chan struct{}, concurrency)
		start               = time.Now()
		gap                 = spread / time.Duration(max(len(pop.payments), 1))
	)
	for i, p := range pop.payments {
		time.Sleep(time.Until(start.Add(time.Duration(i) * gap)))
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			var second chan string
			if i%10 == 0 {
				second = make(chan string, 1)
				go func() { second <- payOnce(ctx, p, urls, i+1) }()
			}
			outcome := payOnce(ctx, p, urls, i)
			if second != nil {
				// Of a double click, one request pays and the other finds
				// it paid; the buyer has paid if either did.
				if other := <-second; other == "paid" || outcome == "already_paid" {
					outcome = other
				}
			}
			switch outcome {
			case "paid":
				ok.Add(1)
				if refund := refundsOf(i); refund != nil {
					// Outside the slot and the load: waiting for the order
					// to show paid must not hold back the payments.
					refunding.Go(func() {
						trail := refund(ctx, p, tradeURLs, i, began)
						tallied.Lock()
						defer tallied.Unlock()
						if trail.why == "" {
							tally.consistent++
						} else {
							tally.inconsistent = append(tally.inconsistent, trail)
						}
					})
				}
			case "insufficient_funds":
				refused.Add(1)
			case "pay_order_closed":
				closed.Add(1)
			default:
				unanswered.Add(1)
			}
		})
	}
	wg.Wait()
	return loadResult{tried: len(pop.payments), ok: int(ok.Load()), refused: int(refused.Load()),
		closed: int(closed.Load()), unanswered: int(unanswered.Load()),
		awaitRefunds: func() refundTally {
			refunding.Wait()
			tallied.Lock()
			defer tallied.Unlock()
			return tally
		}}
}

// refundOnce has a paid order refunded as a buyer would: it waits for the
// order to show paid at trade (the payment's event may be held up by the
// fault, or trade be down), then asks for the refund twice, each ask
// retried through faults for up to a minute, and judgeWhole holds the
// answers to the promises.
func refundOnce(ctx context.Context, p payment, urls func() []string, pick int, began time.Time) *refundTrail {
	tr := &refundTrail{orderID: p.orderID, payOrderID: p.payOrderID, total: p.amount}
	if !awaitPaid(ctx, p, urls, pick) {
		tr.why = "the order did not show paid at trade within a minute"
		return tr
	}
	first := tr.ask("whole refund", 0, "")
	first.askUntilAnswered(ctx, p, urls, pick, began)
	if first.final && first.refundID != "" {
		// Ask again: the same refund must come back.
		tr.ask("whole refund, asked again", 0, "").askUntilAnswered(ctx, p, urls, pick+1, began)
	}
	refused := false
	for _, a := range tr.asks {
		refused = refused || a.final && a.refundID == ""
	}
	listedOK := false
	if refused {
		tr.listed, listedOK = refundsListed(ctx, urls()[pick%len(urls())], p)
	}
	tr.why = judgeWhole(p.amount, tr.asks, tr.listed, listedOK)
	return tr
}

// judgeWhole says why the answers to a whole refund asked for twice (asks:
// the first, then the second if the first was answered with a refund) and
// trade's list of the order's refunds (asked for if one of them was
// refused) break a promise, or "" if they keep them: both answers are the
// same refund, or one is a refusal for want of what remains and trade
// lists one refund of the order, the one answered. The order is paid, so a
// refusal of the first ask says its refund was made already, by an attempt
// whose answer was lost and credited before the buyer asked again (trade
// answers the same refund again only while it is pending): trade must then
// list that one refund, of the total.
func judgeWhole(total int64, asks []*refundAsk, listed []listedRefund, listedOK bool) string {
	first := asks[0]
	for _, a := range asks {
		if !a.final {
			return a.what + " had no final answer"
		}
	}
	if len(asks) > 1 && asks[1].refundID != "" {
		if asks[1].refundID != first.refundID {
			return fmt.Sprintf("asked again, answered refund %s, not %s", asks[1].refundID, first.refundID)
		}
		return ""
	}
	switch {
	case first.refundID == "" && !first.lost:
		return "refused before any refund was made: no attempt's answer was lost"
	case !listedOK:
		return "trade did not list the order's refunds"
	case len(listed) != 1:
		return fmt.Sprintf("refused, and trade lists %d refunds, not one", len(listed))
	case first.refundID != "" && listed[0].RefundID != first.refundID:
		return fmt.Sprintf("asked again, refused, and trade lists refund %s, not %s", listed[0].RefundID, first.refundID)
	case first.refundID == "" && listed[0].Amount != total:
		return fmt.Sprintf("refused after a lost answer, and trade lists a refund of %d, not of the total", listed[0].Amount)
	}
	return ""
}

// refundInPieces has a paid order refunded in pieces that race each
// other, as a shop returning items one by one from several tabs would:
// once the order shows paid, two pieces of a third of its total (or, for
// every other order, three of half of it, more than it holds) are asked
// for at once, each under its own Idempotency-Key, together with a
// "refund what remains". Each is retried through faults for up to a
// minute, a piece under its key. judgePieces then holds every answer and
// trade's list of the order's refunds to the promises.
func refundInPieces(ctx context.Context, p payment, urls func() []string, pick int, began time.Time) *refundTrail {
	tr := &refundTrail{orderID: p.orderID, payOrderID: p.payOrderID, total: p.amount}
	if !awaitPaid(ctx, p, urls, pick) {
		tr.why = "the order did not show paid at trade within a minute"
		return tr
	}
	pieces, piece := 2, p.amount/3
	if pick%(2*refundEvery) >= refundEvery {
		pieces, piece = 3, p.amount/2
	}
	for k := range pieces {
		tr.ask(fmt.Sprintf("piece %d", k+1), max(piece, 1), uuid.NewString())
	}
	tr.ask("what remains", 0, "")
	var wg sync.WaitGroup
	for k, a := range tr.asks {
		wg.Go(func() { a.askUntilAnswered(ctx, p, urls, pick+k, began) })
	}
	wg.Wait()
	listed, ok := refundsListed(ctx, urls()[pick%len(urls())], p)
	tr.listed = listed
	tr.why = judgePieces(p.amount, tr.asks, listed, ok)
	return tr
}

// askUntilAnswered sends a piece, under its key, or "what remains" (or the
// whole, which is what remains of an order not refunded yet), without
// one, retrying through faults for up to a minute, until it is
// answered with a refund (202) or refused for want of what remains (409).
func (a *refundAsk) askUntilAnswered(ctx context.Context, p payment, urls func() []string, pick int, began time.Time) {
	path, body, header := "refund", "", http.Header(nil)
	if a.key != "" {
		path, body = "refunds", fmt.Sprintf(`{"amount":%d,"reason":"user_request"}`, a.amount)
		header = http.Header{"Idempotency-Key": {a.key}}
	}
	deadline := time.Now().Add(time.Minute)
	for attempt := 0; time.Now().Before(deadline) && ctx.Err() == nil; attempt++ {
		us := urls()
		url := fmt.Sprintf("%s/orders/%d/%s", us[(pick+attempt)%len(us)], p.orderID, path)
		sent := time.Now()
		status, data, err := client.Send(ctx, http.MethodPost, url, p.token, body, header)
		var r refundAnswer
		decoded := err == nil && json.Unmarshal(data, &r) == nil
		a.record(began, sent, status, r, decoded, err)
		switch {
		case decoded && status == http.StatusAccepted:
			a.refundID, a.got, a.final = r.RefundID, r.Amount, true
			return
		case decoded && status == http.StatusConflict &&
			(r.Code == trade.ErrRefundExceeds.Code || r.Code == trade.ErrNotRefundable.Code):
			// Nothing, or too little, remains: the other requests took
			// it. The order is paid, so not_refundable means refunded in
			// full.
			a.final = true
			return
		case err != nil || status >= 500:
			a.lost = true
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// judgePieces says why the answers to an order's racing refund requests,
// asks (the pieces, then "what remains" last), and trade's list of its
// refunds break a promise, or "" if they keep them all: every request
// ended in a refund or a refusal for want of what remains, and trade's
// list holds every refund answered, with its amount, adds up to no more
// than the total, and holds nothing else but, at most, the one refund of
// a "what remains" whose answer was lost.
func judgePieces(total int64, asks []*refundAsk, listed []listedRefund, listedOK bool) string {
	answered := map[string]int64{}
	var accepted int64
	mayHaveMore := 0
	for k, a := range asks {
		if !a.final {
			return a.what + " had no final answer"
		}
		if a.refundID != "" {
			answered[a.refundID] = a.got
			accepted += a.got
		}
		if a.lost && k == len(asks)-1 && a.refundID == "" {
			mayHaveMore = 1 // a lost "what remains", answered 409 since
		}
	}
	switch {
	case !listedOK:
		return "trade did not list the order's refunds"
	case accepted > total:
		return fmt.Sprintf("refunds of %d accepted, over the total", accepted)
	}
	var sum int64
	unanswered := 0
	for _, r := range listed {
		sum += r.Amount
		if amount, ok := answered[r.RefundID]; !ok {
			unanswered++
		} else if amount != r.Amount {
			return fmt.Sprintf("refund %s answered of %d, listed of %d", r.RefundID, amount, r.Amount)
		}
		delete(answered, r.RefundID)
	}
	switch {
	case len(answered) > 0:
		return fmt.Sprintf("%d refunds answered and not listed", len(answered))
	case sum > total:
		return fmt.Sprintf("refunds listed add up to %d, over the total", sum)
	case unanswered > mayHaveMore:
		return fmt.Sprintf("%d refunds listed that no request was answered with", unanswered)
	}
	return ""
}

// awaitPaid waits up to a minute for the order to show paid at trade: its
// payment's event may be held up by the fault, or trade be down.
func awaitPaid(ctx context.Context, p payment, urls func() []string, pick int) bool {
	deadline := time.Now().Add(time.Minute)
	for attempt := 0; time.Now().Before(deadline) && ctx.Err() == nil; attempt++ {
		us := urls()
		status, body, err := client.Send(ctx, http.MethodGet, fmt.Sprintf("%s/orders/%d", us[(pick+attempt)%len(us)], p.orderID), p.token, "", nil)
		var o struct{ Status trade.OrderStatus }
		if err == nil && status == http.StatusOK && json.Unmarshal(body, &o) == nil && o.Status == trade.Paid {
			return true
		}
		time.Sleep(200 * time.Millisecond)
	}
	return false
}

// listedRefund is a refund as trade lists it to the order's owner.
type listedRefund struct {
	RefundID string `json:"refundId"`
	Amount   int64  `json:"amount"`
}

// refundsListed is the order's refunds as trade lists them to its owner,
// asked again through faults for up to a minute.
func refundsListed(ctx context.Context, base string, p payment) ([]listedRefund, bool) {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		status, body, err := client.Send(ctx, http.MethodGet, fmt.Sprintf("%s/orders/%d/refunds", base, p.orderID), p.token, "", nil)
		var refunds []listedRefund
		if err == nil && status == http.StatusOK && json.Unmarshal(body, &refunds) == nil {
			return refunds, true
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil, false
}

// payOnce is one buyer's request with its retries (of a 5xx, a 429 or a
// failed connection, under the same Idempotency-Key). It returns "paid" for
// a 2xx, the error code of a final refusal, or "" if no final answer came.
func payOnce(ctx context.Context, p payment, urls func() []string, pick int) string {
	key := uuid.NewString()
	deadline := time.Now().Add(30 * time.Second)
	for attempt := 0; time.Now().Before(deadline) && ctx.Err() == nil; attempt++ {
		us := urls()
		url := systest.PayURL(us[(pick+attempt)%len(us)], p.payOrderID)
		status, body, err := client.Send(ctx, http.MethodPost, url, p.token, `{"pw":"123"}`, http.Header{"Idempotency-Key": {key}})
		if err == nil && status/100 == 2 {
			return "paid"
		}
		// 429 is "not now" (the wallet's password checks are all in
		// flight, say those of a pay that was killed mid-check, until
		// their lease lapses): a careful client asks again later.
		var problem struct{ Code string }
		if err == nil && status < 500 && status != http.StatusTooManyRequests &&
			json.Unmarshal(body, &problem) == nil && problem.Code != "idempotency_key_in_flight" {
			return problem.Code
		}
		if status == http.StatusTooManyRequests {
			time.Sleep(400 * time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return ""
}
