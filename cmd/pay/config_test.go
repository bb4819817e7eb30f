package main

import (
	"strings"
	"testing"
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
