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

// startPay runs the service as main does, in this process; see testenv.StartInProcess.
func startPay(t *testing.T, env map[string]string) (string, func() error) {
	t.Helper()
	return testenv.StartInProcess(t, "pay", run, env)
}

func TestPayBinaryMigratesServesAndStopsGracefully(t *testing.T) {
	amqpURL := testenv.AMQPURL(t)
	dbURL := testenv.NewEmptyDatabase(t, "bin")
	env := testenv.NewTopology(t, amqpURL).Map()
	maps.Copy(env, map[string]string{
		"PAY_DATABASE_URL":  dbURL,
		"AMQP_URL":          amqpURL,
		"PAYTRADE_KEYS_DIR": authtest.Shared(t).Dir(t, auth.IssuerPay),
		// No refund.requested flows here; pay still must name its sender.
		"PAY_MQ_TRADE_USER":    "trade",
		"PAY_HTTP_ADDR":        "127.0.0.1:0",
		"PAY_PASSWORD_PEPPERS": testenv.PayPeppers,
	})
	base, stop := startPay(t, env)

	get := func(path, token string) (int, string) {
		req, _ := http.NewRequest("GET", base+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := get("/healthz", ""); code != 200 {
		t.Errorf("/healthz = %d %s", code, body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := get("/readyz", "")
		if code == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz = %d %s after 10s, want 200 with database and broker up", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	svc := authtest.Shared(t).Service(t, auth.AudiencePay)
	if code, body := get("/pay-orders/biz/1", svc); code != 404 {
		t.Errorf("unknown pay order through the binary = %d %s, want 404 from a migrated database", code, body)
	}
	if err := stop(); err != nil {
		t.Errorf("graceful stop: %v", err)
	}
}

func TestPayRefusesMalformedConfiguration(t *testing.T) {
	env := map[string]string{"PAY_PASSWORD_CHECKS": "many", "AMQP_HEARTBEAT": "-1s"}
	err := run(context.Background(), nil, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "PAY_PASSWORD_CHECKS") || !strings.Contains(err.Error(), "AMQP_HEARTBEAT") {
		t.Errorf("run with bad settings = %v, want an error naming both", err)
	}
}
