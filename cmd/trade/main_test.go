package main

import (
	"context"
	"io"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/paytrade/paytrade/internal/auth"
	"github.com/paytrade/paytrade/internal/authtest"
	"github.com/paytrade/paytrade/internal/testenv"
)

// startTrade runs the service as main does, in this process; see testenv.StartInProcess.
func startTrade(t *testing.T, env map[string]string) (string, func() error) {
	t.Helper()
	return testenv.StartInProcess(t, "trade", run, env)
}

func TestTradeBinaryMigratesServesAndStopsGracefully(t *testing.T) {
	t.Parallel()
	amqpURL := testenv.AMQPURL(t)
	env := testenv.NewTopology(t, amqpURL).Map()
	maps.Copy(env, map[string]string{
		"TRADE_DATABASE_URL": testenv.NewEmptyDatabase(t, "bin"),
		"AMQP_URL":           amqpURL,
		"PAYTRADE_KEYS_DIR":  authtest.Shared(t).Dir(t, auth.IssuerTrade),
		"TRADE_MQ_PAY_USER":  "pay", // no event flows here; trade still must name its sender
		"TRADE_HTTP_ADDR":    "127.0.0.1:0",
	})
	base, stop := startTrade(t, env)

	get := func(path string) (int, string) {
		req, _ := http.NewRequest("GET", base+path, nil)
		tok := authtest.Shared(t).User(t, 1)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	testenv.WaitFor(t, 10*time.Second, "/readyz to answer 200 with database and broker up", func() bool {
		code, _ := get("/readyz")
		return code == 200
	})
	if code, body := get("/orders"); code != 200 || strings.TrimSpace(body) != "[]" {
		t.Errorf("orders of a new user from a migrated database = %d %s, want 200 []", code, body)
	}
	if err := stop(); err != nil {
		t.Errorf("graceful stop: %v", err)
	}
}

func TestTradeRefusesMalformedConfiguration(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"TRADE_PREFETCH": "0", "TRADE_RECOVERER": "retry-forever", "MQ_QUEUE_TYPE": "stream",
		"TRADE_PAY_CHECK_GRACE": "1h", "TRADE_PAY_CHECK_SPEC": "every minute", "TRADE_ORDER_TIMEOUT": "30m", "TRADE_RETRY_MULTIPLIER": "0.5",
		"TRADE_INBOX_RETENTION": "1h",
	}
	err := run(context.Background(), nil, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil {
		t.Fatal("run with bad settings: no error")
	}
	for _, name := range []string{"TRADE_PREFETCH", "TRADE_RECOVERER", "MQ_QUEUE_TYPE", "TRADE_ORDER_TIMEOUT", "TRADE_RETRY_MULTIPLIER", "TRADE_PAY_CHECK_SPEC", "TRADE_INBOX_RETENTION"} {
		if !strings.Contains(err.Error(), name) {
			t.Errorf("error %q does not name %s", err, name)
		}
	}
}

func TestTradeHealthcheckArgumentProbesTheRunningService(t *testing.T) {
	t.Parallel()
	amqpURL := testenv.AMQPURL(t)
	env := testenv.NewTopology(t, amqpURL).Map()
	maps.Copy(env, map[string]string{
		"TRADE_DATABASE_URL": testenv.NewEmptyDatabase(t, "health"),
		"AMQP_URL":           amqpURL,
		"TRADE_HTTP_ADDR":    "127.0.0.1:0",
		"PAYTRADE_DEV":       "1",
	})
	base, _ := startTrade(t, env)
	probe := map[string]string{"TRADE_HTTP_ADDR": strings.TrimPrefix(base, "http://")}
	testenv.WaitFor(t, 10*time.Second, "the health check to pass", func() bool {
		return run(context.Background(), []string{"healthcheck"}, func(k string) string { return probe[k] }, io.Discard, io.Discard) == nil
	})
	probe["TRADE_HTTP_ADDR"] = "127.0.0.1:1"
	if err := run(context.Background(), []string{"healthcheck"}, func(k string) string { return probe[k] }, io.Discard, io.Discard); err == nil {
		t.Fatal("health check of a port nobody listens on passed")
	}
}
