package httpapi_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/paytrade/paytrade/internal/testenv"
	"github.com/paytrade/paytrade/services/pay"
	"github.com/paytrade/paytrade/services/pay/paytest"
)

// payMany applies for and pays n pay orders of user 1 (business orders
// from first on) concurrently, returning how many payments were accepted.
func payMany(t *testing.T, h *harness, first int64, n int, during func(i int)) int {
	t.Helper()
	orders := make([]payOrder, n)
	for i := range n {
		orders[i] = h.apply(t, 1, first+int64(i), 100)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := 0
	// As many at once as one wallet may have checked at once: a sixth
	// would be refused 429 password_checks_busy.
	sem := make(chan struct{}, pay.MaxPasswordFailures)
	for i, o := range orders {
		if during != nil {
			during(i)
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			r := h.call(t, "POST", fmt.Sprintf("/pay-orders/%d", o.ID), userToken(t, 1), `{"pw":"123"}`)
			if r.status != http.StatusOK {
				t.Errorf("pay %d: %d %s", o.ID, r.status, r.body)
				return
			}
			mu.Lock()
			accepted++
			mu.Unlock()
		})
	}
	wg.Wait()
	return accepted
}

// receiveAll waits until n distinct message ids have arrived on the
// harness's queue and returns how many deliveries that took.
func receiveAll(t *testing.T, h *harness, n int, within time.Duration) (distinct, total int) {
	t.Helper()
	seen := map[string]bool{}
	timeout := time.After(within)
	for len(seen) < n {
		select {
		case d := <-h.deliveries:
			seen[d.MessageId] = true
			total++
		case <-timeout:
			t.Fatalf("%d of %d pay.success events arrived within %v; %d still in the outbox",
				len(seen), n, within, h.pendingEvents(t))
		}
	}
	return len(seen), total
}

func TestPaymentsAreAcceptedWhileTheBrokerIsDownAndPublishedWhenItReturns(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.wallet(t, 1, 1_000_000)
	h.proxy.SetDown(true)

	start := time.Now()
	if accepted := payMany(t, h, 1, 40, nil); accepted != 40 {
		t.Fatalf("%d of 40 payments accepted with the broker down, want all", accepted)
	}
	t.Logf("40 payments accepted in %v with the broker unreachable", time.Since(start))
	if n := h.pendingEvents(t); n != 40 {
		t.Fatalf("%d events in the outbox, want 40 waiting for the broker", n)
	}

	h.proxy.SetDown(false)
	receiveAll(t, h, 40, 20*time.Second)
	testenv.WaitFor(t, 20*time.Second, "the outbox to empty", func() bool { return h.pendingEvents(t) == 0 })
}

func TestBrokerConnectionCutWhilePayingLosesNoEvent(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.wallet(t, 1, 1_000_000)
	const n = 150
	accepted := payMany(t, h, 1, n, func(i int) {
		if i%25 == 10 {
			h.proxy.CutAll() // the relay's connection dies under it, mid-batch or between batches
		}
	})
	if accepted != n {
		t.Fatalf("%d of %d payments accepted while the connection was being cut, want all", accepted, n)
	}
	distinct, total := receiveAll(t, h, n, 30*time.Second)
	testenv.WaitFor(t, 20*time.Second, "the outbox to empty", func() bool { return h.pendingEvents(t) == 0 })
	t.Logf("%d payments, %d distinct events, %d deliveries (re-publishes after cuts: %d), %d reconnects",
		n, distinct, total, total-distinct, h.supervisor.Reconnects())
	if h.supervisor.Reconnects() == 0 {
		t.Error("the connection was cut but the supervisor never reconnected: the test did not exercise a cut")
	}
	if snap := paytest.Snap(t, h.pool); snap.Debits != n {
		t.Errorf("%d debits, want %d", snap.Debits, n)
	}
}
