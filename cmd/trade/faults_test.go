//go:build faultinject

package main

import (
	"slices"
	"strings"
	"testing"
)

func TestLoadConfigAcceptsEachAckAndIdempotencyModeAndListsTheUnsafeOnes(t *testing.T) {
	tests := []struct {
		ackMode, idempotency string
		wantAutoAck          bool
		wantIdempotent       bool
		wantSeedStyle        []string
	}{
		{"", "", false, true, nil},
		{"manual", "inbox", false, true, nil},
		{"none", "inbox", true, true, []string{"TRADE_ACK_MODE=none"}},
		{"manual", "none", false, false, []string{"TRADE_IDEMPOTENCY=none"}},
		{"none", "none", true, false, []string{"TRADE_ACK_MODE=none", "TRADE_IDEMPOTENCY=none"}},
	}
	for _, tt := range tests {
		t.Run("ack "+tt.ackMode+", idempotency "+tt.idempotency, func(t *testing.T) {
			c, err := loadConfigFrom(map[string]string{"TRADE_ACK_MODE": tt.ackMode, "TRADE_IDEMPOTENCY": tt.idempotency})
			if err != nil {
				t.Fatalf("loadConfig with TRADE_ACK_MODE=%q TRADE_IDEMPOTENCY=%q: %v", tt.ackMode, tt.idempotency, err)
			}
			if c.AutoAck != tt.wantAutoAck || c.Idempotent != tt.wantIdempotent {
				t.Errorf("AutoAck %v, Idempotent %v; want %v, %v", c.AutoAck, c.Idempotent, tt.wantAutoAck, tt.wantIdempotent)
			}
			got := c.seedStyle()
			if !slices.Equal(got, tt.wantSeedStyle) || (tt.wantSeedStyle == nil) != (got == nil) {
				t.Errorf("seedStyle() = %#v, want %#v", got, tt.wantSeedStyle)
			}
		})
	}
}

func TestLoadConfigRefusesAnUnknownAckOrIdempotencyMode(t *testing.T) {
	tests := []struct{ name, value string }{
		{"TRADE_ACK_MODE", "auto"},
		{"TRADE_ACK_MODE", "MANUAL"},
		{"TRADE_ACK_MODE", "inbox"},
		{"TRADE_IDEMPOTENCY", "off"},
		{"TRADE_IDEMPOTENCY", "Inbox"},
		{"TRADE_IDEMPOTENCY", "manual"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			_, err := loadConfigFrom(map[string]string{tt.name: tt.value})
			if err == nil || !strings.Contains(err.Error(), tt.name) {
				t.Errorf("loadConfig with %s=%q: %v, want an error naming %s", tt.name, tt.value, err, tt.name)
			}
		})
	}
}

func TestLoadConfigReadsCrashPointsAndRefusesAnNthBelowOne(t *testing.T) {
	c, err := loadConfigFrom(map[string]string{"PAYTRADE_CRASH_POINTS": "trade-after-commit@5"})
	if err != nil {
		t.Fatalf("loadConfig with a crash point: %v", err)
	}
	if got := c.Crash.String(); got != "trade-after-commit@5" {
		t.Errorf("crash points %q, want trade-after-commit@5", got)
	}
	for _, setting := range []string{"x@0", "x@y", "trade-after-commit,x@-2"} {
		t.Run(setting, func(t *testing.T) {
			_, err := loadConfigFrom(map[string]string{"PAYTRADE_CRASH_POINTS": setting})
			if err == nil || !strings.Contains(err.Error(), "PAYTRADE_CRASH_POINTS") {
				t.Errorf("loadConfig with PAYTRADE_CRASH_POINTS=%q: %v, want an error naming PAYTRADE_CRASH_POINTS", setting, err)
			}
		})
	}
}
