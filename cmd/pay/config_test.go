package main

import (
	"slices"
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

func TestLoadConfigAcceptsEachPublishModeAndListsTheUnsafeOnes(t *testing.T) {
	tests := []struct {
		setting       string
		wantMode      string
		wantSeedStyle []string
	}{
		{"", publishOutbox, nil},
		{"outbox", publishOutbox, nil},
		{"inline-confirmed", publishInlineConfirmed, []string{"PAY_PUBLISH_MODE=inline-confirmed"}},
		{"inline", publishInline, []string{"PAY_PUBLISH_MODE=inline"}},
	}
	for _, tt := range tests {
		t.Run(tt.setting, func(t *testing.T) {
			c, err := loadConfigFrom(map[string]string{"PAY_PUBLISH_MODE": tt.setting})
			if err != nil {
				t.Fatalf("loadConfig with PAY_PUBLISH_MODE=%q: %v", tt.setting, err)
			}
			if c.PublishMode != tt.wantMode {
				t.Errorf("PublishMode = %q, want %q", c.PublishMode, tt.wantMode)
			}
			got := c.seedStyle()
			if !slices.Equal(got, tt.wantSeedStyle) || (tt.wantSeedStyle == nil) != (got == nil) {
				t.Errorf("seedStyle() = %#v, want %#v", got, tt.wantSeedStyle)
			}
		})
	}
}

func TestLoadConfigRefusesAnUnknownPublishMode(t *testing.T) {
	for _, setting := range []string{"Outbox", "inline_confirmed", "confirmed", "none", " inline"} {
		t.Run(setting, func(t *testing.T) {
			_, err := loadConfigFrom(map[string]string{"PAY_PUBLISH_MODE": setting})
			if err == nil || !strings.Contains(err.Error(), "PAY_PUBLISH_MODE") {
				t.Errorf("loadConfig with PAY_PUBLISH_MODE=%q: %v, want an error naming PAY_PUBLISH_MODE", setting, err)
			}
		})
	}
}

func TestLoadConfigReadsCrashPointsAndRefusesAnNthBelowOne(t *testing.T) {
	c, err := loadConfigFrom(map[string]string{"PAYTRADE_CRASH_POINTS": "pay-after-commit@3"})
	if err != nil {
		t.Fatalf("loadConfig with a crash point: %v", err)
	}
	if got := c.Crash.String(); got != "pay-after-commit@3" {
		t.Errorf("crash points %q, want pay-after-commit@3", got)
	}
	for _, setting := range []string{"x@0", "x@y", "pay-after-commit,x@-2"} {
		t.Run(setting, func(t *testing.T) {
			_, err := loadConfigFrom(map[string]string{"PAYTRADE_CRASH_POINTS": setting})
			if err == nil || !strings.Contains(err.Error(), "PAYTRADE_CRASH_POINTS") {
				t.Errorf("loadConfig with PAYTRADE_CRASH_POINTS=%q: %v, want an error naming PAYTRADE_CRASH_POINTS", setting, err)
			}
		})
	}
}

func TestLoadConfigReadsTheRefundConsumerAndItsSeedStyleSwitch(t *testing.T) {
	c, err := loadConfigFrom(map[string]string{
		"PAY_PREFETCH": "4", "PAY_RETRY_MAX_ATTEMPTS": "5", "PAY_RECOVERER": "requeue",
		"MQ_PAY_REFUND_QUEUE": "q", "MQ_TRADE_EXCHANGE": "x", "PAY_IDEMPOTENCY": "none",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.Consumer.Prefetch != 4 || c.Consumer.Retry.MaxAttempts != 5 || c.Consumer.Recoverer != "requeue" ||
		c.Topology.RefundQueue != "q" || c.Topology.TradeExchange != "x" || c.Idempotent {
		t.Errorf("config = %+v, %+v", c.Consumer, c.Topology)
	}
	if got := c.seedStyle(); !slices.Equal(got, []string{"PAY_IDEMPOTENCY=none"}) {
		t.Errorf("seedStyle() = %#v, want PAY_IDEMPOTENCY=none listed", got)
	}
	for name, value := range map[string]string{"PAY_IDEMPOTENCY": "off", "PAY_RECOVERER": "drop", "PAY_PREFETCH": "0", "MQ_QUEUE_TYPE": "stream"} {
		if _, err := loadConfigFrom(map[string]string{name: value}); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%q: %v, want a refusal naming it", name, value, err)
		}
	}
}
