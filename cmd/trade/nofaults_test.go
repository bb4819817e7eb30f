//go:build !faultinject

package main

import (
	"strings"
	"testing"
)

// A binary built without the faultinject tag refuses every fault switch
// rather than run with it, and runs the safe wiring when they are unset or
// set to it.
func TestDefaultBuildRefusesEveryFaultSwitch(t *testing.T) {
	for _, sw := range []struct{ name, value string }{
		{"PAYTRADE_CRASH_POINTS", "trade-after-commit"}, {"TRADE_ACK_MODE", "none"}, {"TRADE_IDEMPOTENCY", "none"},
	} {
		_, err := loadConfigFrom(map[string]string{sw.name: sw.value})
		if err == nil || !strings.Contains(err.Error(), sw.name) || !strings.Contains(err.Error(), "faultinject") {
			t.Errorf("%s=%s: %v, want a refusal naming it and the faultinject build", sw.name, sw.value, err)
		}
	}
	c, err := loadConfigFrom(map[string]string{"TRADE_ACK_MODE": "manual", "TRADE_IDEMPOTENCY": "inbox"})
	if err != nil || c.seedStyle() != nil || c.Crash.String() != "" {
		t.Errorf("safe settings: seed style %v, crash points %q, %v; want the safe wiring", c.seedStyle(), c.Crash.String(), err)
	}
}
