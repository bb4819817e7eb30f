//go:build faultinject

package main

import (
	"slices"
	"strings"
	"testing"
)

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

func TestLoadConfigReadsTheRefundsSeedStyleSwitch(t *testing.T) {
	c, err := loadConfigFrom(map[string]string{"PAY_IDEMPOTENCY": "none"})
	if err != nil || c.Idempotent {
		t.Fatalf("PAY_IDEMPOTENCY=none: idempotent %v, %v; want the seed-style refund", c.Idempotent, err)
	}
	if got := c.seedStyle(); !slices.Equal(got, []string{"PAY_IDEMPOTENCY=none"}) {
		t.Errorf("seedStyle() = %#v, want PAY_IDEMPOTENCY=none listed", got)
	}
	if _, err := loadConfigFrom(map[string]string{"PAY_IDEMPOTENCY": "off"}); err == nil || !strings.Contains(err.Error(), "PAY_IDEMPOTENCY") {
		t.Errorf("PAY_IDEMPOTENCY=off: %v, want a refusal naming it", err)
	}
}
