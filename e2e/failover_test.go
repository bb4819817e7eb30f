package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/paytrade/paytrade/internal/systest"
	"github.com/paytrade/paytrade/internal/testenv"
)

// pay's database is a Patroni cluster; its primary's PostgreSQL is
// SIGKILLed in the middle of a stream of payments. Every payment is made
// once, on the new primary, each answered 200 or 503 with Retry-After, and
// /readyz names the new primary.
func TestPaymentsContinueOnTheNewPrimaryWhenThePrimaryIsKilled(t *testing.T) {
	t.Parallel()
	cluster := testenv.StartPatroniCluster(t, testenv.PatroniOptions{})
	sys := systest.New(t, "e2e")
	sys.PayDB = cluster.NewEmptyDatabase(t, "e2e_pay")
	s := startSystem(t, sys, nil)
	trade := s.startTrade(t)
	const payments, fee, balance = 30, 1_000, 1_000_000
	b := s.newBuyer(t, 1, balance)
	orders := make([]order, payments)
	pos := make([]payOrder, payments)
	for i := range orders {
		orders[i], pos[i] = s.orderAndApply(t, trade, b, fee)
	}
	leader, standby := cluster.Leader(t), cluster.SyncStandby(t)
	if got := readyPrimary(t, s.pay); got != leader.Addr {
		t.Fatalf("/readyz names primary %q, want the leader %s", got, leader.Addr)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var killed, resumed time.Time
	unavailable := 0
	for i, po := range pos {
		if i == payments/2 {
			leader.KillPostgres(t)
			killed = time.Now()
		}
		n, err := client.PayRetrying(ctx, s.pay.BaseURL, b.tok, po.ID, fmt.Sprintf("pay-%d", po.ID))
		if err != nil {
			t.Fatal(err)
		}
		unavailable += n
		if !killed.IsZero() && resumed.IsZero() {
			resumed = time.Now()
		}
	}
	t.Logf("first payment %v after the primary's death, %d answers 503 on the way", resumed.Sub(killed).Round(time.Millisecond), unavailable)

	testenv.WaitFor(t, 30*time.Second, "/readyz to name the new primary", func() bool {
		return readyPrimary(t, s.pay) == standby.Addr
	})
	var account struct{ Balance int64 }
	client.MustCall(t, http.MethodGet, s.pay.BaseURL+"/accounts/me", b.tok, "", http.StatusOK, &account)
	if want := int64(balance - payments*fee); account.Balance != want {
		t.Fatalf("balance %d after %d payments of %d, want %d: each paid exactly once", account.Balance, payments, fee, want)
	}
	for _, o := range orders {
		testenv.WaitFor(t, 30*time.Second, fmt.Sprintf("order %d to be paid", o.ID), func() bool {
			return orderStatus(t, trade, b, o.ID) == 2
		})
	}
}

// readyPrimary returns the primary pay's /readyz names, "" if it is not ready.
func readyPrimary(t *testing.T, pay *testenv.Process) string {
	t.Helper()
	res, err := http.Get(pay.BaseURL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var report map[string]string
	if err := json.NewDecoder(res.Body).Decode(&report); err != nil {
		t.Fatal(err)
	}
	return report["databasePrimary"]
}
