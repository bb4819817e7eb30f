package chaos

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paytrade/paytrade/services/trade"
)

// fakeTrade answers the buyers' refunds of one paid order as trade would
// under a fault: remainder answers each attempt at POST /orders/7/refund,
// piece each at POST /orders/7/refunds under its Idempotency-Key (an answer
// of status 0 is lost: the connection closes), and listed is the order's
// refunds as trade lists them. It tells the load's judgement apart from the
// service's, which the fault suite runs for real.
func fakeTrade(t *testing.T, remainder func(attempt int) (status int, body string),
	piece func(key string) (status int, body string), listed func() string) string {
	t.Helper()
	var attempts atomic.Int64
	answer := func(w http.ResponseWriter, status int, body string) {
		if status == 0 {
			conn, _, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Errorf("lose the answer: %v", err)
				return
			}
			_ = conn.Close()
			return
		}
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /orders/7", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, `{"id":7,"status":%d}`, trade.Paid)
	})
	mux.HandleFunc("POST /orders/7/refund", func(w http.ResponseWriter, _ *http.Request) {
		status, body := remainder(int(attempts.Add(1)))
		answer(w, status, body)
	})
	mux.HandleFunc("POST /orders/7/refunds", func(w http.ResponseWriter, r *http.Request) {
		status, body := piece(r.Header.Get("Idempotency-Key"))
		answer(w, status, body)
	})
	mux.HandleFunc("GET /orders/7/refunds", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, listed())
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// listing is a fixed list of refunds.
func listing(refunds string) func() string { return func() string { return refunds } }

// notRefundable is trade's refusal of a refund of an order refunded in full.
var notRefundable = fmt.Sprintf(`{"code":%q}`, trade.ErrNotRefundable.Code)

// judgeOnce runs refundOnce for order 7 of 5000 against the trade at
// base, with ten seconds' patience, and returns its verdict.
func judgeOnce(t *testing.T, base string) *refundTrail {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := payment{user: 1, token: "token", orderID: 7, payOrderID: 70, amount: 5000}
	return refundOnce(ctx, p, func() []string { return []string{base} }, 0, time.Now())
}

// A buyer's first refund ask is made and its answer lost (trade is killed
// after the commit); the refund is credited before trade hears the ask
// again, so trade answers not_refundable: nothing remains. That is a
// consistent answer, judged by trade listing the one refund, of the total.
func TestAWholeRefundWhoseAnswerWasLostThenCreditedIsJudgedByTradesList(t *testing.T) {
	base := fakeTrade(t, func(attempt int) (int, string) {
		if attempt == 1 {
			return 0, ""
		}
		return http.StatusConflict, notRefundable
	}, nil, listing(`[{"refundId":"r1","amount":5000,"status":"refunded"}]`))
	if tr := judgeOnce(t, base); tr.why != "" {
		t.Errorf("judged inconsistent: %s", tr)
	}
}

// Strict all the same: a refusal is consistent only after a lost answer,
// and only if trade lists the one refund that answer was of.
func TestAWholeRefundRefusedOtherwiseIsReported(t *testing.T) {
	tests := []struct {
		name   string
		lose   bool
		listed string
	}{
		{"refused with no answer lost", false, `[]`},
		{"refused after a lost answer, two refunds listed", true,
			`[{"refundId":"r1","amount":2500,"status":"refunded"},{"refundId":"r2","amount":2500,"status":"refunded"}]`},
		{"refused after a lost answer, a refund of part listed", true, `[{"refundId":"r1","amount":2500,"status":"refunded"}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := fakeTrade(t, func(attempt int) (int, string) {
				if tt.lose && attempt == 1 {
					return 0, ""
				}
				return http.StatusConflict, notRefundable
			}, nil, listing(tt.listed))
			if tr := judgeOnce(t, base); tr.why == "" {
				t.Errorf("judged consistent: %s", tr)
			}
		})
	}
}

// A request still unanswered when the buyer's patience ends is reported,
// though trade is up and answering (here a "what remains" refused with a
// refusal that is not for want of what remains) and every refund answered
// is listed.
func TestARefundWithNoFinalAnswerIsReportedWhileTradeAnswers(t *testing.T) {
	var (
		mu     sync.Mutex
		pieces []string
	)
	base := fakeTrade(t, func(int) (int, string) {
		return http.StatusUnprocessableEntity, `{"code":"unexpected"}`
	}, func(key string) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		pieces = append(pieces, fmt.Sprintf(`{"refundId":%q,"amount":1666,"status":"requested"}`, key))
		return http.StatusAccepted, pieces[len(pieces)-1]
	}, func() string {
		mu.Lock()
		defer mu.Unlock()
		return "[" + strings.Join(pieces, ",") + "]"
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	p := payment{user: 1, token: "token", orderID: 7, payOrderID: 70, amount: 5000}
	tr := refundInPieces(ctx, p, func() []string { return []string{base} }, 0, time.Now())
	if tr.why == "" {
		t.Errorf("judged consistent: %s", tr)
	}
}
