package main

import (
	"bytes"
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/paytrade/paytrade/internal/auth"
	"github.com/paytrade/paytrade/internal/database"
	"github.com/paytrade/paytrade/internal/testenv"
)

func env(vars map[string]string) func(string) string {
	return func(key string) string { return vars[key] }
}

func runCtl(tb testing.TB, getenv func(string) string, args ...string) (stdout, stderr string, err error) {
	tb.Helper()
	var out, errOut bytes.Buffer
	err = run(context.Background(), args, getenv, &out, &errOut)
	return out.String(), errOut.String(), err
}

// newKeys runs paytradectl keys into a new directory and returns it.
func newKeys(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "keys")
	stdout, stderr, err := runCtl(t, env(nil), "keys", "-dir", dir)
	if err != nil {
		t.Fatalf("keys: %v (stderr %q)", err, stderr)
	}
	for _, name := range []string{"users.key", "operator.key", "trade.key", "pay.key", "jwks.json"} {
		if !strings.Contains(stdout, filepath.Join(dir, name)) {
			t.Errorf("keys did not list %s: %q", name, stdout)
		}
	}
	return dir
}

func TestKeysThenTokenRoundTripThroughTheServicesAuthenticators(t *testing.T) {
	dir := newKeys(t)
	public, err := auth.LoadJWKS(dir)
	if err != nil {
		t.Fatal(err)
	}
	withKeys := map[string]string{"PAYTRADE_KEYS_DIR": dir}
	tests := []struct {
		name       string
		vars       map[string]string
		args       []string
		audience   string // the service that must accept it
		refusedBy  string // the service that must refuse it, if any
		want       auth.Principal
		wantWarned bool
	}{
		{"user at pay", withKeys, []string{"token", "-user", "7"}, auth.AudiencePay, "", auth.User(7), false},
		{"user at trade", withKeys, []string{"token", "-user", "7"}, auth.AudienceTrade, "", auth.User(7), false},
		{"user for pay only", withKeys, []string{"token", "-user", "7", "-aud", "pay"}, auth.AudiencePay, auth.AudienceTrade, auth.User(7), false},
		{"service for pay, signed by trade", withKeys, []string{"token", "-service", "-ttl", "1h"}, auth.AudiencePay, auth.AudienceTrade, auth.Service("trade"), false},
		{"service for trade, signed by pay", withKeys, []string{"token", "-service", "-aud", "trade"}, auth.AudienceTrade, auth.AudiencePay, auth.Service("pay"), false},
		{"operator", withKeys, []string{"token", "-operator"}, auth.AudiencePay, "", auth.Operator("paytradectl"), false},
		{"named operator", withKeys, []string{"token", "-operator", "-sub", "alice"}, auth.AudiencePay, "", auth.Operator("alice"), false},
		{"user with the development keys", map[string]string{"PAYTRADE_DEV": "1"}, []string{"token", "-user", "1"}, auth.AudiencePay, "", auth.User(1), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, err := runCtl(t, env(tt.vars), tt.args...)
			if err != nil {
				t.Fatalf("run %v: %v (stderr %q)", tt.args, err, stderr)
			}
			token, ok := strings.CutSuffix(stdout, "\n")
			if !ok || strings.ContainsAny(token, " \n") {
				t.Fatalf("stdout = %q, want one bare token and a newline", stdout)
			}
			keys := public
			if tt.vars["PAYTRADE_DEV"] == "1" {
				keys = auth.DevKeySet().Public()
			}
			got, err := auth.NewAuthenticator(tt.audience, keys).Parse(token)
			if err != nil {
				t.Fatalf("%s refuses the printed token: %v", tt.audience, err)
			}
			if got != tt.want {
				t.Errorf("token is for %+v, want %+v", got, tt.want)
			}
			if tt.refusedBy != "" {
				if p, err := auth.NewAuthenticator(tt.refusedBy, keys).Parse(token); err == nil {
					t.Errorf("%s accepts the token too, as %+v", tt.refusedBy, p)
				}
			}
			if warned := strings.Contains(stderr, "PAYTRADE_DEV"); warned != tt.wantWarned {
				t.Errorf("warned = %v, want %v (stderr %q)", warned, tt.wantWarned, stderr)
			}
		})
	}
}

func TestKeysNeverOverwritesAKeySet(t *testing.T) {
	dir := newKeys(t)
	before, err := os.ReadFile(filepath.Join(dir, "operator.key"))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCtl(t, env(map[string]string{"PAYTRADE_KEYS_DIR": dir}), "keys"); err == nil {
		t.Fatal("a second paytradectl keys into the same directory succeeded")
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "operator.key")); !bytes.Equal(before, after) {
		t.Error("the refused paytradectl keys changed operator.key")
	}
	if _, _, err := runCtl(t, env(nil), "keys"); err == nil {
		t.Error("keys with neither -dir nor PAYTRADE_KEYS_DIR succeeded")
	}
}

