package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/paytrade/paytrade/services/trade/postgres"
)

// runRefunds lists the refunds pay rejected and settles them: a retry
// under a new refund id, or a resolution the operator records. Reconcile
// fails while a rejected refund is unsettled.
func runRefunds(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("refunds: need list, retry or resolve")
	}
	fs := flag.NewFlagSet("refunds "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	all := fs.Bool("all", false, "list: settled rejected refunds too")
	limit := fs.Int("limit", 100, "list: at most this many")
	id := fs.String("id", "", "retry, resolve: the rejected refund's id")
	note := fs.String("note", "", "resolve: how the refund was settled (required)")
	if done, err := parseFlags(fs, args[1:]); done || err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	pool, err := openDatabase(ctx, getenv, "TRADE_DATABASE_URL", defaultTradeDatabaseURL)
	if err != nil {
		return fmt.Errorf("refunds: %w", err)
	}
	defer pool.Close()
	events := postgres.DefaultEvents
	if v := getenv("MQ_TRADE_EXCHANGE"); v != "" {
		events.Exchange = v
	}
	if v := getenv("MQ_REFUND_REQUESTED_KEY"); v != "" {
		events.RefundRequestedKey = v
	}
	store := postgres.New(pool).WithEvents(events)

	if args[0] == "list" {
		refunds, err := store.RejectedRefunds(ctx, *all, *limit)
		if err != nil {
			return fmt.Errorf("refunds list: %w", err)
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "REFUND\tORDER\tAMOUNT\tREASON\tREJECTED AS\tREQUESTED\tSETTLEMENT")
		for _, r := range refunds {
			settlement := "unsettled"
			if r.Settlement != "" {
				settlement = r.Settlement
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\n", r.ID, r.OrderID, r.Amount, r.Reason, r.Rejection,
				r.RequestedAt.Format(time.RFC3339), settlement)
		}
		return tw.Flush()
	}
	refundID, err := uuid.Parse(*id)
	if err != nil {
		return fmt.Errorf("refunds %s: need -id of a rejected refund: %w", args[0], err)
	}
	switch args[0] {
	case "retry":
		r, err := store.RetryRefund(ctx, refundID, "")
		if err != nil {
			return fmt.Errorf("refunds retry: %w", err)
		}
		_, err = fmt.Fprintf(stdout, "refund %s retried as refund %s of %d for order %d: requested at pay again\n", refundID, r.ID, r.Amount, r.OrderID)
		return err
	case "resolve":
		r, err := store.ResolveRefund(ctx, refundID, *note)
		if err != nil {
			return fmt.Errorf("refunds resolve: %w", err)
		}
		_, err = fmt.Fprintf(stdout, "refund %s of %d for order %d settled: %s\n", r.ID, r.Amount, r.OrderID, r.Settlement)
		return err
	}
	return fmt.Errorf("refunds: unknown command %q (want list, retry or resolve)", args[0])
}
