package main

import (
	"bytes"
	"context"
	"net/url"
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

// strongSecret is long enough for a process outside development.
const strongSecret = "paytradectl-test-secret-of-32-bytes-or-more"

func TestTokenPrintsABareTokenTheServicesAccept(t *testing.T) {
	tests := []struct {
		name       string
		vars       map[string]string
		args       []string
		secret     string
		want       auth.Principal
		wantWarned bool
	}{
		{"user", map[string]string{"AUTH_JWT_SECRET": strongSecret}, []string{"token", "-user", "7"}, strongSecret,
			auth.User(7), false},
		{"user with dev secret", map[string]string{"PAYTRADE_DEV": "1"}, []string{"token", "-user", "1"}, auth.DevSecret,
			auth.User(1), true},
		{"service", map[string]string{"AUTH_JWT_SECRET": strongSecret}, []string{"token", "-service"}, strongSecret,
			auth.Service("paytradectl"), false},
		{"named service", map[string]string{"AUTH_JWT_SECRET": strongSecret}, []string{"token", "-service", "-sub", "trade", "-ttl", "1h"}, strongSecret,
			auth.Service("trade"), false},
		{"operator", map[string]string{"AUTH_JWT_SECRET": strongSecret}, []string{"token", "-operator"}, strongSecret,
			auth.Operator("paytradectl"), false},
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
			got, err := auth.NewAuthenticator([]byte(tt.secret)).Parse(token)
			if err != nil {
				t.Fatalf("Parse printed token: %v", err)
			}
			if got != tt.want {
				t.Errorf("token is for %+v, want %+v", got, tt.want)
			}
			if warned := strings.Contains(stderr, "PAYTRADE_DEV"); warned != tt.wantWarned {
				t.Errorf("warned = %v, want %v (stderr %q)", warned, tt.wantWarned, stderr)
			}
		})
	}
}

func TestTokenRefusesToSignWithoutAStrongSecret(t *testing.T) {
	for name, vars := range map[string]map[string]string{
		"no secret":              nil,
		"short secret":           {"AUTH_JWT_SECRET": "s3cret"},
		"the published secret":   {"AUTH_JWT_SECRET": auth.DevSecret},
		"PAYTRADE_DEV=0":         {"PAYTRADE_DEV": "0"},
		"PAYTRADE_DEV malformed": {"PAYTRADE_DEV": "yes", "AUTH_JWT_SECRET": strongSecret},
	} {
		t.Run(name, func(t *testing.T) {
			stdout, stderr, err := runCtl(t, env(vars), "token", "-operator")
			if err == nil || stdout != "" {
				t.Fatalf("run = %q, %v; want no token and an error", stdout, err)
			}
			if s := vars["AUTH_JWT_SECRET"]; s != "" && strings.Contains(err.Error()+stderr, s) {
				t.Errorf("the refusal %q names the secret", err)
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
	if p, err := auth.NewAuthenticator([]byte(auth.DevSecret)).Parse(strings.TrimSpace(stdout)); err == nil {
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
		{"token sub without service", []string{"token", "-user", "1", "-sub", "trade"}},
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
