package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/paytrade/paytrade/internal/auth"
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
var client = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxIdleConns: 256},
}

func mint(t *testing.T, p auth.Principal) string {
	t.Helper()
	tok, err := auth.Mint([]byte(secret), p, 2*time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// populate creates buyers with wallets, their orders at trade and their
// pay orders at pay, through the services' HTTP APIs, before any fault.
func (s *system) populate(t *testing.T, n int) population {
	t.Helper()
	const perBuyer = 4
	buyers := (n + perBuyer - 1) / perBuyer
	service := mint(t, auth.Principal{Service: true, Subject: "chaos"})
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
	trade, pay := s.trades[0].baseURL(), s.pays[0].baseURL()
	parallel(t, buyers, func(i int) error {
		u := int64(i) + 1
		return post(pay+"/accounts", service, fmt.Sprintf(`{"userId":%d,"password":"123","balance":%d}`, u, pop.funding[u]), http.StatusCreated, nil)
	})
	tokens := make([]string, buyers+1)
	for u := 1; u <= buyers; u++ {
		tokens[u] = mint(t, auth.Principal{UserID: int64(u)})
	}
	parallel(t, n, func(i int) error {
		p := &pop.payments[i]
		p.token = tokens[p.user]
		var o struct{ ID int64 }
		if err := post(trade+"/orders", p.token, fmt.Sprintf(`{"totalFee":%d,"paymentType":3}`, p.amount), http.StatusCreated, &o); err != nil {
			return err
		}
		p.orderID = o.ID
		var po struct{ ID int64 }
		body := fmt.Sprintf(`{"bizOrderNo":%d,"amount":%d,"payChannelCode":"balance","payType":5,"orderInfo":"chaos"}`, o.ID, p.amount)
		if err := post(pay+"/pay-orders", p.token, body, http.StatusCreated, &po); err != nil {
			return err
		}
		p.payOrderID = po.ID
		return nil
	})
	return pop
}

// parallel runs fn(0..n-1) on a few workers and fails the test on the
// first error.
func parallel(t *testing.T, n int, fn func(i int) error) {
	t.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := fn(i); err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

// post sends a JSON request and decodes the answer into out, if not nil.
func post(url, token, body string, want int, out any) error {
	status, data, err := send(context.Background(), url, token, body, "")
	if err != nil {
		return err
	}
	if status != want {
		return fmt.Errorf("POST %s: %d %s, want %d", url, status, data, want)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

func send(ctx context.Context, url, token, body, idempotencyKey string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewBufferString(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	if idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", idempotencyKey)
	}
	res, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	return res.StatusCode, data, err
}

// loadResult is what the buyers saw.
type loadResult struct {
	tried      int
	ok         int // answered 2xx, after the client's retries
	refused    int // refused for want of money, as planned for some
	unanswered int // no final answer within the client's patience
}

// pay pays every payment, paced evenly over spread, with concurrency
// requests at most in flight, across the pay instances urls returns. A
// client does what a careful one does: it sends an Idempotency-Key, and on
// a lost connection or a 5xx it asks again with the same key, on another
// instance if there is one, for up to 30 s. Every tenth payment is also
// sent a second time at once with another key, as a double-clicking buyer
// would: at most one of the two may debit.
func pay(ctx context.Context, pop population, urls func() []string, spread time.Duration, concurrency int) loadResult {
	var (
		wg                      sync.WaitGroup
		ok, refused, unanswered atomic.Int64
		slots                   = make(chan struct{}, concurrency)
		start                   = time.Now()
		gap                     = spread / time.Duration(max(len(pop.payments), 1))
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
			case "insufficient_funds":
				refused.Add(1)
			default:
				unanswered.Add(1)
			}
		})
	}
	wg.Wait()
	return loadResult{tried: len(pop.payments), ok: int(ok.Load()), refused: int(refused.Load()), unanswered: int(unanswered.Load())}
}

// payOnce is one buyer's request with its retries. It returns "paid" for
// a 2xx, the error code of a final refusal, or "" if no final answer came.
func payOnce(ctx context.Context, p payment, urls func() []string, pick int) string {
	key := uuid.NewString()
	deadline := time.Now().Add(30 * time.Second)
	for attempt := 0; time.Now().Before(deadline) && ctx.Err() == nil; attempt++ {
		us := urls()
		url := fmt.Sprintf("%s/pay-orders/%d", us[(pick+attempt)%len(us)], p.payOrderID)
		status, body, err := send(ctx, url, p.token, `{"pw":"123"}`, key)
		if err == nil && status/100 == 2 {
			return "paid"
		}
		var problem struct{ Code string }
		if err == nil && status < 500 && json.Unmarshal(body, &problem) == nil && problem.Code != "idempotency_key_in_flight" {
			return problem.Code
		}
		time.Sleep(100 * time.Millisecond)
	}
	return ""
}
