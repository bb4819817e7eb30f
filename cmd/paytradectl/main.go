// Command paytradectl is the operator's tool for paytrade: it mints tokens,
// prepares databases, shows and replays the messages trade parked in the
// error queue, and reconciles the pay and trade databases.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/paytrade/paytrade/internal/auth"
	"github.com/paytrade/paytrade/internal/config"
	"github.com/paytrade/paytrade/internal/database"
)

// The databases a local setup uses when the environment names none.
const (
	defaultPayDatabaseURL   = "postgres://postgres@127.0.0.1:5432/pay?sslmode=disable"
	defaultTradeDatabaseURL = "postgres://postgres@127.0.0.1:5432/trade?sslmode=disable"
)

const usage = `usage: paytradectl <command> [flags]

commands:
  keys [-dir DIR] [-split PARENT] [-keep]
                                         make a key set in DIR (default $PAYTRADE_KEYS_DIR): a
                                         private key per issuer (users.key, operator.key,
                                         trade.key, pay.key) and jwks.json, their public keys;
                                         never over an existing file. -split also writes
                                         PARENT/pay and PARENT/trade with only that service's key
                                         and jwks.json; -keep keeps a set DIR already holds
  token -user N [-aud pay,trade] [-ttl 1h]
                                         print a bearer token for user N, signed with users.key
  token -service [-aud pay|trade] [-ttl 1h]
                                         print a service token: for pay signed with trade.key
                                         (pay orders only), for trade signed with pay.key
  token -operator [-sub NAME] [-aud pay,trade] [-ttl 1h]
                                         print an operator token (accounts, deposits), signed
                                         with operator.key
  db create                              create the pay and trade databases if missing
  errors list [-queue Q] [-limit 100] [-json]
                                         show the messages parked in the error queue, leaving
                                         them there (each is marked redelivered and counted
                                         as delivered again)
  errors replay [-queue Q] (-id ID[,ID]... | -all) [-dry-run]
                                         publish parked messages back to the exchange and key
                                         they failed from; a parked copy leaves the queue only
                                         once its replay is confirmed and routed
  reconcile [-in-flight 1m] [-details 100]
                                         compare the pay and trade databases; exits non-zero
                                         on any broken invariant (warnings do not count)
  refunds list [-all] [-limit 100]       show the refunds pay rejected that nobody settled (-all: settled too)
  refunds retry -id REFUND               settle a rejected refund by asking pay again, under a new refund id
  refunds resolve -id REFUND -note TEXT  settle a rejected refund by recording how it was resolved
  unlock -user N                         lift the lock on user N's wallet that five wrong payment
                                         passwords in a row set (and forget those passwords)
  help                                   show this text

environment:
  PAYTRADE_KEYS_DIR   the key set's directory (paytradectl keys makes one); token reads the
                      private key of the issuer it signs as
  PAYTRADE_DEV        1 on a laptop: sign with the published development key set when
                      PAYTRADE_KEYS_DIR is unset
  PAY_DATABASE_URL    default ` + defaultPayDatabaseURL + `
  TRADE_DATABASE_URL  default ` + defaultTradeDatabaseURL + `
  AMQP_URL            default amqp://guest:guest@127.0.0.1:5672/ (and AMQP_CONNECT_TIMEOUT, AMQP_HEARTBEAT)
  MQ_ERROR_QUEUE      the error queue, default error.queue
  MQ_TRADE_EXCHANGE, MQ_REFUND_REQUESTED_KEY
                      where a retried refund's refund.requested goes, default trade.topic, refund.requested
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "paytradectl:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "keys":
		return runKeys(args[1:], getenv, stdout, stderr)
	case "token":
		return runToken(args[1:], getenv, stdout, stderr)
	case "db":
		return runDB(ctx, args[1:], getenv, stdout, stderr)
	case "errors":
		return runErrors(ctx, args[1:], getenv, stdout, stderr)
	case "reconcile":
		return runReconcile(ctx, args[1:], getenv, stdout, stderr)
	case "unlock":
		return runUnlock(ctx, args[1:], getenv, stdout, stderr)
	case "refunds":
		return runRefunds(ctx, args[1:], getenv, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stderr, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

// parseFlags parses args into fs and refuses leftover arguments, which are
// always a mistake here (a misspelt flag after a positional one, say).
// It reports done when the user only asked for help.
func parseFlags(fs *flag.FlagSet, args []string) (done bool, err error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil
		}
		return false, fmt.Errorf("%s: %w", fs.Name(), err)
	}
	if fs.NArg() > 0 {
		return false, fmt.Errorf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return false, nil
}

func runKeys(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("keys", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", getenv("PAYTRADE_KEYS_DIR"), "the directory to write the whole key set into")
	split := fs.String("split", "", "also write PARENT/pay and PARENT/trade, each with only that service's private key and jwks.json")
	keep := fs.Bool("keep", false, "if -dir already holds a key set, keep it (and split it where missing) instead of failing")
	if done, err := parseFlags(fs, args); done || err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("keys: need -dir DIR or PAYTRADE_KEYS_DIR")
	}
	set, err := keySet(*dir, *keep, stdout)
	if err != nil {
		return fmt.Errorf("keys: %w", err)
	}
	if *split == "" {
		return nil
	}
	for _, service := range []string{auth.IssuerPay, auth.IssuerTrade} {
		own := filepath.Join(*split, service)
		if *keep && exists(filepath.Join(own, auth.JWKSFile)) {
			continue
		}
		if err := auth.WritePrivateKey(own, set[service]); err != nil {
			return fmt.Errorf("keys: %w", err)
		}
		if err := auth.WriteJWKS(own, set.Public()); err != nil {
			return fmt.Errorf("keys: %w", err)
		}
		fmt.Fprintf(stdout, "%s\n%s\n", filepath.Join(own, auth.KeyFile(service)), filepath.Join(own, auth.JWKSFile))
	}
	return nil
}

// keySet makes a new key set in dir and lists its files on stdout, or with
// keep reads the one dir already holds.
func keySet(dir string, keep bool, stdout io.Writer) (auth.KeySet, error) {
	if keep && exists(filepath.Join(dir, auth.JWKSFile)) {
		set := auth.KeySet{}
		for _, iss := range auth.Issuers() {
			s, err := auth.LoadSigner(dir, iss)
			if err != nil {
				return nil, err
			}
			set[iss] = s
		}
		fmt.Fprintf(stdout, "%s: kept the key set there\n", dir)
		return set, nil
	}
	set, err := auth.NewKeySet()
	if err != nil {
		return nil, err
	}
	if err := set.WriteDir(dir); err != nil {
		return nil, err
	}
	for _, k := range set.Public() {
		fmt.Fprintf(stdout, "%s\t%s\n", filepath.Join(dir, auth.KeyFile(k.Issuer)), k.KeyID)
	}
	fmt.Fprintln(stdout, filepath.Join(dir, auth.JWKSFile))
	return set, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func runToken(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	user := fs.Int64("user", 0, "mint a token for this user id, signed with users.key")
	service := fs.Bool("service", false, "mint a service token: for pay with trade.key, for trade with pay.key")
	operator := fs.Bool("operator", false, "mint an operator token (accounts and deposits), signed with operator.key")
	sub := fs.String("sub", "paytradectl", "the operator's name (with -operator)")
	aud := fs.String("aud", "", "the services the token is for, comma-separated (default pay,trade; pay for -service)")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid (at most 24h)")
	if done, err := parseFlags(fs, args); done || err != nil {
		return err
	}
	subSet := false
	fs.Visit(func(f *flag.Flag) { subSet = subSet || f.Name == "sub" })
	audience := []string{auth.AudiencePay, auth.AudienceTrade}
	if *aud != "" {
		audience = strings.Split(*aud, ",")
	}
	for _, a := range audience {
		if a != auth.AudiencePay && a != auth.AudienceTrade {
			return fmt.Errorf("token: -aud %q: want pay, trade or pay,trade", *aud)
		}
	}

	var p auth.Principal
	var issuer string
	switch {
	case btoi(*user != 0)+btoi(*service)+btoi(*operator) > 1:
		return errors.New("token: -user, -service and -operator exclude each other")
	case *service && subSet:
		return errors.New("token: a service token's sub is the service that signs it; -sub is for -operator")
	case *service:
		if *aud == "" {
			audience = []string{auth.AudiencePay}
		}
		if len(audience) != 1 {
			return errors.New("token: a service token is for one service: -aud pay (signed by trade) or -aud trade (signed by pay)")
		}
		// A service token for pay is trade's, and for trade pay's.
		issuer = auth.IssuerTrade
		if audience[0] == auth.AudienceTrade {
			issuer = auth.IssuerPay
		}
		p = auth.Service(issuer)
	case *operator:
		issuer, p = auth.IssuerOperator, auth.Operator(*sub)
	case subSet:
		return errors.New("token: -sub needs -operator")
	case *user > 0:
		issuer, p = auth.IssuerUsers, auth.User(*user)
	default:
		return errors.New("token: need -user N (N > 0), -service or -operator")
	}

	r := config.NewReader(getenv)
	signer, dev := auth.ReadSigner(r, issuer)
	if err := r.Err(); err != nil {
		return fmt.Errorf("token: %w", err)
	}
	if dev {
		fmt.Fprintln(stderr, "paytradectl: warning: PAYTRADE_DEV=1: signing for a laptop, not for production")
	}
	token, err := signer.Mint(p, audience, *ttl, time.Now())
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, token)
	return err
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func runDB(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return errors.New("db: missing subcommand")
		}
		return fmt.Errorf("db: unknown subcommand %q", args[0])
	}
	fs := flag.NewFlagSet("db create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if done, err := parseFlags(fs, args[1:]); done || err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for _, db := range []struct{ env, fallback string }{
		{"PAY_DATABASE_URL", defaultPayDatabaseURL},
		{"TRADE_DATABASE_URL", defaultTradeDatabaseURL},
	} {
		dbURL := getenv(db.env)
		if dbURL == "" {
			dbURL = db.fallback
		}
		if err := createDatabase(ctx, db.env, dbURL, stdout); err != nil {
			return err
		}
	}
	return nil
}

// createDatabase creates the database at dbURL unless it exists and says which.
func createDatabase(ctx context.Context, env, dbURL string, stdout io.Writer) error {
	cfg, err := database.ParseURL(dbURL)
	if err != nil {
		return fmt.Errorf("%s: %w", env, err)
	}
	existed, err := databaseExists(ctx, cfg)
	if err != nil {
		return fmt.Errorf("%s: %w", env, err)
	}
	what := "already exists"
	if !existed {
		if err := database.Create(ctx, dbURL); err != nil {
			return fmt.Errorf("%s: %w", env, err)
		}
		what = "created"
	}
	_, err = fmt.Fprintf(stdout, "database %s on %s:%d (%s): %s\n", cfg.Database, cfg.Host, cfg.Port, env, what)
	return err
}

// databaseExists connects to the database itself: PostgreSQL answers
// invalid_catalog_name when it does not exist.
func databaseExists(ctx context.Context, cfg *pgx.ConnConfig) (bool, error) {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err == nil {
		return true, conn.Close(ctx)
	}
	if pgErr, ok := errors.AsType[*pgconn.PgError](err); ok && pgErr.Code == "3D000" {
		return false, nil
	}
	return false, fmt.Errorf("connect: %w", err)
}
