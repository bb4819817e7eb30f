package main

import (
	"strings"
	"testing"

	"github.com/paytrade/paytrade/internal/reconcile"
	"github.com/paytrade/paytrade/internal/reconcile/reconciletest"
)

func reconcileEnv(d *reconciletest.Databases) func(string) string {
	return env(map[string]string{"PAY_DATABASE_URL": d.PayURL, "TRADE_DATABASE_URL": d.TradeURL})
}

// checkLine returns what the summary table says for check: its count and result.
func checkLine(tb testing.TB, stdout, check string) string {
	tb.Helper()
	for line := range strings.Lines(stdout) {
		if fields := strings.Fields(line); strings.HasPrefix(line, check) && len(fields) >= 2 {
			return strings.Join(fields[len(fields)-2:], " ")
		}
	}
	tb.Fatalf("stdout has no line for %q:\n%s", check, stdout)
	return ""
}

func TestReconcileExitsZeroOnConsistentDatabases(t *testing.T) {
	t.Parallel()
	d := reconciletest.New(t)
	d.Consistent(t)

	stdout, stderr, err := runCtl(t, reconcileEnv(d), "reconcile")
	if err != nil {
		t.Fatalf("reconcile: %v (stdout %q, stderr %q)", err, stdout, stderr)
	}
	if !strings.HasPrefix(stdout, "compared 6 paid pay orders with 5 paid orders, and 3 refunds\n") {
		t.Errorf("stdout = %q, want it to start with what was compared", stdout)
	}
	for _, c := range (reconcile.Report{}).Checks() {
		want := "0 ok"
		if c.Name == reconcile.CheckRecordedDiscrepancies || c.Name == reconcile.CheckRejectedRefunds {
			want = "1 NOTED"
		}
		if got := checkLine(t, stdout, c.Name); got != want {
			t.Errorf("%s: %q, want %q", c.Name, got, want)
		}
	}
	// The recorded discrepancy is listed for the human who settles it.
	if !strings.Contains(stdout, reconcile.CheckRecordedDiscrepancies+" (noted, 1):") || !hasRow(stdout, "106 ") ||
		!strings.Contains(stdout, "cancelled (5)") || !strings.Contains(stdout, "order_moved_on") {
		t.Errorf("stdout = %q, want the discrepancy of order 106 listed", stdout)
	}
	// So is the refund pay could not honour, with pay's reason.
	if !strings.Contains(stdout, reconcile.CheckRejectedRefunds+" (noted, 1):") || !strings.Contains(stdout, "rejected (not_paid)") {
		t.Errorf("stdout = %q, want the rejected refund of order 108 listed with its reason", stdout)
	}
}

func TestReconcileReportsEachKindOfInconsistencyAndFailsOnBrokenInvariants(t *testing.T) {
	t.Parallel()
	for _, tt := range reconciletest.Inconsistencies {
		t.Run(tt.Name, func(t *testing.T) {
			t.Parallel()
			d := reconciletest.New(t)
			d.Consistent(t)
			tt.Make(t, d)

			stdout, _, err := runCtl(t, reconcileEnv(d), "reconcile")
			if failed := err != nil; failed != (tt.Severity == reconcile.Failure) {
				t.Errorf("reconcile = %v; want an error only for a failure, and this is a %s", err, tt.Severity)
			}
			want := "1 " + strings.ToUpper(tt.Severity.String())
			if got := checkLine(t, stdout, tt.Check); got != want {
				t.Errorf("%s: %q, want %q", tt.Check, got, want)
			}
			if title := tt.Check + " (" + tt.Severity.String() + ", 1):"; !strings.Contains(stdout, title) {
				t.Errorf("stdout = %q, want a section %q with the details", stdout, title)
			}
		})
	}
}

func TestReconcileExcusesRecentPaymentsOnlyWithinInFlight(t *testing.T) {
	t.Parallel()
	d := reconciletest.New(t)
	d.Consistent(t)
	d.Pay(t, 301, 1, 500) // paid ten minutes ago
	d.Order(t, 301, 1, 500, 1, false)

	if _, _, err := runCtl(t, reconcileEnv(d), "reconcile", "-in-flight", "1h"); err != nil {
		t.Errorf("reconcile -in-flight 1h = %v, want a payment ten minutes old excused", err)
	}
	stdout, _, err := runCtl(t, reconcileEnv(d), "reconcile", "-in-flight", "1m")
	if err == nil || !strings.Contains(err.Error(), "1 findings") {
		t.Errorf("reconcile -in-flight 1m = %v, want one finding", err)
	}
	if !hasRow(stdout, "301 ") {
		t.Errorf("stdout = %q, want order 301 listed", stdout)
	}
}

func TestReconcileReportsAnUnreachableDatabase(t *testing.T) {
	getenv := env(map[string]string{
		"PAY_DATABASE_URL": "postgres://postgres@127.0.0.1:1/pay?sslmode=disable&connect_timeout=2",
	})
	_, _, err := runCtl(t, getenv, "reconcile")
	if err == nil || !strings.Contains(err.Error(), "PAY_DATABASE_URL") {
		t.Errorf("reconcile against a closed port = %v, want an error naming PAY_DATABASE_URL", err)
	}
}
