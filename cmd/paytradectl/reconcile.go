package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paytrade/paytrade/internal/database"
	"github.com/paytrade/paytrade/internal/reconcile"
	"github.com/paytrade/paytrade/services/pay"
	"github.com/paytrade/paytrade/services/trade"
)

func runReconcile(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("reconcile", flag.ContinueOnError)
	fs.SetOutput(stderr)
	// A minute covers pay.success on its way through a live system, and
	// trade's fallback poll when the broker is down (20s period, 30s grace).
	inFlight := fs.Duration("in-flight", time.Minute, "a payment this recent whose order is not paid yet, or a refund this recent not yet settled, is a warning, not a failure (0: excuse none)")
	details := fs.Int("details", 100, "list at most this many findings of each check (all are counted)")
	if done, err := parseFlags(fs, args); done || err != nil {
		return err
	}
	if *inFlight < 0 {
		return fmt.Errorf("reconcile: -in-flight %v: want 0 or more", *inFlight)
	}
	if *details < 1 {
		return fmt.Errorf("reconcile: -details %d: want 1 or more", *details)
	}

	pay, err := openDatabase(ctx, getenv, "PAY_DATABASE_URL", defaultPayDatabaseURL)
	if err != nil {
		return err
	}
	defer pay.Close()
	trade, err := openDatabase(ctx, getenv, "TRADE_DATABASE_URL", defaultTradeDatabaseURL)
	if err != nil {
		return err
	}
	defer trade.Close()

	r, err := reconcile.Run(ctx, pay, trade, reconcile.Options{InFlight: *inFlight, MaxDetails: *details})
	if err != nil {
		return fmt.Errorf("reconcile: %w", err)
	}
	if err := writeReconcileReport(stdout, r, *inFlight); err != nil {
		return err
	}
	if !r.OK() {
		return fmt.Errorf("reconcile: %d findings break an invariant", r.Failures())
	}
	return nil
}

// openDatabase opens the database named by env (or fallback); errors name env.
func openDatabase(ctx context.Context, getenv func(string) string, env, fallback string) (*pgxpool.Pool, error) {
	dbURL := getenv(env)
	if dbURL == "" {
		dbURL = fallback
	}
	pool, err := database.Open(ctx, dbURL)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", env, err)
	}
	return pool, nil
}

