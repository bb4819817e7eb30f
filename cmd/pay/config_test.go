package main

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/paytrade/paytrade/internal/auth"
	"github.com/paytrade/paytrade/internal/authtest"
	"github.com/paytrade/paytrade/internal/testenv"
)

// loadConfigFrom loads env as the whole environment, on a laptop
// (PAYTRADE_DEV=1) unless env says otherwise.
func loadConfigFrom(env map[string]string) (payConfig, error) {
	return loadConfig(func(k string) string {
		if v, ok := env[k]; ok || k != "PAYTRADE_DEV" {
			return v
		}
		return "1"
	})
}

func TestLoadConfigReadsTheRefundConsumer(t *testing.T) {
	c, err := loadConfigFrom(map[string]string{
		"PAY_PREFETCH": "4", "PAY_RETRY_MAX_ATTEMPTS": "5", "PAY_RECOVERER": "requeue",
		"MQ_PAY_REFUND_QUEUE": "q", "MQ_TRADE_EXCHANGE": "x",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Consumer.Prefetch != 4 || c.Consumer.Retry.MaxAttempts != 5 || c.Consumer.Recoverer != "requeue" ||
		c.Topology.RefundQueue != "q" || c.Topology.TradeExchange != "x" || !c.Idempotent {
		t.Errorf("config = %+v, %+v", c.Consumer, c.Topology)
	}
	for name, value := range map[string]string{"PAY_RECOVERER": "drop", "PAY_PREFETCH": "0", "MQ_QUEUE_TYPE": "stream"} {
		if _, err := loadConfigFrom(map[string]string{name: value}); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%q: %v, want a refusal naming it", name, value, err)
		}
	}
}

// The pepper fails closed as the signing keys do: outside development pay
// refuses to start without one, or with one too short or malformed, and
// no refusal shows it; in development one is derived from pay's key.
func TestLoadConfigRefusesToStartWithoutAPepperOutsideDevelopment(t *testing.T) {
	keys := authtest.Shared(t).Dir(t, auth.IssuerPay)
	short := "k1:" + base64.StdEncoding.EncodeToString([]byte("only-twenty-one-bytes"))
	for name, env := range map[string]map[string]string{
		"no pepper":         {"PAYTRADE_DEV": "0", "PAYTRADE_KEYS_DIR": keys, "PAY_MQ_TRADE_USER": "trade"},
		"a short pepper":    {"PAYTRADE_DEV": "0", "PAYTRADE_KEYS_DIR": keys, "PAY_MQ_TRADE_USER": "trade", "PAY_PASSWORD_PEPPERS": short},
		"no key id":         {"PAYTRADE_DEV": "0", "PAYTRADE_KEYS_DIR": keys, "PAY_MQ_TRADE_USER": "trade", "PAY_PASSWORD_PEPPERS": strings.TrimPrefix(testenv.PayPeppers, "test:")},
		"short, in dev too": {"PAY_PASSWORD_PEPPERS": short},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := loadConfigFrom(env)
			if err == nil || !strings.Contains(err.Error(), "PAY_PASSWORD_PEPPERS") {
				t.Fatalf("err = %v, want a refusal naming PAY_PASSWORD_PEPPERS", err)
			}
			if v := env["PAY_PASSWORD_PEPPERS"]; v != "" && strings.Contains(err.Error(), v[strings.Index(v, ":")+1:]) {
				t.Errorf("the refusal shows the pepper: %v", err)
			}
		})
	}
	c, err := loadConfigFrom(map[string]string{"PAYTRADE_DEV": "0", "PAYTRADE_KEYS_DIR": keys, "PAY_MQ_TRADE_USER": "trade", "PAY_PASSWORD_PEPPERS": testenv.PayPeppers})
	if err != nil || len(c.Peppers) != 1 || c.Peppers[0].ID != "test" || c.DevPepper {
		t.Errorf("with a pepper: %v, %v", c.Peppers, err)
	}
	dev, err := loadConfigFrom(map[string]string{})
	if err != nil || len(dev.Peppers) != 1 || !dev.DevPepper || !strings.HasPrefix(dev.Peppers[0].ID, "dev-") {
		t.Errorf("in development without a pepper: %v (derived %v), %v; want one derived", dev.Peppers, dev.DevPepper, err)
	}
}