func TestTokenRefusesToSignWithoutKeysOrWithTheDevelopmentKeys(t *testing.T) {
	devDir := filepath.Join(t.TempDir(), "dev")
	if err := auth.DevKeySet().WriteDir(devDir); err != nil {
		t.Fatal(err)
	}
	onlyPay := t.TempDir()
	set, err := auth.NewKeySet()
	if err != nil {
		t.Fatal(err)
	}
	if err := auth.WritePrivateKey(onlyPay, set[auth.IssuerPay]); err != nil {
		t.Fatal(err)
	}
	for name, vars := range map[string]map[string]string{
		"no keys":                     nil,
		"the development keys":        {"PAYTRADE_KEYS_DIR": devDir},
		"PAYTRADE_DEV=0":              {"PAYTRADE_DEV": "0"},
		"PAYTRADE_DEV malformed":      {"PAYTRADE_DEV": "yes", "PAYTRADE_KEYS_DIR": newKeys(t)},
		"a directory without the key": {"PAYTRADE_KEYS_DIR": onlyPay},
	} {
		t.Run(name, func(t *testing.T) {
			stdout, stderr, err := runCtl(t, env(vars), "token", "-operator")
			if err == nil || stdout != "" {
				t.Fatalf("run = %q, %v; want no token and an error", stdout, err)
			}
			if strings.Contains(err.Error()+stderr, "PRIVATE KEY") {
				t.Errorf("the refusal %q shows a key", err)
			}
		})
	}
}

func TestTokenTTL(t *testing.T) {
	stdout, _, err := runCtl(t, env(map[string]string{"PAYTRADE_DEV": "1"}), "token", "-user", "1", "-ttl", "1ns")
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	// The expiry has second precision, so wait past the next second.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond)))
	if p, err := auth.NewAuthenticator(auth.AudiencePay, auth.DevKeySet().Public()).Parse(strings.TrimSpace(stdout)); err == nil {
		t.Errorf("a token minted with -ttl 1ns parsed as %+v, want it expired", p)
	}
}

func TestRunRefusesBadUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"no command", nil},
		{"unknown command", []string{"frobnicate"}},
		{"token without who", []string{"token"}},
		{"token user zero", []string{"token", "-user", "0"}},
		{"token negative user", []string{"token", "-user", "-3"}},
		{"token user not a number", []string{"token", "-user", "alice"}},
		{"token user and service", []string{"token", "-user", "1", "-service"}},
		{"token service and operator", []string{"token", "-service", "-operator"}},
		{"token ttl beyond a day", []string{"token", "-user", "1", "-ttl", "25h"}},
		{"token sub without operator", []string{"token", "-user", "1", "-sub", "trade"}},
		{"token sub of a service", []string{"token", "-service", "-sub", "trade"}},
		{"token service for both", []string{"token", "-service", "-aud", "pay,trade"}},
		{"token unknown audience", []string{"token", "-user", "1", "-aud", "bank"}},
		{"keys stray argument", []string{"keys", "-dir", "x", "extra"}},
		{"token unknown flag", []string{"token", "-admin"}},
		{"token bad ttl", []string{"token", "-user", "1", "-ttl", "forever"}},
		{"token negative ttl", []string{"token", "-user", "1", "-ttl", "-1h"}},
		{"token stray argument", []string{"token", "-user", "1", "extra"}},
		{"db without subcommand", []string{"db"}},
		{"db unknown subcommand", []string{"db", "drop"}},
		{"db create stray argument", []string{"db", "create", "extra"}},
		{"errors without subcommand", []string{"errors"}},
		{"errors unknown subcommand", []string{"errors", "purge"}},
		{"errors list stray argument", []string{"errors", "list", "extra"}},
		{"errors list negative limit", []string{"errors", "list", "-limit", "-1"}},
		{"errors replay without selection", []string{"errors", "replay"}},
		{"errors replay id and all", []string{"errors", "replay", "-all", "-id", "m1"}},
		{"errors replay stray argument", []string{"errors", "replay", "-all", "extra"}},
		{"reconcile stray argument", []string{"reconcile", "extra"}},
		{"reconcile negative in-flight", []string{"reconcile", "-in-flight", "-1m"}},
		{"reconcile no details", []string{"reconcile", "-details", "0"}},
		{"unlock without user", []string{"unlock"}},
		{"unlock stray argument", []string{"unlock", "-user", "1", "extra"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, _, err := runCtl(t, env(map[string]string{"PAYTRADE_DEV": "1"}), tt.args...)
			if err == nil {
				t.Errorf("run %v: nil error, want one", tt.args)
			}
			if stdout != "" {
				t.Errorf("run %v wrote %q to stdout, want nothing", tt.args, stdout)
			}
		})
	}
}