func writeReconcileReport(w io.Writer, r reconcile.Report, inFlight time.Duration) error {
	fmt.Fprintf(w, "compared %d paid pay orders with %d paid orders, and %d refunds\n\n", r.PaidPayOrders, r.PaidOrders, r.Refunds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tFOUND\tRESULT")
	for _, c := range r.Checks() {
		result := "ok"
		if c.Count > 0 {
			result = strings.ToUpper(c.Severity.String())
		}
		name := c.Name
		switch c.Name {
		case reconcile.CheckPaymentsInFlight:
			name += fmt.Sprintf(" (paid < %v ago)", inFlight)
		case reconcile.CheckRefundsInFlight:
			name += fmt.Sprintf(" (< %v ago)", inFlight)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\n", name, c.Count, result)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	payments := func(f reconcile.Findings[reconcile.Payment]) section {
		s := section{header: "BIZ ORDER\tPAY ORDER\tUSER\tAMOUNT\tPAID AT\tORDER\tRECORDED DISCREPANCY", count: f.Count}
		for _, p := range f.Items {
			s.rows = append(s.rows, fmt.Sprintf("%d\t%d\t%d\t%d\t%s\t%s\t%s", p.BizOrderNo, p.PayOrderID, p.UserID, p.Amount,
				p.PaidAt.UTC().Format(time.RFC3339), orderStatus(p.OrderStatus, p.OrderPaidAt != nil), orDash(strings.Join(p.Discrepancies, ", "))))
		}
		return s
	}
	orders := section{header: "ORDER\tUSER\tTOTAL FEE\tSTATUS\tPAY TIME\tPAY ORDER", count: r.PaidOrdersWithoutPayment.Count}
	for _, o := range r.PaidOrdersWithoutPayment.Items {
		payTime := "-"
		if o.PayTime != nil {
			payTime = o.PayTime.UTC().Format(time.RFC3339)
		}
		orders.rows = append(orders.rows, fmt.Sprintf("%d\t%d\t%d\t%s\t%s\t%s", o.ID, o.UserID, o.TotalFee,
			orderStatus(o.Status, o.PayTime != nil), payTime, payOrder(o.PayOrderID, o.PayOrderStatus)))
	}
	mismatches := section{header: "BIZ ORDER\tPAY ORDER\tORDER USER\tPAYER\tTOTAL FEE\tPAID", count: r.Mismatches.Count}
	for _, m := range r.Mismatches.Items {
		mismatches.rows = append(mismatches.rows, fmt.Sprintf("%d\t%d\t%d\t%d\t%d\t%d", m.BizOrderNo, m.PayOrderID, m.OrderUserID, m.PayUserID, m.TotalFee, m.PaidAmount))
	}
	drift := section{header: "USER\tBALANCE\tLEDGER SUM\tDIFFERENCE", count: r.LedgerDrift.Count}
	for _, d := range r.LedgerDrift.Items {
		drift.rows = append(drift.rows, fmt.Sprintf("%d\t%d\t%d\t%+d", d.UserID, d.Balance, d.LedgerSum, d.Balance-d.LedgerSum))
	}
	debits := section{header: "PAY ORDER\tBIZ ORDER\tSTATUS\tUSER\tAMOUNT\tDEBITS\tDEBITED\tPROBLEM", count: r.Debits.Count}
	for _, d := range r.Debits.Items {
		status := "missing"
		if d.Status >= 0 {
			status = payOrderStatus(d.Status)
		}
		debits.rows = append(debits.rows, fmt.Sprintf("%d\t%d\t%s\t%d\t%d\t%d\t%d\t%s", d.PayOrderID, d.BizOrderNo, status, d.UserID, d.Amount, d.Debits, d.DebitSum, d.Problem))
	}
	outbox := section{header: "OUTBOX\tEVENT\tTYPE\tROUTING KEY\tCREATED AT\tATTEMPTS\tLAST ERROR", count: r.StaleOutbox.Count}
	for _, e := range r.StaleOutbox.Items {
		outbox.rows = append(outbox.rows, fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%d\t%s", e.Database, e.ID, e.MessageType, e.RoutingKey,
			e.CreatedAt.UTC().Format(time.RFC3339), e.Attempts, orDash(oneLine(e.LastError, 80))))
	}

	refunds := func(f reconcile.Findings[reconcile.Refund]) section {
		s := section{header: "REFUND\tBIZ ORDER\tUSER\tAMOUNT\tREASON\tAT TRADE\tAT PAY\tPROBLEM", count: f.Count}
		for _, x := range f.Items {
			atPay := orDash(x.PayOutcome)
			if x.Rejection != "" {
				atPay += " (" + x.Rejection + ")"
			}
			s.rows = append(s.rows, fmt.Sprintf("%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s", x.ID, x.BizOrderNo, x.UserID, x.Amount,
				orDash(x.Reason), orDash(x.TradeStatus), atPay, orDash(x.Problem)))
		}
		return s
	}
	negative := section{header: "USER\tBALANCE", count: r.NegativeBalances.Count}
	for _, d := range r.NegativeBalances.Items {
		negative.rows = append(negative.rows, fmt.Sprintf("%d\t%d", d.UserID, d.Balance))
	}
	orderRefunds := section{header: "ORDER\tSTATUS\tTOTAL FEE\tREFUNDED\tCLAIMED\tREFUNDS CREDITED\tREFUNDS NOT REJECTED", count: r.OrderRefunds.Count}
	for _, o := range r.OrderRefunds.Items {
		orderRefunds.rows = append(orderRefunds.rows, fmt.Sprintf("%d\t%s\t%d\t%d\t%d\t%d\t%d", o.OrderID, orderStatus(o.Status, true), o.TotalFee,
			o.RefundedAmount, o.RefundClaimed, o.Refunded, o.Claimed))
	}
	credits := section{header: "PAY ORDER\tBIZ ORDER\tSTATUS\tAMOUNT\tREFUNDED\tCREDITS\tCREDITED\tPROBLEM", count: r.Credits.Count}
	for _, c := range r.Credits.Items {
		status := "missing"
		if c.Status >= 0 {
			status = payOrderStatus(c.Status)
		}
		credits.rows = append(credits.rows, fmt.Sprintf("%d\t%d\t%s\t%d\t%d\t%d\t%d\t%s", c.PayOrderID, c.BizOrderNo, status, c.Amount, c.RefundedAmount, c.Credits, c.CreditSum, c.Problem))
	}

	sections := map[string]section{
		reconcile.CheckPaymentsWithoutPaidOrder: payments(r.PaymentsWithoutPaidOrder),
		reconcile.CheckChargedButCancelled:      payments(r.ChargedButCancelled),
		reconcile.CheckPaidOrdersWithoutPayment: orders,
		reconcile.CheckMismatches:               mismatches,
		reconcile.CheckLedgerDrift:              drift,
		reconcile.CheckDebits:                   debits,
		reconcile.CheckPaymentsInFlight:         payments(r.PaymentsInFlight),
		reconcile.CheckStaleOutbox:              outbox,
		reconcile.CheckRecordedDiscrepancies:    payments(r.RecordedDiscrepancies),
		reconcile.CheckRefundsNotCredited:       refunds(r.RefundsNotCredited),
		reconcile.CheckRefundsNotMarked:         refunds(r.RefundsNotMarked),
		reconcile.CheckCredits:                  credits,
		reconcile.CheckRefundsInFlight:          refunds(r.RefundsInFlight),
		reconcile.CheckRejectedRefunds:          refunds(r.RejectedRefunds),
		reconcile.CheckUnsettledRejections:      refunds(r.UnsettledRejections),
		reconcile.CheckNegativeBalances:         negative,
		reconcile.CheckOrderRefunds:             orderRefunds,
	}
	for _, c := range r.Checks() {
		if err := sections[c.Name].write(w, c); err != nil {
			return err
		}
	}
	return nil
}

// section is the details of one check: a table under a title.
type section struct {
	header string
	rows   []string
	count  int64
}

func (s section) write(w io.Writer, c reconcile.Check) error {
	if s.count == 0 {
		return nil
	}
	title := fmt.Sprintf("\n%s (%s, %d", c.Name, c.Severity, s.count)
	if int64(len(s.rows)) < s.count {
		title += fmt.Sprintf(", first %d listed", len(s.rows))
	}
	fmt.Fprintln(w, title+"):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  "+s.header)
	for _, row := range s.rows {
		fmt.Fprintln(tw, "  "+row)
	}
	return tw.Flush()
}

// orderStatus names an order status as docs/design.md does.
func orderStatus(status int16, paid bool) string {
	if status == reconcile.NoOrder {
		return "missing"
	}
	s := trade.OrderStatus(status)
	name := s.String()
	if s == trade.Cancelled && paid {
		name += " after payment"
	}
	return name + " (" + strconv.Itoa(int(status)) + ")"
}

// payOrderStatus names a pay order status as docs/design.md does.
func payOrderStatus(status int16) string {
	return pay.PayOrderStatus(status).String() + " (" + strconv.Itoa(int(status)) + ")"
}

func payOrder(id int64, status *int16) string {
	if status == nil {
		return "none"
	}
	return strconv.FormatInt(id, 10) + ", " + payOrderStatus(*status)
}
