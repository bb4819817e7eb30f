package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/paytrade/paytrade/services/pay/postgres"
)

// runUnlock lifts a wallet's payment password lock, after the owner has
// proved who they are some other way.
func runUnlock(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("unlock", flag.ContinueOnError)
	fs.SetOutput(stderr)
	user := fs.Int64("user", 0, "the user whose wallet to unlock")
	if done, err := parseFlags(fs, args); done || err != nil {
		return err
	}
	if *user <= 0 {
		return errors.New("unlock: need -user N (N > 0)")
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	pool, err := openDatabase(ctx, getenv, "PAY_DATABASE_URL", defaultPayDatabaseURL)
	if err != nil {
		return fmt.Errorf("unlock: %w", err)
	}
	defer pool.Close()
	wasLocked, err := postgres.New(pool, postgres.Config{}).LiftPasswordLock(ctx, *user)
	if err != nil {
		return fmt.Errorf("unlock: %w", err)
	}
	what := "was not locked; its count of wrong payment passwords starts again"
	if wasLocked {
		what = "unlocked: it can pay again, and its count of wrong payment passwords starts again"
	}
	_, err = fmt.Fprintf(stdout, "wallet of user %d %s\n", *user, what)
	return err
}