func TestHelpPrintsUsageToStderr(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}} {
		stdout, stderr, err := runCtl(t, env(nil), args...)
		if err != nil {
			t.Errorf("run %v: %v, want nil", args, err)
		}
		if stdout != "" {
			t.Errorf("run %v stdout = %q, want nothing", args, stdout)
		}
		for _, want := range []string{"token", "db create", "errors list", "errors replay", "reconcile", "MQ_ERROR_QUEUE"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("run %v usage %q does not mention %q", args, stderr, want)
			}
		}
	}
}

// testDatabaseURL returns a URL on the test server naming a database no
// other test uses, dropped when the test ends.
func testDatabaseURL(tb testing.TB, prefix string) (dbURL, name string) {
	tb.Helper()
	u, err := url.Parse(testenv.PostgresURL(tb))
	if err != nil {
		tb.Fatalf("parse postgres url: %v", err)
	}
	name = "pt_" + strings.ReplaceAll(testenv.Name(tb, prefix), ".", "_")
	u.Path = "/" + name
	dbURL = u.String()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := database.Drop(ctx, dbURL); err != nil {
			tb.Errorf("drop %s: %v", name, err)
		}
	})
	return dbURL, name
}

func TestDBCreateCreatesMissingDatabasesOnce(t *testing.T) {
	payURL, payName := testDatabaseURL(t, "pay")
	tradeURL, tradeName := testDatabaseURL(t, "trade")
	getenv := env(map[string]string{"PAY_DATABASE_URL": payURL, "TRADE_DATABASE_URL": tradeURL})

	tests := []struct {
		name string
		want string
	}{
		{"first run", "created"},
		{"second run", "already exists"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, err := runCtl(t, getenv, "db", "create")
			if err != nil {
				t.Fatalf("db create: %v (stderr %q)", err, stderr)
			}
			lines := strings.Split(strings.TrimSpace(stdout), "\n")
			if len(lines) != 2 {
				t.Fatalf("stdout = %q, want one line per database", stdout)
			}
			for i, name := range []string{payName, tradeName} {
				if !strings.Contains(lines[i], name) || !strings.HasSuffix(lines[i], ": "+tt.want) {
					t.Errorf("line %d = %q, want it to name %s and end %q", i, lines[i], name, tt.want)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for _, u := range []string{payURL, tradeURL} {
				pool, err := database.Open(ctx, u)
				if err != nil {
					t.Fatalf("open created database: %v", err)
				}
				pool.Close()
			}
		})
	}
}

func TestDBCreateReportsAnUnreachableServer(t *testing.T) {
	getenv := env(map[string]string{
		// Port 1 on localhost: nothing listens there, so the refusal is immediate.
		"PAY_DATABASE_URL": "postgres://postgres@127.0.0.1:1/pay?sslmode=disable&connect_timeout=2",
	})
	_, _, err := runCtl(t, getenv, "db", "create")
	if err == nil || !strings.Contains(err.Error(), "PAY_DATABASE_URL") {
		t.Errorf("db create against a closed port = %v, want an error naming PAY_DATABASE_URL", err)
	}
}

func TestKeysSplitGivesEachServiceItsOwnKeyOnlyAndKeepMakesItOnce(t *testing.T) {
	root := t.TempDir()
	all := filepath.Join(root, "ctl")
	for range 2 {
		if _, stderr, err := runCtl(t, env(nil), "keys", "-dir", all, "-split", root, "-keep"); err != nil {
			t.Fatalf("keys -keep: %v (stderr %q)", err, stderr)
		}
	}
	public, err := auth.LoadJWKS(all)
	if err != nil {
		t.Fatal(err)
	}
	for _, service := range []string{auth.IssuerPay, auth.IssuerTrade} {
		entries, err := os.ReadDir(filepath.Join(root, service))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if want := []string{"jwks.json", service + ".key"}; strings.Join(names, " ") != strings.Join(want, " ") {
			t.Errorf("%s's directory holds %v, want %v", service, names, want)
		}
		own, err := auth.LoadSigner(filepath.Join(root, service), service)
		if err != nil {
			t.Fatal(err)
		}
		kept, err := auth.LoadSigner(all, service)
		if err != nil {
			t.Fatal(err)
		}
		if own.Public().KeyID != kept.Public().KeyID {
			t.Errorf("%s's split key %s is not the set's %s: the second run made a new one", service, own.Public().KeyID, kept.Public().KeyID)
		}
		splitJWKS, err := auth.LoadJWKS(filepath.Join(root, service))
		if err != nil {
			t.Fatal(err)
		}
		if len(splitJWKS) != len(public) {
			t.Errorf("%s's jwks has %d keys, want the set's %d", service, len(splitJWKS), len(public))
		}
	}
}
